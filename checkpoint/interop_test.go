package checkpoint

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Sequence numbers in the shape Kinesis hands out (56 digits).
const (
	kclSeq1 = "49590338271490256608559692538361571095921575989136588898"
	kclSeq2 = "49590338271490256608559692540000000000000000000000000001"
)

func avS(v string) types.AttributeValue     { return &types.AttributeValueMemberS{Value: v} }
func avN(v string) types.AttributeValue     { return &types.AttributeValueMemberN{Value: v} }
func avSS(v ...string) types.AttributeValue { return &types.AttributeValueMemberSS{Value: v} }

// kclItems are lease rows as the Java KCL writes them (names and types of its
// DynamoDBLeaseSerializer), plus attributes Shardline does not use.
func kclItems() map[string]map[string]types.AttributeValue {
	return map[string]map[string]types.AttributeValue{
		// A KCL 2.x lease held by a KCL worker, checkpointed inside a KPL aggregate, with a
		// pending two-phase checkpoint and attributes Shardline does not know.
		"shardId-000000000001": {
			"leaseKey":                           avS("shardId-000000000001"),
			"leaseOwner":                         avS("kcl-worker-1"),
			"leaseCounter":                       avN("42"),
			"checkpoint":                         avS(kclSeq1),
			"checkpointSubSequenceNumber":        avN("3"),
			"pendingCheckpoint":                  avS(kclSeq2),
			"pendingCheckpointSubSequenceNumber": avN("0"),
			"pendingCheckpointState":             &types.AttributeValueMemberB{Value: []byte("state")},
			"ownerSwitchesSinceCheckpoint":       avN("2"),
			"parentShardId":                      avSS("shardId-000000000000"),
			"startingHashKey":                    avS("0"),
			"endingHashKey":                      avS("170141183460469231731687303715884105727"),
			"throughputKBps":                     avN("12.5"),
			"appNote":                            avS("keep me"),
			"appNumbers":                         &types.AttributeValueMemberNS{Value: []string{"1", "2"}},
			"appFlag":                            &types.AttributeValueMemberBOOL{Value: true},
		},
		// A multi-stream lease nobody holds yet (no leaseOwner attribute at all).
		"123456789012:orders:1700000000:shardId-000000000002": {
			"leaseKey":                     avS("123456789012:orders:1700000000:shardId-000000000002"),
			"leaseCounter":                 avN("0"),
			"checkpoint":                   avS("TRIM_HORIZON"),
			"checkpointSubSequenceNumber":  avN("0"),
			"ownerSwitchesSinceCheckpoint": avN("0"),
			"parentShardId":                avSS("shardId-000000000000", "shardId-000000000001"),
			"streamName":                   avS("123456789012:orders:1700000000"),
			"shardId":                      avS("shardId-000000000002"),
		},
		// A KCL 3.x lease in the middle of a graceful handoff from kcl-a to kcl-b.
		"shardId-000000000003": {
			"leaseKey":                     avS("shardId-000000000003"),
			"leaseOwner":                   avS("kcl-b"),
			"checkpointOwner":              avS("kcl-a"),
			"leaseCounter":                 avN("7"),
			"checkpoint":                   avS("SHARD_END"),
			"checkpointSubSequenceNumber":  avN("0"),
			"ownerSwitchesSinceCheckpoint": avN("0"),
			"childShardIds":                avSS("shardId-000000000004", "shardId-000000000005"),
			"entityType":                   avS("LEASE"),
		},
		// Not a lease: newer KCL releases keep other kinds of rows in the lease table.
		"leader": {
			"leaseKey":   avS("leader"),
			"entityType": avS("LEADER"),
			"lockOwner":  avS("kcl-a"),
		},
	}
}

