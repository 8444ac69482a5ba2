package consumer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kinesistypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/checkpoint"
)

// Lease-table rows written item by item with the attribute names and DynamoDB types of the
// Java KCL's DynamoDBLeaseSerializer (leaseKey S, leaseOwner S, leaseCounter N, checkpoint S,
// checkpointSubSequenceNumber N, ownerSwitchesSinceCheckpoint N, parentShardId SS) and, for
// multi-stream leases, DynamoDBMultiStreamLeaseSerializer (streamName S holding the serialized
// StreamIdentifier "account:stream:creationEpoch", shardId S), whose lease key is
// MultiStreamLease.getLeaseKey: streamIdentifier + ":" + shardId.

func kclS(v string) ddbtypes.AttributeValue     { return &ddbtypes.AttributeValueMemberS{Value: v} }
func kclN(v string) ddbtypes.AttributeValue     { return &ddbtypes.AttributeValueMemberN{Value: v} }
func kclSS(v ...string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberSS{Value: v} }

// kclLease is a single-stream lease row as the KCL writes it.
func kclLease(key, owner, counter, cp string, parents ...string) map[string]ddbtypes.AttributeValue {
	item := map[string]ddbtypes.AttributeValue{
		"leaseKey":                     kclS(key),
		"leaseCounter":                 kclN(counter),
		"checkpoint":                   kclS(cp),
		"checkpointSubSequenceNumber":  kclN("0"),
		"ownerSwitchesSinceCheckpoint": kclN("0"),
	}
	if owner != "" {
		item["leaseOwner"] = kclS(owner)
	}
	if len(parents) > 0 {
		item["parentShardId"] = kclSS(parents...)
	}
	return item
}

// putKCLItems creates the lease table as a worker would and writes the rows.
func putKCLItems(t testing.TB, env *emuEnv, items ...map[string]ddbtypes.AttributeValue) {
	t.Helper()
	ctx := context.Background()
	store, err := checkpoint.NewDynamoDBStore(env.ddb, checkpoint.DynamoDBConfig{TableName: env.table, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	for _, item := range items {
		if _, err := env.ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(env.table), Item: item}); err != nil {
			t.Fatal(err)
		}
	}
}

