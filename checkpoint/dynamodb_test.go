package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/shardline/shardline/internal/testenv"
	"github.com/shardline/shardline/metrics"
)

// statsDelta returns what op added to the store's statistics.
func statsDelta(before, after DynamoDBStats, op string) (OperationStats, map[string]int64) {
	b, a := before.Operations[op], after.Operations[op]
	reqs := map[string]int64{}
	for api, n := range after.Requests {
		if d := n - before.Requests[api]; d > 0 {
			reqs[api] = d
		}
	}
	return OperationStats{
		Calls: a.Calls - b.Calls, Requests: a.Requests - b.Requests,
		ConditionalFailures: a.ConditionalFailures - b.ConditionalFailures,
		ReadCapacityUnits:   a.ReadCapacityUnits - b.ReadCapacityUnits,
		WriteCapacityUnits:  a.WriteCapacityUnits - b.WriteCapacityUnits,
	}, reqs
}

// TestDynamoDBRequestsAndCapacity measures each operation on its own: the DynamoDB requests it
// makes and the capacity they consume, as reported by the emulator (ReturnConsumedCapacity
// TOTAL) or, for refused conditional writes, estimated from item sizes.
func TestDynamoDBRequestsAndCapacity(t *testing.T) {
	ctx := context.Background()
	client, table := dynamoTable(t)
	store := newDynamoStore(t, client, table)

	type step struct {
		name     string
		op       string
		run      func() error
		requests map[string]int64 // exact requests expected; nil: only logged
		condFail int64
	}
	var held, seen Lease
	var err error
	steps := []step{
		{"EnsureTable (creates)", OpEnsureTable, func() error { return store.EnsureTable(ctx) }, nil, 0},
		{"EnsureTable (exists)", OpEnsureTable, func() error { return store.EnsureTable(ctx) }, map[string]int64{"DescribeTable": 1}, 0},
		{"CreateLeaseIfNotExists", OpCreateLease, func() error {
			seen, err = store.CreateLeaseIfNotExists(ctx, Lease{Key: "shardId-000000000000", Checkpoint: TrimHorizon, ParentShardIDs: []string{"shardId-parent"}})
			return err
		}, map[string]int64{"PutItem": 1}, 0},
		{"CreateLeaseIfNotExists (exists)", OpCreateLease, func() error {
			_, err := store.CreateLeaseIfNotExists(ctx, Lease{Key: "shardId-000000000000", Checkpoint: TrimHorizon})
			return wantErr(err, ErrLeaseExists)
		}, map[string]int64{"PutItem": 1}, 1},
		{"GetLease", OpGetLease, func() error { _, err := store.GetLease(ctx, "shardId-000000000000"); return err }, map[string]int64{"GetItem": 1}, 0},
		{"TakeLease", OpTakeLease, func() error { held, err = store.TakeLease(ctx, seen, "w1"); return err }, map[string]int64{"UpdateItem": 1}, 0},
		{"TakeLease (refused)", OpTakeLease, func() error { _, err := store.TakeLease(ctx, seen, "w2"); return wantErr(err, ErrLeaseLost) },
			map[string]int64{"UpdateItem": 1, "GetItem": 1}, 1},
		{"RenewLease", OpRenewLease, func() error { held, err = store.RenewLease(ctx, held); return err }, map[string]int64{"UpdateItem": 1}, 0},
		{"RenewLease (refused)", OpRenewLease, func() error { _, err := store.RenewLease(ctx, seen); return wantErr(err, ErrInvalidLease) }, map[string]int64{}, 0},
		{"UpdateCheckpoint", OpUpdateCheckpoint, func() error {
			held, err = store.UpdateCheckpoint(ctx, held, esn("49590338271490256608559692538361571095921575989136588898", 0))
			return err
		}, map[string]int64{"UpdateItem": 1}, 0},
		{"UpdateChildShards", OpUpdateChildShards, func() error {
			_, err := store.UpdateChildShards(ctx, held.Key, []string{"shardId-000000000001", "shardId-000000000002"})
			return err
		}, map[string]int64{"UpdateItem": 1}, 0},
		{"UpdateHashKeyRange", OpUpdateHashKeyRange, func() error {
			_, err := store.UpdateHashKeyRange(ctx, held.Key, HashKeyRange{StartingHashKey: "0", EndingHashKey: "340282366920938463463374607431768211455"})
			return err
		}, map[string]int64{"UpdateItem": 1}, 0},
		{"InitiateHandoff", OpInitiateHandoff, func() error { held, err = store.InitiateHandoff(ctx, held, "w2"); return err }, map[string]int64{"UpdateItem": 1}, 0},
		{"EvictLease", OpEvictLease, func() error { held, err = store.EvictLease(ctx, held); return err }, map[string]int64{"UpdateItem": 1}, 0},
		{"DeleteLease", OpDeleteLease, func() error { return store.DeleteLease(ctx, held) }, map[string]int64{"DeleteItem": 1}, 0},
		{"ListLeases (20 leases, pages of 7)", OpListLeases, func() error {
			for i := range 20 {
				if _, err := store.CreateLeaseIfNotExists(ctx, Lease{Key: fmt.Sprintf("shardId-%012d", i), Checkpoint: TrimHorizon}); err != nil {
					return err
				}
			}
			before := store.Stats()
			leases, err := store.ListLeases(ctx)
			if err != nil {
				return err
			}
			if len(leases) != 20 {
				return fmt.Errorf("listed %d leases", len(leases))
			}
			d, reqs := statsDelta(before, store.Stats(), OpListLeases)
			if reqs["Scan"] != 3 || d.ReadCapacityUnits <= 0 {
				return fmt.Errorf("ListLeases of 20 leases in pages of 7: %v requests, %v RCU", reqs, d.ReadCapacityUnits)
			}
			t.Logf("%-36s %-28s %5.1f %5.1f %d", "ListLeases (20 leases, pages of 7)", formatRequests(reqs), d.ReadCapacityUnits, d.WriteCapacityUnits, d.ConditionalFailures)
			return nil
		}, nil, 0},
	}
	t.Logf("%-36s %-28s %5s %5s %s", "operation", "requests", "RCU", "WCU", "conditional failures")
	for _, st := range steps {
		before := store.Stats()
		if err := st.run(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if st.op == OpListLeases {
			continue
		}
		d, reqs := statsDelta(before, store.Stats(), st.op)
		if st.requests != nil && !mapsEqual(reqs, st.requests) {
			t.Errorf("%s: requests %v, want %v", st.name, reqs, st.requests)
		}
		if d.ConditionalFailures != st.condFail {
			t.Errorf("%s: %d conditional failures, want %d", st.name, d.ConditionalFailures, st.condFail)
		}
		for api := range reqs {
			if strings.HasSuffix(api, "Item") && d.ReadCapacityUnits+d.WriteCapacityUnits == 0 {
				t.Errorf("%s: no capacity recorded", st.name)
			}
		}
		t.Logf("%-36s %-28s %5.1f %5.1f %d", st.name, formatRequests(reqs), d.ReadCapacityUnits, d.WriteCapacityUnits, d.ConditionalFailures)
	}
	final := store.Stats()
	t.Logf("totals: requests %v, RCU %.1f, WCU %.1f, capacity reported by DynamoDB in %d responses, estimated in %d",
		final.Requests, final.ReadCapacityUnits, final.WriteCapacityUnits, final.ReportedResponses, final.EstimatedResponses)
	if final.ReportedResponses == 0 {
		t.Error("the emulator reported no consumed capacity")
	}
	if final.EstimatedResponses != 2 {
		t.Errorf("%d estimated responses, want 2 (the two refused conditional writes)", final.EstimatedResponses)
	}
}

func formatRequests(reqs map[string]int64) string {
	var parts []string
	for _, api := range slices.Sorted(maps.Keys(reqs)) {
		parts = append(parts, fmt.Sprintf("%s=%d", api, reqs[api]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

func wantErr(err, target error) error {
	if !errors.Is(err, target) {
		return fmt.Errorf("got %v, want %v", err, target)
	}
	return nil
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// lossyTransport forwards requests to the emulator but, when armed, swallows the response to
// the next UpdateItem and answers 500 instead, as when a response is lost after the write
// applied. The SDK then retries the write.
type lossyTransport struct {
	armed atomic.Bool
}

func (lt *lossyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".UpdateItem") || !lt.armed.CompareAndSwap(true, false) {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	body := `{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected: response lost"}`
	return &http.Response{
		StatusCode: http.StatusInternalServerError, Status: "500 Internal Server Error",
		Header: http.Header{"Content-Type": []string{"application/x-amz-json-1.0"}},
		Body:   io.NopCloser(bytes.NewBufferString(body)), ContentLength: int64(len(body)),
		Request: req, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}, nil
}

// A renewal or checkpoint whose first attempt applied but whose response was lost is retried
// by the SDK; the retry is refused, and the store recognizes its own write instead of
// reporting the lease lost. A take is not recovered that way (see TakeLease).
func TestDynamoDBRecoversRetriedWrite(t *testing.T) {
	ctx := context.Background()
	lt := &lossyTransport{}
	client := testenv.DynamoDB(t, testenv.HTTPClient(lt), func(o *dynamodb.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 3
			so.MaxBackoff = 5 * time.Millisecond
		})
		// The test configuration caps attempts at one; this test needs the SDK's retry.
		o.RetryMaxAttempts = 3
	})
	table := testenv.TableName(t, client)
	store := newDynamoStore(t, client, table)
	if err := store.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	held := mustTake(t, store, "k", "w1")

	lt.armed.Store(true)
	before := store.Stats()
	renewed, err := store.RenewLease(ctx, held)
	if err != nil {
		t.Fatalf("renew with a lost response: %v", err)
	}
	if renewed.Counter != held.Counter+1 {
		t.Fatalf("renewed %+v", renewed)
	}
	d, reqs := statsDelta(before, store.Stats(), OpRenewLease)
	if reqs["UpdateItem"] != 2 || reqs["GetItem"] != 1 || d.ConditionalFailures != 1 {
		t.Fatalf("requests %v, stats %+v", reqs, d)
	}

	lt.armed.Store(true)
	cp := esn("123", 4)
	done, err := store.UpdateCheckpoint(ctx, renewed, cp)
	if err != nil || done.Checkpoint != cp || done.Counter != renewed.Counter+1 {
		t.Fatalf("checkpoint with a lost response: %+v, %v", done, err)
	}

	// Without a retry, the same refusal is a lost lease: a stale view is never mistaken for
	// one's own write.
	if _, err := store.RenewLease(ctx, renewed); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("stale renew without retry: %v", err)
	}

	ev, err := store.EvictLease(ctx, done)
	if err != nil {
		t.Fatal(err)
	}
	lt.armed.Store(true)
	_, err = store.TakeLease(ctx, ev, "w1")
	var le *LeaseError
	if !errors.As(err, &le) || !errors.Is(err, ErrLeaseLost) || le.Current == nil || le.Current.Owner != "w1" {
		t.Fatalf("take with a lost response: %v", err)
	}
}

// itemOnFailure wraps a client and attaches the current item to a refused conditional write,
// as DynamoDB does for ReturnValuesOnConditionCheckFailure=ALL_OLD (the emulator does not).
type itemOnFailure struct {
	*dynamodb.Client
	table string
}

func (c itemOnFailure) attach(ctx context.Context, key map[string]types.AttributeValue, err error) error {
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return err
	}
	out, gerr := c.Client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(c.table), Key: key, ConsistentRead: aws.Bool(true)})
	if gerr == nil {
		ccf.Item = out.Item
	}
	return err
}

