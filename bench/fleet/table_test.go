package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/internal/testenv"
)

// step is one store call of the conformance script and what it left: the error's class, the
// lease the call returned and the item as a consistent read finds it afterwards.
type step struct {
	op    string
	class string
	lease string
	item  string
}

// runScript drives checkpoint.DynamoDBStore over api through every write the consumer makes,
// including the refused ones (a stale counter, a handoff already under way, a cancelled
// handoff), and records each step.
func runScript(t *testing.T, api checkpoint.DynamoDBAPI, table string) []step {
	t.Helper()
	ctx := context.Background()
	store, err := checkpoint.NewDynamoDBStore(api, checkpoint.DynamoDBConfig{TableName: table})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	var steps []step
	record := func(op string, l checkpoint.Lease, err error) checkpoint.Lease {
		out, gerr := api.GetItem(ctx, &dynamodb.GetItemInput{
			TableName:      aws.String(table),
			Key:            map[string]types.AttributeValue{checkpoint.AttrLeaseKey: &types.AttributeValueMemberS{Value: "shardId-000000000001"}},
			ConsistentRead: aws.Bool(true),
		})
		if gerr != nil {
			t.Fatalf("%s: reading the item: %v", op, gerr)
		}
		lj, jerr := json.Marshal(l) // pointers by value, unlike %v
		if jerr != nil {
			t.Fatal(jerr)
		}
		steps = append(steps, step{op: op, class: errClass(err), lease: string(lj), item: itemString(out.Item)})
		return l
	}
	cp := func(seq string) checkpoint.ExtendedSequenceNumber {
		return checkpoint.ExtendedSequenceNumber{SequenceNumber: seq}
	}
	hr := checkpoint.HashKeyRange{StartingHashKey: "0", EndingHashKey: "170141183460469231731687303715884105727"}
	created, err := store.CreateLeaseIfNotExists(ctx, checkpoint.Lease{Key: "shardId-000000000001", Checkpoint: checkpoint.TrimHorizon, ParentShardIDs: []string{"shardId-000000000000"}, HashKeyRange: &hr})
	l := record("create", created, err)
	again, err := store.CreateLeaseIfNotExists(ctx, checkpoint.Lease{Key: "shardId-000000000001", Checkpoint: checkpoint.Latest})
	record("create again", again, err)

	taken, err := store.TakeLease(ctx, l, "w1")
	l = record("take", taken, err)
	_, err = store.TakeLease(ctx, created, "w9")
	record("take at a stale counter", checkpoint.Lease{}, err)
	renewed, err := store.RenewLease(ctx, l)
	l = record("renew", renewed, err)
	_, err = store.RenewLease(ctx, taken)
	record("renew at a stale counter", checkpoint.Lease{}, err)
	kbps := 12.5
	l.ThroughputKBps = &kbps
	checked, err := store.UpdateCheckpoint(ctx, l, cp("49590338271490256608559692538361571095921575989136588898"))
	l = record("checkpoint", checked, err)

	asked, err := store.InitiateHandoff(ctx, l, "w2")
	record("handoff", asked, err)
	_, err = store.InitiateHandoff(ctx, l, "w3")
	record("second handoff refused", checkpoint.Lease{}, err)
	// The owner has not seen the request: it renews with the lease as it holds it.
	renewed, err = store.RenewLease(ctx, l)
	l = record("renew during the handoff", renewed, err)
	withdrawn, err := store.CancelHandoff(ctx, l)
	record("cancel of a lease not being handed over", withdrawn, err)
	current, err := store.GetLease(ctx, l.Key)
	record("get", current, err)
	asked, err = store.InitiateHandoff(ctx, current, "w2")
	record("handoff again", asked, err)
	withdrawn, err = store.CancelHandoff(ctx, asked)
	record("cancel", withdrawn, err)
	asked, err = store.InitiateHandoff(ctx, withdrawn, "w2")
	l = record("handoff a third time", asked, err)
	released, err := store.EvictLease(ctx, l)
	l = record("release to the next owner", released, err)
	taken, err = store.TakeLease(ctx, l, "w2")
	l = record("next owner takes", taken, err)

	ended, err := store.UpdateCheckpoint(ctx, l, checkpoint.ShardEnd)
	l = record("checkpoint SHARD_END", ended, err)
	withChildren, err := store.UpdateChildShards(ctx, l.Key, []string{"shardId-000000000003", "shardId-000000000002"})
	record("child shards", withChildren, err)
	ranged, err := store.UpdateHashKeyRange(ctx, l.Key, hr)
	l = record("hash key range", ranged, err)
	evicted, err := store.EvictLease(ctx, l)
	l = record("evict", evicted, err)
	record("delete at a stale counter", checkpoint.Lease{}, store.DeleteLease(ctx, taken))
	record("delete", checkpoint.Lease{}, store.DeleteLease(ctx, l))
	_, err = store.GetLease(ctx, l.Key)
	record("get deleted", checkpoint.Lease{}, err)
	return steps
}

func errClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, checkpoint.ErrLeaseLost):
		return "lost"
	case errors.Is(err, checkpoint.ErrLeaseNotFound):
		return "not found"
	case errors.Is(err, checkpoint.ErrInvalidLease):
		return "invalid"
	case errors.Is(err, checkpoint.ErrLeaseExists):
		// The message may or may not name the item found: DynamoDB returns it on a refused
		// condition when asked (ReturnValuesOnConditionCheckFailure), dynalite never does.
		return "exists"
	}
	return "error: " + err.Error()
}

// itemString prints an item with its attributes in name order, sets sorted and numbers as
// written, so that two tables' items compare as text.
func itemString(it map[string]types.AttributeValue) string {
	if it == nil {
		return "<none>"
	}
	names := make([]string, 0, len(it))
	for n := range it {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		switch v := it[n].(type) {
		case *types.AttributeValueMemberS:
			fmt.Fprintf(&b, "%s=S:%s ", n, v.Value)
		case *types.AttributeValueMemberN:
			fmt.Fprintf(&b, "%s=N:%s ", n, v.Value)
		case *types.AttributeValueMemberSS:
			ss := slices.Clone(v.Value)
			sort.Strings(ss)
			fmt.Fprintf(&b, "%s=SS:%v ", n, ss)
		case *types.AttributeValueMemberB:
			fmt.Fprintf(&b, "%s=B:%x ", n, v.Value)
		case *types.AttributeValueMemberBOOL:
			fmt.Fprintf(&b, "%s=BOOL:%v ", n, v.Value)
		default:
			fmt.Fprintf(&b, "%s=%T ", n, v)
		}
	}
	return b.String()
}

// TestTableMatchesDynamoDB runs the same store script against the harness's table and
// against dynalite (DynamoDB's own semantics, from the project's emulators) and requires the
// same outcome of every step: the harness's figures mean something only if its table answers
// the consumer's conditional writes as DynamoDB does.
func TestTableMatchesDynamoDB(t *testing.T) {
	ddb := testenv.DynamoDB(t, nil)
	real := runScript(t, ddb, testenv.TableName(t, ddb))
	fake := NewTable()
	sim := runScript(t, fake, "fleet-conformance")
	if err := (&Fleet{Table: fake}).Check(); err != nil {
		t.Fatal(err)
	}
	if len(real) != len(sim) {
		t.Fatalf("%d steps on dynalite, %d on the table", len(real), len(sim))
	}
	for i := range real {
		if !reflect.DeepEqual(real[i], sim[i]) {
			t.Errorf("step %q differs:\n dynalite: %s | %s\n    table: %s | %s", real[i].op, real[i].class, real[i].item, sim[i].class, sim[i].item)
			if real[i].lease != sim[i].lease {
				t.Errorf("  returned lease:\n dynalite: %s\n    table: %s", real[i].lease, sim[i].lease)
			}
		}
	}
	// The script is only a check if it reaches both outcomes of the conditions.
	classes := map[string]int{}
	for _, s := range real {
		classes[s.class]++
	}
	if classes["ok"] == 0 || classes["lost"] == 0 {
		t.Errorf("script outcomes %v; want both successes and refused conditions", classes)
	}
}

// TestScanPages checks the table's paging against dynalite: every item exactly once over
// the pages, whatever the page limit.
func TestScanPages(t *testing.T) {
	ddb := testenv.DynamoDB(t, nil)
	table := testenv.TableName(t, ddb)
	fake := NewTable()
	for _, api := range []checkpoint.DynamoDBAPI{ddb, fake} {
		name := table
		if api == checkpoint.DynamoDBAPI(fake) {
			name = "fleet-scan"
		}
		store, err := checkpoint.NewDynamoDBStore(api, checkpoint.DynamoDBConfig{TableName: name})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := store.EnsureTable(ctx); err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{}
		for i := range 7 {
			k := fmt.Sprintf("shardId-%012d", i)
			want[k] = true
			if _, err := store.CreateLeaseIfNotExists(ctx, checkpoint.Lease{Key: k, Checkpoint: checkpoint.TrimHorizon}); err != nil {
				t.Fatal(err)
			}
		}
		for _, limit := range []int32{1, 2, 3, 7, 100} {
			got := map[string]int{}
			var start map[string]types.AttributeValue
			for pages := 0; ; pages++ {
				if pages > 20 {
					t.Fatalf("%T limit %d: no end of the scan", api, limit)
				}
				out, err := api.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(name), Limit: aws.Int32(limit), ExclusiveStartKey: start, ConsistentRead: aws.Bool(true)})
				if err != nil {
					t.Fatal(err)
				}
				if int32(len(out.Items)) > limit {
					t.Errorf("%T limit %d: a page of %d items", api, limit, len(out.Items))
				}
				for _, it := range out.Items {
					got[attrString(it, checkpoint.AttrLeaseKey)]++
				}
				if out.LastEvaluatedKey == nil {
					break
				}
				start = out.LastEvaluatedKey
			}
			for k := range want {
				if got[k] != 1 {
					t.Errorf("%T limit %d: %s read %d times", api, limit, k, got[k])
				}
			}
			if len(got) != len(want) {
				t.Errorf("%T limit %d: %d keys, want %d", api, limit, len(got), len(want))
			}
		}
		leases, err := store.ListLeases(ctx)
		if err != nil || len(leases) != len(want) {
			t.Errorf("%T: ListLeases = %d leases, %v; want %d", api, len(leases), err, len(want))
		}
	}
}