// leaseKeys lists the keys of the table's lease rows.
func leaseKeys(t testing.TB, env *emuEnv) map[string]checkpoint.Lease {
	t.Helper()
	store, err := checkpoint.NewDynamoDBStore(env.ddb, checkpoint.DynamoDBConfig{TableName: env.table, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	leases, err := store.ListLeases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]checkpoint.Lease{}
	for _, l := range leases {
		out[l.Key] = l
	}
	return out
}

// A sequence number in the shape Kinesis hands out, for checkpoints of shards that do not
// exist.
const staleSeq = "49590338271490256608559692538361571095921575989136588898"

// TestStaleLeaseForVanishedShard runs a two-worker fleet on a lease table a KCL fleet left
// behind: a lease for a shard the stream never had, held by a worker that is gone, and
// another such lease that is the parent of a real shard's lease. Reading a vanished shard
// answers ResourceNotFoundException; the workers must tell it from a missing stream, end
// those shards as the KCL does (so the real child starts), clean their leases up, and keep
// running.
func TestStaleLeaseForVanishedShard(t *testing.T) {
	for _, mode := range retrievalModes() {
		t.Run(mode.String(), func(t *testing.T) { testStaleLease(t, mode) })
	}
}

func testStaleLease(t *testing.T, mode Retrieval) {
	checkNoLeak(t)
	env := newModeEnv(t, 2, mode)
	const (
		stale     = "shardId-000000000099"
		staleRoot = "shardId-000000000098"
		child     = "shardId-000000000001"
	)
	putKCLItems(t, env,
		kclLease(stale, "kcl-gone-1", "17", staleSeq),
		kclLease(staleRoot, "kcl-gone-2", "4", staleSeq),
		kclLease(child, "", "0", "TRIM_HORIZON", staleRoot),
	)
	c := newCollector()
	keys := testKeys(60)
	prod := newTestProducer(t, env.kc, env.stream)
	n, err := prod.produce(context.Background(), keys, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ws []*runningWorker
	for _, id := range []string{"w1", "w2"} {
		w, err := New(modeConfig(env.config(t, id, processorFor(c, id, nil)), mode))
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, runWorker(t, w))
	}

	deadline := time.Now().Add(60 * time.Second)
	for c.distinct() < n {
		for _, rw := range ws {
			select {
			case <-rw.done:
				t.Fatalf("worker %s stopped: %v", rw.w.WorkerID(), rw.err)
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("processed %d distinct records, want %d", c.distinct(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkOrder(t, c.snapshot())
	waitFor(t, 30*time.Second, "the vanished shards' leases deleted", func() bool {
		ls := leaseKeys(t, env)
		_, a := ls[stale]
		_, b := ls[staleRoot]
		return !a && !b
	})
	var vanished int64
	for _, rw := range ws {
		vanished += rw.w.Stats().VanishedShards
	}
	if vanished < 2 {
		t.Errorf("VanishedShards = %d over the fleet, want at least 2", vanished)
	}
	for _, rw := range ws {
		select {
		case <-rw.done:
			t.Fatalf("worker %s stopped: %v", rw.w.WorkerID(), rw.err)
		default:
		}
	}
	stopAll(t, ws)
}

// TestDeletedStreamIsFatal checks that a stream deleted under a running worker still stops it
// with an error matching ErrStreamNotFound, now that a ResourceNotFoundException from a read
// may also mean only the shard is gone.
func TestDeletedStreamIsFatal(t *testing.T) {
	checkNoLeak(t)
	env := newEmuEnv(t, 1, nil, nil)
	c := newCollector()
	cfg := env.config(t, "w1", processorFor(c, "w1", nil))
	cfg.ShardSyncInterval = time.Hour // the shard's read, not the shard sync, must find out
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rw := runWorker(t, w)
	waitFor(t, 20*time.Second, "the worker processing", func() bool {
		st := w.Stats()
		return len(st.Shards) == 1 && st.Shards[0].State == StateProcessing
	})
	if _, err := env.kc.DeleteStream(context.Background(), &kinesis.DeleteStreamInput{StreamName: aws.String(env.stream), EnforceConsumerDeletion: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	err = rw.wait(30 * time.Second)
	if !errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("Run returned %v, want ErrStreamNotFound", err)
	}
}

// kclMultiStreamLease is a multi-stream lease row as a KCL 3.x multi-stream application
// writes it: DynamoDBMultiStreamLeaseSerializer adds streamName (the serialized
// StreamIdentifier) and shardId, both of type S, to the single-stream attributes, and
// MultiStreamLease.getLeaseKey joins the two with a colon.
func kclMultiStreamLease(streamID, shardID, owner, counter, cp string) map[string]ddbtypes.AttributeValue {
	item := kclLease(streamID+":"+shardID, owner, counter, cp)
	item["streamName"] = kclS(streamID)
	item["shardId"] = kclS(shardID)
	return item
}

// TestSingleStreamWorkerIgnoresMultiStreamLeases shares a lease table with a KCL multi-stream
// application that consumes a stream of the same name (another account) with the same shard
// IDs: one lease nobody holds and one whose owner is gone. A single-stream worker must create
// and process its own leases and leave those rows exactly as they were.
func TestSingleStreamWorkerIgnoresMultiStreamLeases(t *testing.T) {
	checkNoLeak(t)
	env := newEmuEnv(t, 2, nil, nil)
	streamID := "123456789012:" + env.stream + ":1700000000"
	foreign := []map[string]ddbtypes.AttributeValue{
		kclMultiStreamLease(streamID, "shardId-000000000000", "", "0", staleSeq),
		kclMultiStreamLease(streamID, "shardId-000000000001", "kcl-ms-gone", "5", staleSeq),
	}
	putKCLItems(t, env, foreign...)
	before := leaseKeys(t, env)

	c := newCollector()
	prod := newTestProducer(t, env.kc, env.stream)
	n, err := prod.produce(context.Background(), testKeys(40), 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	ws := reshardFleet(t, env, c, 2, nil)
	started := time.Now()
	c.waitDistinct(t, n, 60*time.Second)
	// Long enough for the gone owner's lease to look expired to every worker.
	if d := 2*emuFailover - time.Since(started); d > 0 {
		time.Sleep(d)
	}
	after := leaseKeys(t, env)
	for _, item := range foreign {
		key := item["leaseKey"].(*ddbtypes.AttributeValueMemberS).Value
		b, a := before[key], after[key]
		if a.Owner != b.Owner || a.Counter != b.Counter || a.Checkpoint != b.Checkpoint || a.StreamIdentifier != streamID {
			t.Errorf("multi-stream lease %s changed: before %+v, after %+v", key, b, a)
		}
	}
	for _, id := range []string{"shardId-000000000000", "shardId-000000000001"} {
		if _, ok := after[id]; !ok {
			t.Errorf("no lease of its own for %s", id)
		}
	}
	for _, rw := range ws {
		if got := rw.w.Stats().ForeignLeases; got != 2 {
			t.Errorf("worker %s: ForeignLeases = %d, want 2", rw.w.WorkerID(), got)
		}
	}
	stopAll(t, ws)
}

// TestDeletedLeaseTableStopsRun deletes the lease table under a running worker: Run must
// return an error a supervisor can match, instead of running on with warnings while no shard
// is processed.
func TestDeletedLeaseTableStopsRun(t *testing.T) {
	checkNoLeak(t)
	env := newEmuEnv(t, 2, nil, nil)
	c := newCollector()
	w, err := New(env.config(t, "w1", processorFor(c, "w1", nil)))
	if err != nil {
		t.Fatal(err)
	}
	rw := runWorker(t, w)
	waitFor(t, 20*time.Second, "the worker holding both leases", func() bool { return w.Stats().LeasesHeld == 2 })
	if _, err := env.ddb.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(env.table)}); err != nil {
		t.Fatal(err)
	}
	err = rw.wait(30 * time.Second)
	if !errors.Is(err, ErrLeaseTableNotFound) || !errors.Is(err, checkpoint.ErrTableNotFound) {
		t.Fatalf("Run returned %v, want ErrLeaseTableNotFound", err)
	}
}

// iteratorRecorder passes Kinesis calls through and keeps the GetShardIterator requests.
type iteratorRecorder struct {
	KinesisAPI
	mu   sync.Mutex
	reqs []kinesis.GetShardIteratorInput
}

func (r *iteratorRecorder) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, *in)
	r.mu.Unlock()
	return r.KinesisAPI.GetShardIterator(ctx, in, optFns...)
}

// TestKCLLeaseAtTimestampWithoutConfiguredTime gives a worker configured LATEST a lease a KCL
// application left at AT_TIMESTAMP. The lease table has no time for that position (the KCL
// keeps it in its InitialPositionInStreamExtended configuration), so the worker has none to
// ask for: it must read from TRIM_HORIZON, delivering every record, and never ask for an
// iterator at the zero time.
func TestKCLLeaseAtTimestampWithoutConfiguredTime(t *testing.T) {
	checkNoLeak(t)
	env := newEmuEnv(t, 1, nil, nil)
	putKCLItems(t, env, kclLease("shardId-000000000000", "", "0", "AT_TIMESTAMP"))
	c := newCollector()
	prod := newTestProducer(t, env.kc, env.stream)
	n, err := prod.produce(context.Background(), testKeys(30), 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec := &iteratorRecorder{KinesisAPI: env.kc}
	cfg := env.config(t, "w1", processorFor(c, "w1", nil))
	cfg.InitialPosition = Latest
	cfg.Kinesis = rec
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rw := runWorker(t, w)
	c.waitDistinct(t, n, 30*time.Second)
	if err := rw.stop(); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reqs) == 0 {
		t.Fatal("no GetShardIterator request")
	}
	first := rec.reqs[0]
	if first.ShardIteratorType != kinesistypes.ShardIteratorTypeTrimHorizon || first.Timestamp != nil {
		t.Errorf("first GetShardIterator: type %s, timestamp %v; want TRIM_HORIZON without a time", first.ShardIteratorType, first.Timestamp)
	}
}