func (c itemOnFailure) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	out, err := c.Client.UpdateItem(ctx, in, optFns...)
	return out, c.attach(ctx, in.Key, err)
}

func (c itemOnFailure) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	out, err := c.Client.PutItem(ctx, in, optFns...)
	return out, c.attach(ctx, map[string]types.AttributeValue{AttrLeaseKey: in.Item[AttrLeaseKey]}, err)
}

// With DynamoDB's ALL_OLD-on-failure, a refusal needs no extra read to say who holds the lease.
func TestDynamoDBRefusalUsesReturnedItem(t *testing.T) {
	ctx := context.Background()
	client, table := dynamoTable(t)
	store := newDynamoStore(t, itemOnFailure{client, table}, table)
	if err := store.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	seen := mustCreate(t, store, "k")
	if _, err := store.TakeLease(ctx, seen, "w1"); err != nil {
		t.Fatal(err)
	}
	before := store.Stats()
	_, err := store.TakeLease(ctx, seen, "w2")
	assertLost(t, err, "w1", 1)
	d, reqs := statsDelta(before, store.Stats(), OpTakeLease)
	if !mapsEqual(reqs, map[string]int64{"UpdateItem": 1}) || d.WriteCapacityUnits != 1 {
		t.Fatalf("refused take: requests %v, stats %+v", reqs, d)
	}
	_, err = store.CreateLeaseIfNotExists(ctx, Lease{Key: "k", Checkpoint: TrimHorizon})
	var le *LeaseError
	if !errors.As(err, &le) || !errors.Is(err, ErrLeaseExists) || le.Current == nil || le.Current.Owner != "w1" {
		t.Fatalf("create existing: %v", err)
	}
}

