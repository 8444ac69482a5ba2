package consumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/internal/testenv"
)

// streamIdentity returns a stream's ARN and the KCL's serialized StreamIdentifier for it,
// account:stream:creationEpoch (StreamIdentifier.multiStreamInstance from the ARN and the
// creation time in seconds).
func streamIdentity(t testing.TB, kc *kinesis.Client, stream string) (arn, id string) {
	t.Helper()
	out, err := kc.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	d := out.StreamDescriptionSummary
	arn = aws.ToString(d.StreamARN)
	account := strings.Split(arn, ":")[4]
	return arn, account + ":" + stream + ":" + strconv.FormatInt(d.StreamCreationTimestamp.Unix(), 10)
}

// keysWithPrefix returns n partition keys of the "prefix-NNN" form.
func keysWithPrefix(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

// TestMultiStreamWorkers runs two multi-stream workers over two streams on a lease table in
// which a KCL multi-stream application left a checkpoint for one shard. They must resume
// that shard after the KCL's checkpoint, consume both streams in order, write every lease in
// the KCL's multi-stream format, and, when a stream leaves the list, stop it and delete its
// leases after the deletion delay (the KCL's AutoDetectionAndDeferredDeletionStrategy).
func TestMultiStreamWorkers(t *testing.T) {
	checkNoLeak(t)
	env := newEmuEnv(t, 2, nil, nil) // stream A
	streamB := testenv.CreateStream(t, env.kc, 1)
	_, idA := streamIdentity(t, env.kc, env.stream)
	arnB, idB := streamIdentity(t, env.kc, streamB)
	ctx := context.Background()

	// A record the KCL application processed and checkpointed before the migration.
	old, err := env.kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(env.stream), PartitionKey: aws.String("old"), ExplicitHashKey: aws.String("0"), Data: []byte("old/0/checkpointed-by-the-kcl")})
	if err != nil {
		t.Fatal(err)
	}
	putKCLItems(t, env, kclMultiStreamLease(idA, aws.ToString(old.ShardId), "kcl-ms-gone", "12", aws.ToString(old.SequenceNumber)))

	c := newCollector()
	prodA := newTestProducer(t, env.kc, env.stream)
	prodB := newTestProducer(t, env.kc, streamB)
	nA, err := prodA.produce(ctx, keysWithPrefix("a", 40), 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	nB, err := prodB.produce(ctx, keysWithPrefix("b", 20), 3, 0)
	if err != nil {
		t.Fatal(err)
	}

	var listMu sync.Mutex
	list := []StreamConfig{
		{StreamName: env.stream, InitialPosition: TrimHorizon},
		{StreamARN: arnB, InitialPosition: TrimHorizon},
	}
	streams := func(context.Context) ([]StreamConfig, error) {
		listMu.Lock()
		defer listMu.Unlock()
		return append([]StreamConfig(nil), list...), nil
	}
	var ms []*MultiStreamWorker
	var dones []chan error
	cancels := []context.CancelFunc{}
	for _, id := range []string{"w1", "w2"} {
		base := env.config(t, id, nil)
		base.StreamName, base.InitialPosition = "", Latest
		m, err := NewMultiStream(MultiStreamConfig{
			Config:  base,
			Streams: streams,
			ProcessorFor: func(sc StreamConfig) ProcessorFactory {
				name := sc.StreamName
				if name == "" {
					name, _ = streamNameFromARN(sc.StreamARN)
				}
				return ProcessorFactoryFunc(func(shard string) RecordProcessor {
					return &testProcessor{c: c, worker: id, shard: name + "/" + shard}
				})
			},
			StreamListInterval:             500 * time.Millisecond,
			FormerStreamLeaseDeletionDelay: 2 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- m.Run(rctx) }()
		ms, dones, cancels = append(ms, m), append(dones, done), append(cancels, cancel)
	}
	stop := func() {
		for i, cancel := range cancels {
			cancel()
			select {
			case err := <-dones[i]:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(60 * time.Second):
				t.Errorf("worker %d did not stop", i)
			}
		}
		cancels = nil
	}
	t.Cleanup(func() {
		if cancels != nil {
			stop()
		}
	})

	c.waitDistinct(t, nA+nB, 60*time.Second)
	c.mu.Lock()
	for data := range c.seen {
		if strings.HasPrefix(data, "old/") {
			t.Errorf("%q processed although the KCL checkpointed it", data)
		}
	}
	c.mu.Unlock()
	checkOrder(t, c.snapshot())

	// Every lease in the KCL's multi-stream format, attribute by attribute.
	raw, err := env.ddb.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(env.table)})
	if err != nil {
		t.Fatal(err)
	}
	perStream := map[string]int{}
	for _, item := range raw.Items {
		key := item["leaseKey"].(*ddbtypes.AttributeValueMemberS).Value
		sn, ok1 := item["streamName"].(*ddbtypes.AttributeValueMemberS)
		sh, ok2 := item["shardId"].(*ddbtypes.AttributeValueMemberS)
		if !ok1 || !ok2 || key != sn.Value+":"+sh.Value || (sn.Value != idA && sn.Value != idB) {
			t.Errorf("lease row %q is not a multi-stream lease of the two streams: %v", key, item)
			continue
		}
		perStream[sn.Value]++
	}
	if perStream[idA] != 2 || perStream[idB] != 1 {
		t.Errorf("leases per stream %v, want 2 for %s and 1 for %s", perStream, idA, idB)
	}

	// Stream B leaves the list: after the delay it stops and its leases are deleted.
	listMu.Lock()
	list = list[:1]
	listMu.Unlock()
	waitFor(t, 20*time.Second, "stream B retired by both workers", func() bool {
		for _, m := range ms {
			if _, ok := m.Stats()[idB]; ok {
				return false
			}
		}
		return true
	})
	waitFor(t, 10*time.Second, "stream B's leases deleted", func() bool {
		leases, err := newScopedStore(storeFor(t, env), idB).ListLeases(ctx)
		return err == nil && len(leases) == 0
	})
	for _, m := range ms {
		if _, ok := m.Stats()[idA]; !ok {
			t.Errorf("worker %s no longer consumes stream A", m.WorkerID())
		}
	}
	// Stream A still flows.
	more, err := prodA.produce(ctx, keysWithPrefix("a", 40), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.waitDistinct(t, nA+nB+more, 30*time.Second)
	stop()
}