func TestKCLInteroperability(t *testing.T) {
	ctx := context.Background()
	client, table := dynamoTable(t)
	store := newDynamoStore(t, client, table)
	if err := store.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	for _, item := range kclItems() {
		if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
			t.Fatal(err)
		}
	}

	leases, err := store.ListLeases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]Lease{}
	for _, l := range leases {
		byKey[l.Key] = l
	}
	if _, ok := byKey["leader"]; ok || len(byKey) != 3 {
		t.Fatalf("listed %v; want the three lease rows and not the leader row", slices.Collect(maps.Keys(byKey)))
	}

	tp := 12.5
	assertLease(t, "KCL 2.x lease", byKey["shardId-000000000001"], Lease{
		Key: "shardId-000000000001", Owner: "kcl-worker-1", Counter: 42,
		Checkpoint:                   esn(kclSeq1, 3),
		PendingCheckpoint:            &ExtendedSequenceNumber{SequenceNumber: kclSeq2},
		PendingCheckpointState:       []byte("state"),
		OwnerSwitchesSinceCheckpoint: 2,
		ParentShardIDs:               []string{"shardId-000000000000"},
		HashKeyRange:                 &HashKeyRange{StartingHashKey: "0", EndingHashKey: "170141183460469231731687303715884105727"},
		ThroughputKBps:               &tp,
	})
	assertLease(t, "multi-stream lease", byKey["123456789012:orders:1700000000:shardId-000000000002"], Lease{
		Key: "123456789012:orders:1700000000:shardId-000000000002", Checkpoint: TrimHorizon,
		ParentShardIDs:   []string{"shardId-000000000000", "shardId-000000000001"},
		StreamIdentifier: "123456789012:orders:1700000000", ShardID: "shardId-000000000002",
	})
	handoff := byKey["shardId-000000000003"]
	if handoff.Owner != "kcl-b" || handoff.CheckpointOwner != "kcl-a" || handoff.ActualOwner() != "kcl-a" ||
		!handoff.HandoffRequested("kcl-a") || !handoff.Checkpoint.IsShardEnd() || len(handoff.ChildShardIDs) != 2 {
		t.Fatalf("KCL 3.x handoff lease read as %+v", handoff)
	}

	// Take the KCL worker's lease (say it expired), continue from its checkpoint and
	// checkpoint further, in the middle of an aggregate.
	taken, err := store.TakeLease(ctx, byKey["shardId-000000000001"], "shardline-1")
	if err != nil {
		t.Fatal(err)
	}
	if taken.Counter != 43 || taken.OwnerSwitchesSinceCheckpoint != 3 || taken.Checkpoint != esn(kclSeq1, 3) {
		t.Fatalf("took %+v", taken)
	}
	h, err := NewLeaseHolder(store, taken)
	if err != nil {
		t.Fatal(err)
	}
	cp := NewCheckpointer(h)
	if err := cp.SetLastDelivered(kclSeq2, 9); err != nil {
		t.Fatal(err)
	}
	if err := cp.CheckpointAt(ctx, kclSeq1, 2); !errors.Is(err, ErrCheckpointRegression) {
		t.Fatalf("checkpoint before the KCL's: %v", err)
	}
	if err := cp.CheckpointAt(ctx, kclSeq2, 5); err != nil {
		t.Fatal(err)
	}
	h.SetThroughput(99.75)
	if _, err := h.Renew(ctx); err != nil {
		t.Fatal(err)
	}

	raw := rawItem(t, client, table, "shardId-000000000001")
	assertTypes(t, raw, map[string]string{
		"leaseKey": "S", "leaseOwner": "S", "leaseCounter": "N", "checkpoint": "S",
		"checkpointSubSequenceNumber": "N", "ownerSwitchesSinceCheckpoint": "N",
		"parentShardId": "SS", "startingHashKey": "S", "endingHashKey": "S", "throughputKBps": "N",
		"appNote": "S", "appNumbers": "NS", "appFlag": "BOOL",
	})
	assertValues(t, raw, map[string]string{
		"leaseOwner": "shardline-1", "leaseCounter": "45", "checkpoint": kclSeq2,
		"checkpointSubSequenceNumber": "5", "ownerSwitchesSinceCheckpoint": "0", "throughputKBps": "99.75",
		"appNote": "keep me",
	})
	// As the KCL does on a checkpoint, the pending checkpoint is gone.
	for _, gone := range []string{"pendingCheckpoint", "pendingCheckpointSubSequenceNumber", "pendingCheckpointState", "checkpointOwner"} {
		if _, ok := raw[gone]; ok {
			t.Errorf("%s still present after checkpoint", gone)
		}
	}

	// Evicting removes leaseOwner rather than writing a placeholder the KCL would read as a
	// worker name.
	if _, err := h.Evict(ctx); err != nil {
		t.Fatal(err)
	}
	raw = rawItem(t, client, table, "shardId-000000000001")
	if _, ok := raw["leaseOwner"]; ok {
		t.Errorf("leaseOwner still present after evict: %v", raw["leaseOwner"])
	}
	assertValues(t, raw, map[string]string{"leaseCounter": "46", "appNote": "keep me"})

	// Finish the KCL 3.x handoff the other way: the handoff times out and Shardline takes it.
	got, err := store.TakeLease(ctx, handoff, "shardline-2")
	if err != nil {
		t.Fatal(err)
	}
	if got.CheckpointOwner != "" || got.Owner != "shardline-2" {
		t.Fatalf("took handoff lease as %+v", got)
	}
	raw = rawItem(t, client, table, "shardId-000000000003")
	assertTypes(t, raw, map[string]string{"childShardIds": "SS", "entityType": "S", "leaseCounter": "N"})
	if _, ok := raw["checkpointOwner"]; ok {
		t.Error("checkpointOwner left after take")
	}

	// The non-lease row is untouched and not readable as a lease.
	if _, err := store.GetLease(ctx, "leader"); !errors.Is(err, ErrLeaseNotFound) {
		t.Errorf("GetLease(leader): %v", err)
	}
}