func TestDynamoDBMetrics(t *testing.T) {
	ctx := context.Background()
	client, table := dynamoTable(t)
	reg := metrics.NewRegistry()
	store, err := NewDynamoDBStore(client, DynamoDBConfig{TableName: table, TablePollInterval: 20 * time.Millisecond, Metrics: reg, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	held := mustTake(t, store, "k", "w1")
	for range 3 {
		if held, err = store.RenewLease(ctx, held); err != nil {
			t.Fatal(err)
		}
	}
	snap := reg.Snapshot()
	tableDim := metrics.Dim(metrics.DimTableName, table)
	if n := snap.CounterSum(metrics.DynamoDBRequests, metrics.Dim(metrics.DimOperation, OpRenewLease), tableDim); n != 3 {
		t.Errorf("RenewLease requests metric %d, want 3", n)
	}
	stats := store.Stats()
	var total int64
	for _, n := range stats.Requests {
		total += n
	}
	if n := snap.CounterSum(metrics.DynamoDBRequests, tableDim); n != total {
		t.Errorf("requests metric %d, Stats says %d", n, total)
	}
	w := snap.MergedDistribution(metrics.DynamoDBWriteCapacity, tableDim)
	r := snap.MergedDistribution(metrics.DynamoDBReadCapacity, tableDim)
	if w.Sum != stats.WriteCapacityUnits || w.Count != 5 || r.Count != 0 {
		t.Errorf("write capacity metric %+v, read %+v; Stats says WCU %v", w, r, stats.WriteCapacityUnits)
	}
	// The kinds registered must be those the metrics package defines for these names.
	for name, kind := range map[string]metrics.Kind{
		metrics.DynamoDBRequests:      metrics.KindCounter,
		metrics.DynamoDBReadCapacity:  metrics.KindDistribution,
		metrics.DynamoDBWriteCapacity: metrics.KindDistribution,
	} {
		if d, ok := metrics.LookupDefinition(name); !ok || d.Kind != kind {
			t.Errorf("metrics defines %s as %+v, the store records a %v", name, d, kind)
		}
	}
	// A nil registry is the default and records nothing.
	if _, err := NewDynamoDBStore(client, DynamoDBConfig{TableName: table}); err != nil {
		t.Fatal(err)
	}
}

func TestDynamoDBEnsureTableChecksSchema(t *testing.T) {
	ctx := context.Background()
	client, table := dynamoTable(t)
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatal(err)
	}
	store := newDynamoStore(t, client, table)
	if err := store.EnsureTable(ctx); !errors.Is(err, ErrTableSchema) {
		t.Fatalf("EnsureTable on a foreign table: %v", err)
	}
}

func TestDynamoDBProvisionedTableAndMissingTable(t *testing.T) {
	ctx := context.Background()
	client, table := dynamoTable(t)
	store, err := NewDynamoDBStore(client, DynamoDBConfig{
		TableName: table, BillingMode: types.BillingModeProvisioned, ReadCapacityUnits: 3, WriteCapacityUnits: 4,
		TablePollInterval: 10 * time.Millisecond, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.GetLease(ctx, "k"); err == nil || !strings.Contains(err.Error(), "EnsureTable") {
		t.Fatalf("use before EnsureTable: %v", err)
	}
	if err := store.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	pt := out.Table.ProvisionedThroughput
	if pt == nil || aws.ToInt64(pt.ReadCapacityUnits) != 3 || aws.ToInt64(pt.WriteCapacityUnits) != 4 {
		t.Fatalf("provisioned throughput %+v", pt)
	}
}

func TestNewDynamoDBStoreValidates(t *testing.T) {
	if _, err := NewDynamoDBStore(nil, DynamoDBConfig{TableName: "t"}); err == nil {
		t.Error("nil client accepted")
	}
	if _, err := NewDynamoDBStore(&dynamodb.Client{}, DynamoDBConfig{}); err == nil {
		t.Error("empty table name accepted")
	}
}

// A fake client that only answers DescribeTable shows EnsureTable gives up after its timeout
// when the table never becomes ACTIVE.
type creatingForever struct{ DynamoDBAPI }

func (creatingForever) DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{
		TableStatus: types.TableStatusCreating,
		KeySchema:   []types.KeySchemaElement{{AttributeName: aws.String(AttrLeaseKey), KeyType: types.KeyTypeHash}},
	}}, nil
}

func TestDynamoDBEnsureTableTimeout(t *testing.T) {
	store, err := NewDynamoDBStore(creatingForever{}, DynamoDBConfig{
		TableName: "t", TableActiveTimeout: 50 * time.Millisecond, TablePollInterval: 5 * time.Millisecond, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	err = store.EnsureTable(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not active") {
		t.Fatalf("EnsureTable: %v", err)
	}
	if n := store.Stats().Requests["DescribeTable"]; n < 2 {
		t.Fatalf("polled %d times", n)
	}
}

func TestItemSizeEstimate(t *testing.T) {
	item := map[string]types.AttributeValue{
		"leaseKey":     avS("shardId-000000000001"),       // 8 + 20
		"leaseCounter": avN("12345"),                      // 12 + 4 (5 digits: 3 + 1)
		"parent":       avSS("a", "bc"),                   // 6 + 3
		"flag":         &types.AttributeValueMemberBOOL{}, // 4 + 1
		"zero":         avN("0"),                          // 4 + 1
	}
	if got, want := itemSize(item), 28+16+9+5+5; got != want {
		t.Errorf("itemSize = %d, want %d", got, want)
	}
	if writeUnits(0) != 1 || writeUnits(1024) != 1 || writeUnits(1025) != 2 {
		t.Error("writeUnits")
	}
	if readUnits(100, true) != 1 || readUnits(100, false) != 0.5 || readUnits(4097, true) != 2 {
		t.Error("readUnits")
	}

}

// TestDynamoDBMissingTableIsTyped checks that every kind of request on a missing or deleted
// lease table fails with an error matching ErrTableNotFound, so a caller can tell it from a
// passing failure.
func TestDynamoDBMissingTableIsTyped(t *testing.T) {
	ctx := context.Background()
	client, table := dynamoTable(t)
	store := newDynamoStore(t, client, table)
	if _, err := store.ListLeases(ctx); !errors.Is(err, ErrTableNotFound) {
		t.Fatalf("ListLeases before EnsureTable: %v, want ErrTableNotFound", err)
	}
	if err := store.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	held := mustTake(t, store, "shardId-000000000000", "w1")
	l := held
	if _, err := client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)}); err != nil {
		t.Fatal(err)
	}
	checks := map[string]error{}
	_, checks["ListLeases"] = store.ListLeases(ctx)
	_, checks["GetLease"] = store.GetLease(ctx, l.Key)
	_, checks["RenewLease"] = store.RenewLease(ctx, held)
	_, checks["CreateLeaseIfNotExists"] = store.CreateLeaseIfNotExists(ctx, Lease{Key: "shardId-000000000001", Checkpoint: TrimHorizon})
	checks["DeleteLease"] = store.DeleteLease(ctx, held)
	for op, err := range checks {
		if !errors.Is(err, ErrTableNotFound) {
			t.Errorf("%s on a deleted table: %v, want ErrTableNotFound", op, err)
		}
	}
}