// storeFor opens the test's lease table.
func storeFor(t testing.TB, env *emuEnv) checkpoint.Store {
	t.Helper()
	s, err := checkpoint.NewDynamoDBStore(env.ddb, checkpoint.DynamoDBConfig{TableName: env.table, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestScopedStore checks the multi-stream view of a lease table: keys and attributes in the
// KCL's MultiStreamLease form underneath, bare shard IDs above, other streams invisible.
func TestScopedStore(t *testing.T) {
	ctx := context.Background()
	mem := checkpoint.NewMemoryStore()
	a := newScopedStore(mem, "123456789012:orders:1700000000")
	b := newScopedStore(mem, "123456789012:payments:1700000001")
	l, err := a.CreateLeaseIfNotExists(ctx, checkpoint.Lease{Key: "shardId-000000000001", Checkpoint: checkpoint.TrimHorizon, ParentShardIDs: []string{"shardId-000000000000"}})
	if err != nil || l.Key != "shardId-000000000001" || l.StreamIdentifier != "" {
		t.Fatalf("create: %+v, %v", l, err)
	}
	raw, err := mem.GetLease(ctx, "123456789012:orders:1700000000:shardId-000000000001")
	if err != nil || raw.StreamIdentifier != "123456789012:orders:1700000000" || raw.ShardID != "shardId-000000000001" || raw.ParentShardIDs[0] != "shardId-000000000000" {
		t.Fatalf("stored as %+v, %v; want the KCL's multi-stream key and attributes", raw, err)
	}
	if ls, _ := b.ListLeases(ctx); len(ls) != 0 {
		t.Errorf("another stream sees %v", ls)
	}
	held, err := a.TakeLease(ctx, l, "w1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.RenewLease(ctx, held); err != nil {
		t.Fatal(err)
	}
	// A refusal carries the current lease in the stream's view.
	_, err = a.RenewLease(ctx, held)
	var le *checkpoint.LeaseError
	if !errors.As(err, &le) || le.Current == nil || le.Current.Key != "shardId-000000000001" || le.Key != "shardId-000000000001" {
		t.Fatalf("stale renew: %v", err)
	}
	ls, err := a.ListLeases(ctx)
	if err != nil || len(ls) != 1 || ls[0].Key != "shardId-000000000001" || ls[0].Owner != "w1" {
		t.Fatalf("list: %+v, %v", ls, err)
	}
	if err := a.DeleteLease(ctx, ls[0]); err != nil {
		t.Fatal(err)
	}
	if all, _ := mem.ListLeases(ctx); len(all) != 0 {
		t.Errorf("left %v", all)
	}
}

// TestMultiStreamOrphanedStream starts a multi-stream worker on a table that has leases of a
// stream its list lacks. As the KCL's Scheduler does (syncStreamsFromLeaseTableOnAppInit),
// the worker consumes that orphaned stream from its leases; when the stream is then deleted
// from Kinesis, its leases are deleted, as the KCL deletes the leases of deleted streams that
// are not listed.
func TestMultiStreamOrphanedStream(t *testing.T) {
	checkNoLeak(t)
	env := newEmuEnv(t, 1, nil, nil) // the listed stream
	orphan := testenv.CreateStream(t, env.kc, 1)
	_, idO := streamIdentity(t, env.kc, orphan)
	putKCLItems(t, env, kclMultiStreamLease(idO, "shardId-000000000000", "", "0", "TRIM_HORIZON"))
	c := newCollector()
	ctx := context.Background()
	n, err := newTestProducer(t, env.kc, orphan).produce(ctx, keysWithPrefix("o", 20), 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	base := env.config(t, "w1", processorFor(c, "w1", nil))
	base.StreamName, base.InitialPosition = "", Latest
	m, err := NewMultiStream(MultiStreamConfig{
		Config: base,
		Streams: func(context.Context) ([]StreamConfig, error) {
			return []StreamConfig{{StreamName: env.stream, InitialPosition: TrimHorizon}}, nil
		},
		StreamListInterval: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(rctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	c.waitDistinct(t, n, 30*time.Second)
	if _, ok := m.Stats()[idO]; !ok {
		t.Errorf("orphaned stream %s not consumed: %v", idO, m.Stats())
	}
	if _, err := env.kc.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(orphan), EnforceConsumerDeletion: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the deleted orphan's leases deleted", func() bool {
		leases, err := newScopedStore(storeFor(t, env), idO).ListLeases(ctx)
		return err == nil && len(leases) == 0
	})
	if _, ok := m.Stats()[idO]; ok {
		t.Errorf("deleted orphaned stream %s still running", idO)
	}
}