// A lease Shardline creates has exactly the attributes and types the KCL's serializer writes
// for such a lease, and nothing else.
func TestCreatedLeaseHasKCLSchema(t *testing.T) {
	ctx := context.Background()
	client, table := dynamoTable(t)
	store := newDynamoStore(t, client, table)
	if err := store.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := store.CreateLeaseIfNotExists(ctx, Lease{
		Key: "shardId-000000000009", Checkpoint: Latest,
		ParentShardIDs: []string{"shardId-000000000007", "shardId-000000000008"},
		HashKeyRange:   &HashKeyRange{StartingHashKey: "0", EndingHashKey: "85070591730234615865843651857942052863"},
	})
	if err != nil {
		t.Fatal(err)
	}
	raw := rawItem(t, client, table, "shardId-000000000009")
	want := map[string]string{
		"leaseKey": "S", "leaseCounter": "N", "checkpoint": "S", "checkpointSubSequenceNumber": "N",
		"ownerSwitchesSinceCheckpoint": "N", "parentShardId": "SS", "startingHashKey": "S", "endingHashKey": "S",
	}
	assertTypes(t, raw, want)
	if len(raw) != len(want) {
		t.Errorf("created item has attributes %v, want exactly %v", slices.Sorted(maps.Keys(raw)), slices.Sorted(maps.Keys(want)))
	}
	assertValues(t, raw, map[string]string{"leaseCounter": "0", "checkpoint": "LATEST", "checkpointSubSequenceNumber": "0"})

	// The table itself is what the KCL creates: hash key leaseKey of type S, on demand.
	out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkKeySchema(out.Table); err != nil {
		t.Error(err)
	}
	if out.Table.BillingModeSummary == nil || out.Table.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
		t.Errorf("billing mode %+v, want PAY_PER_REQUEST", out.Table.BillingModeSummary)
	}
}

// Rows with wrong attribute types fail GetLease with an error naming the attribute, and are
// skipped (not fatal) by ListLeases.
func TestUnreadableLeaseRow(t *testing.T) {
	ctx := context.Background()
	client, table := dynamoTable(t)
	store := newDynamoStore(t, client, table)
	if err := store.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, store, "good")
	if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
		"leaseKey": avS("bad"), "leaseCounter": avS("seven"), "checkpoint": avS("TRIM_HORIZON"),
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.GetLease(ctx, "bad"); err == nil || !strings.Contains(err.Error(), "attribute leaseCounter has type S, want N") {
		t.Errorf("GetLease(bad): %v", err)
	}
	leases, err := store.ListLeases(ctx)
	if err != nil || len(leases) != 1 || leases[0].Key != "good" {
		t.Errorf("ListLeases: %v, %v", leases, err)
	}
}

func rawItem(t *testing.T, client *dynamodb.Client, table, key string) map[string]types.AttributeValue {
	t.Helper()
	out, err := client.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(table), Key: leaseKeyOf(key), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

func assertTypes(t *testing.T, item map[string]types.AttributeValue, want map[string]string) {
	t.Helper()
	for name, typ := range want {
		v, ok := item[name]
		if !ok {
			t.Errorf("attribute %s missing", name)
			continue
		}
		if got := attrType(v); got != typ {
			t.Errorf("attribute %s has type %s, want %s", name, got, typ)
		}
	}
}

func assertValues(t *testing.T, item map[string]types.AttributeValue, want map[string]string) {
	t.Helper()
	for name, val := range want {
		var got string
		switch v := item[name].(type) {
		case *types.AttributeValueMemberS:
			got = v.Value
		case *types.AttributeValueMemberN:
			got = v.Value
		default:
			t.Errorf("attribute %s is %T", name, item[name])
			continue
		}
		if got != val {
			t.Errorf("attribute %s = %q, want %q", name, got, val)
		}
	}
}
