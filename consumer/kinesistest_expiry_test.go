package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/kinesistest"
)

// blockingProcessor processes like testProcessor but holds its first batch until release is
// closed, telling the test through started that it holds it.
type blockingProcessor struct {
	testProcessor
	started chan struct{}
	release chan struct{}
	first   bool
}

func (p *blockingProcessor) ProcessRecords(ctx context.Context, in ProcessRecordsInput) error {
	if !p.first {
		p.first = true
		close(p.started)
		select {
		case <-p.release:
		case <-ctx.Done():
		}
	}
	return p.testProcessor.ProcessRecords(ctx, in)
}

// TestKinesistestIteratorExpiry holds a worker's first batch in the processor while the
// server's clock moves past the five-minute life of the shard iterator the worker holds for
// its next GetRecords call (https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetShardIterator.html:
// "A shard iterator expires 5 minutes after it is returned"). The call then fails with
// ExpiredIteratorException; the worker counts it, gets a new iterator after the last record it
// read, as the KCL's KinesisDataFetcher.restartIterator does from its last known sequence
// number, and goes on: every record is processed exactly once, in order.
func TestKinesistestIteratorExpiry(t *testing.T) {
	checkNoLeak(t)
	clock := kinesistest.NewManualClock(time.Now())
	env := newKTEnv(t, 1, kinesistest.Options{Clock: clock})
	keys := testKeys(30)
	prod := newTestProducer(t, env.client(nil), env.stream)
	ctx := t.Context()
	n, err := prod.produce(ctx, keys, 5, 0)
	if err != nil {
		t.Fatal(err)
	}

	c := newCollector()
	calls := newCallCounter()
	started, release := make(chan struct{}), make(chan struct{})
	cfg := env.config(t, env.client(calls), checkpoint.NewMemoryStore(), "app", "w1", ProcessorFactoryFunc(func(shard string) RecordProcessor {
		return &blockingProcessor{testProcessor: testProcessor{c: c, worker: "w1", shard: shard}, started: started, release: release}
	}))
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rw := runWorker(t, w)
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the first batch never reached the processor")
	}
	// Records written while the iterator ages, and the age itself.
	m, err := prod.produce(ctx, keys, 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(kinesistest.DefaultIteratorLifetime + time.Second)
	close(release)

	c.waitDistinct(t, n+m, 30*time.Second)
	if err := rw.stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	st := w.Stats()
	expired := calls.errs("GetRecords", "ExpiredIteratorException")
	if expired != 1 || st.IteratorsExpired != 1 {
		t.Errorf("the server refused %d expired iterators, Stats.IteratorsExpired = %d; want 1 and 1", expired, st.IteratorsExpired)
	}
	checkOrder(t, c.snapshot())
	checkExactlyOnce(t, c)
	if got := c.distinct(); got != n+m {
		t.Errorf("processed %d distinct records, want %d", got, n+m)
	}
}