// optionRecorder keeps the option functions of the UpdateItem calls it passes on.
type optionRecorder struct {
	*dynamodb.Client
	last []func(*dynamodb.Options)
}

func (r *optionRecorder) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	r.last = optFns
	return r.Client.UpdateItem(ctx, in, optFns...)
}

// retryDelays applies optFns to a client's standard retryer and returns the largest delay it
// gives a throttled request over many draws.
func retryDelays(optFns []func(*dynamodb.Options)) time.Duration {
	o := dynamodb.Options{Retryer: retry.NewStandard()}
	for _, fn := range optFns {
		fn(&o)
	}
	throttled := &types.ProvisionedThroughputExceededException{Message: aws.String("throttled")}
	var worst time.Duration
	for range 200 {
		for attempt := 1; attempt <= 3; attempt++ {
			d, err := o.Retryer.RetryDelay(attempt, throttled)
			if err != nil {
				return -1
			}
			worst = max(worst, d)
		}
	}
	return worst
}

// A renewal's throttled attempts are spaced at most RenewalMaxRetryDelay apart, so that they
// fit the few seconds in which the renewal can still keep the lease; other writes keep the
// client's own backoff (up to 1, 2 and 4 s for a throttled request).
func TestDynamoDBRenewalRetriesPromptly(t *testing.T) {
	ctx := context.Background()
	rec := &optionRecorder{Client: testenv.DynamoDB(t, nil)}
	table := testenv.TableName(t, rec.Client)
	store, err := NewDynamoDBStore(rec, DynamoDBConfig{TableName: table})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	held := mustTake(t, store, "k", "w1")
	if d := retryDelays(rec.last); d <= RenewalMaxRetryDelay {
		t.Fatalf("a take's retry delays reach only %v; the check below would prove nothing", d)
	}
	if _, err := store.RenewLease(ctx, held); err != nil {
		t.Fatal(err)
	}
	if d := retryDelays(rec.last); d < 0 || d > RenewalMaxRetryDelay {
		t.Errorf("a renewal's throttled retries wait up to %v, want at most %v", d, RenewalMaxRetryDelay)
	}
}
