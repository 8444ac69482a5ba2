package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/metrics"
)

// fakeConfig is a worker configuration on a fake stream and a shared memory store, with
// timings short enough for unit tests.
func fakeConfig(t testing.TB, f *fakeKinesis, store checkpoint.Store, id string, proc ProcessorFactory) Config {
	return Config{
		StreamName:           f.stream,
		ApplicationName:      "app",
		WorkerID:             id,
		Processor:            proc,
		Kinesis:              f,
		LeaseStore:           store,
		InitialPosition:      TrimHorizon,
		FailoverTime:         600 * time.Millisecond,
		ShardSyncInterval:    200 * time.Millisecond,
		LeaseCleanupDelay:    100 * time.Millisecond,
		IdleTimeBetweenReads: 20 * time.Millisecond,
		MinTimeBetweenReads:  -1,
		ShutdownTimeout:      5 * time.Second,
		Logger:               testLogger(t),
	}
}

// putKeys writes n records for each of keys (data "key/idx"), continuing each key's index
// from next.
func putKeys(f *fakeKinesis, keys []string, n int, next map[string]int) int {
	total := 0
	for i := 0; i < n; i++ {
		for _, k := range keys {
			f.put(k, "", []byte(fmt.Sprintf("%s/%d", k, next[k])))
			next[k]++
			total++
		}
	}
	return total
}

func testKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%03d", i)
	}
	return keys
}

func TestWorkerProcessesAllRecordsInOrderAcrossReshards(t *testing.T) {
	checkNoLeak(t)
	f := newFakeKinesis("s", 4)
	store := checkpoint.NewMemoryStore()
	c := newCollector()
	keys := testKeys(40)
	next := map[string]int{}
	total := putKeys(f, keys, 5, next)

	var workers []*Worker
	var stops []*runningWorker
	for _, id := range []string{"w1", "w2"} {
		w, err := New(fakeConfig(t, f, store, id, processorFor(c, id, nil)))
		if err != nil {
			t.Fatal(err)
		}
		workers = append(workers, w)
		stops = append(stops, runWorker(t, w))
	}
	c.waitDistinct(t, total, 10*time.Second)

	f.split("shardId-000000000000")
	total += putKeys(f, keys, 5, next)
	f.merge("shardId-000000000002", "shardId-000000000003")
	total += putKeys(f, keys, 5, next)
	f.split("shardId-000000000004") // a child of the first split
	total += putKeys(f, keys, 5, next)
	c.waitDistinct(t, total, 15*time.Second)
	checkOrder(t, c.snapshot())

	// Finished parents are cleaned up once their children started.
	waitFor(t, 10*time.Second, "finished leases deleted", func() bool {
		ls, _ := store.ListLeases(context.Background())
		for _, l := range ls {
			if l.Checkpoint.IsShardEnd() {
				return false
			}
		}
		return len(ls) == len(f.openShards())
	})

	for _, rw := range stops {
		if err := rw.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	ls, _ := store.ListLeases(context.Background())
	for _, l := range ls {
		if l.Owner != "" {
			t.Errorf("lease %s still owned by %s after shutdown", l.Key, l.Owner)
		}
	}
	for _, w := range workers {
		st := w.Stats()
		if st.LeasesHeld != 0 {
			t.Errorf("%s holds %d leases after Run returned", st.WorkerID, st.LeasesHeld)
		}
	}
}

func TestWorkerGracefulShutdownHandsLeasesOver(t *testing.T) {
	checkNoLeak(t)
	f := newFakeKinesis("s", 4)
	store := checkpoint.NewMemoryStore()
	c := newCollector()
	keys := testKeys(20)
	next := map[string]int{}
	total := putKeys(f, keys, 3, next)

	cfg1 := fakeConfig(t, f, store, "w1", processorFor(c, "w1", nil))
	cfg1.FailoverTime = 3 * time.Second
	w1, _ := New(cfg1)
	cfg2 := cfg1
	cfg2.WorkerID, cfg2.Processor = "w2", processorFor(c, "w2", nil)
	w2, _ := New(cfg2)
	rw1 := runWorker(t, w1)
	c.waitDistinct(t, total, 10*time.Second)
	rw2 := runWorker(t, w2)
	// w2 balances by asking w1 for leases (graceful handoffs), without duplicates.
	waitFor(t, 15*time.Second, "two leases each", func() bool {
		return w1.Stats().LeasesHeld == 2 && w2.Stats().LeasesHeld == 2
	})
	total += putKeys(f, keys, 3, next)
	c.waitDistinct(t, total, 10*time.Second)

	if err := rw1.stop(); err != nil {
		t.Fatal(err)
	}
	// A graceful stop gives its leases up before Run returns (free, or already handed to w2),
	// so w2 need not wait for them to expire. Checked on the table rather than by the clock,
	// which a loaded machine would make flaky.
	ls, err := store.ListLeases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Owner == "w1" {
			t.Errorf("lease %s still names w1 as its owner after w1's graceful stop", l.Key)
		}
	}
	waitFor(t, 15*time.Second, "w2 holding every lease", func() bool { return w2.Stats().LeasesHeld == 4 })
	total += putKeys(f, keys, 3, next)
	c.waitDistinct(t, total, 10*time.Second)
	if err := rw2.stop(); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for data, n := range c.seen {
		if n > 1 {
			t.Errorf("record %s processed %d times; graceful handoffs should not duplicate", data, n)
		}
	}
	checkOrder(t, c.events)
}

func TestRunTwice(t *testing.T) {
	f := newFakeKinesis("s", 1)
	w, err := New(fakeConfig(t, f, checkpoint.NewMemoryStore(), "w", processorFor(newCollector(), "w", nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = w.Run(ctx)
	if err := w.Run(context.Background()); !errors.Is(err, ErrAlreadyStarted) {
		t.Fatalf("second Run: %v, want ErrAlreadyStarted", err)
	}
}

// cutOffStore is one worker's store that fails every call once cut is set, as for a worker
// that lost its connection to the lease table.
type cutOffStore struct {
	checkpoint.Store
	cut atomic.Bool
}

var errCutOff = errors.New("connection to the lease table lost (injected)")

func (s *cutOffStore) err() error {
	if s.cut.Load() {
		return errCutOff
	}
	return nil
}

func (s *cutOffStore) ListLeases(ctx context.Context) ([]checkpoint.Lease, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.ListLeases(ctx)
}

func (s *cutOffStore) GetLease(ctx context.Context, key string) (checkpoint.Lease, error) {
	if err := s.err(); err != nil {
		return checkpoint.Lease{}, err
	}
	return s.Store.GetLease(ctx, key)
}

func (s *cutOffStore) TakeLease(ctx context.Context, seen checkpoint.Lease, owner string) (checkpoint.Lease, error) {
	if err := s.err(); err != nil {
		return checkpoint.Lease{}, err
	}
	return s.Store.TakeLease(ctx, seen, owner)
}

func (s *cutOffStore) RenewLease(ctx context.Context, held checkpoint.Lease) (checkpoint.Lease, error) {
	if err := s.err(); err != nil {
		return checkpoint.Lease{}, err
	}
	return s.Store.RenewLease(ctx, held)
}

func (s *cutOffStore) UpdateCheckpoint(ctx context.Context, held checkpoint.Lease, cp checkpoint.ExtendedSequenceNumber) (checkpoint.Lease, error) {
	if err := s.err(); err != nil {
		return checkpoint.Lease{}, err
	}
	return s.Store.UpdateCheckpoint(ctx, held, cp)
}

func (s *cutOffStore) EvictLease(ctx context.Context, held checkpoint.Lease) (checkpoint.Lease, error) {
	if err := s.err(); err != nil {
		return checkpoint.Lease{}, err
	}
	return s.Store.EvictLease(ctx, held)
}

// A worker whose renewals fail stops processing its shard before another worker can take the
// lease, so the two never process the shard at the same time.
func TestWorkerStopsBeforeItsLeaseCanBeTaken(t *testing.T) {
	checkNoLeak(t)
	f := newFakeKinesis("s", 1)
	mem := checkpoint.NewMemoryStore()
	c := newCollector()
	keys := testKeys(10)
	next := map[string]int{}
	total := putKeys(f, keys, 3, next)

	cut := &cutOffStore{Store: mem}
	cfg1 := fakeConfig(t, f, cut, "w1", processorFor(c, "w1", nil))
	w1, _ := New(cfg1)
	rw1 := runWorker(t, w1)
	c.waitDistinct(t, total, 10*time.Second)
	cfg2 := fakeConfig(t, f, mem, "w2", processorFor(c, "w2", nil))
	w2, _ := New(cfg2)
	rw2 := runWorker(t, w2)

	var lostAt time.Time
	cut.cut.Store(true)
	cutAt := time.Now()
	// Records keep coming; w1 cannot checkpoint them.
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				putKeys(f, keys[:1], 1, next)
			}
		}
	}()
	waitFor(t, 5*time.Second, "w1 giving the shard up", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.leaseLost["shardId-000000000000"] > 0 && lostAt.IsZero() {
			lostAt = time.Now()
		}
		return !lostAt.IsZero()
	})
	waitFor(t, 5*time.Second, "w2 taking the shard", func() bool { return w2.Stats().LeasesHeld == 1 })
	close(stop)
	if d := lostAt.Sub(cutAt); d > cfg1.FailoverTime {
		t.Errorf("w1 stopped %s after its renewals began to fail, want within the failover time", d)
	}
	var lastW1, firstW2 time.Time
	for _, e := range c.snapshot() {
		if e.worker == "w1" && e.at.After(lastW1) {
			lastW1 = e.at
		}
		if e.worker == "w2" && (firstW2.IsZero() || e.at.Before(firstW2)) {
			firstW2 = e.at
		}
	}
	if !firstW2.IsZero() && !lastW1.Before(firstW2) {
		t.Errorf("w1 processed until %s, after w2 began at %s", lastW1.Format(time.StampMilli), firstW2.Format(time.StampMilli))
	}
	if st := w1.Stats(); st.LeasesLost != 1 {
		t.Errorf("w1 LeasesLost = %d, want 1", st.LeasesLost)
	}
	_ = rw1.stop()
	_ = rw2.stop()
}

// blockingShutdown never finishes ShutdownRequested on its own, as an owner that does not
// answer a handoff.
type blockingShutdown struct{ testProcessor }

func (p *blockingShutdown) ShutdownRequested(ctx context.Context, in ShutdownRequestedInput) error {
	<-ctx.Done()
	return ctx.Err()
}

// A handoff the owner never completes times out. The owner still renews, so the request is
// withdrawn, and the thief steals the lease by the KCL 2.x rule (target one of two leases)
// at a following scan.
func TestHandoffTimeout(t *testing.T) {
	checkNoLeak(t)
	f := newFakeKinesis("s", 2)
	store := checkpoint.NewMemoryStore()
	c := newCollector()
	putKeys(f, testKeys(10), 2, map[string]int{})
	cfg1 := fakeConfig(t, f, store, "w1", ProcessorFactoryFunc(func(shard string) RecordProcessor {
		return &blockingShutdown{testProcessor{c: c, worker: "w1", shard: shard}}
	}))
	cfg1.HandoffTimeout = time.Second
	cfg1.FailoverTime = 3 * time.Second
	cfg1.ShutdownTimeout = 500 * time.Millisecond
	w1, _ := New(cfg1)
	rw1 := runWorker(t, w1)
	waitFor(t, 5*time.Second, "w1 holding both leases", func() bool { return w1.Stats().LeasesHeld == 2 })
	cfg2 := cfg1
	cfg2.WorkerID, cfg2.Processor = "w2", processorFor(c, "w2", nil)
	w2, _ := New(cfg2)
	asked := time.Now()
	rw2 := runWorker(t, w2)
	waitFor(t, 10*time.Second, "w2 taking a lease", func() bool { return w2.Stats().LeasesHeld == 1 })
	took := time.Since(asked)
	if took < cfg1.HandoffTimeout || took > cfg1.HandoffTimeout+cfg1.FailoverTime {
		t.Errorf("lease taken %s after w2 started, want after the handoff timeout %s and before a failover", took, cfg1.HandoffTimeout)
	}
	waitFor(t, 5*time.Second, "w1 noticing", func() bool { return w1.Stats().LeasesHeld == 1 })
	if st := w1.Stats(); st.LeasesLost != 1 {
		t.Errorf("w1 LeasesLost = %d, want 1", st.LeasesLost)
	}
	_ = rw2.stop()
	_ = rw1.stop()
}

// gatedShutdown finishes ShutdownRequested only once the test opens its gate: an owner that
// is slow to checkpoint before a handoff.
type gatedShutdown struct {
	testProcessor
	gate <-chan struct{}
}

func (p *gatedShutdown) ShutdownRequested(ctx context.Context, in ShutdownRequestedInput) error {
	select {
	case <-p.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return p.testProcessor.ShutdownRequested(ctx, in)
}

// A worker that stops while a lease it asked for is still being handed over withdraws the
// request: the owner keeps the lease, instead of the lease naming a stopped worker as its
// next owner until it expires.
func TestShutdownWithdrawsPendingHandoff(t *testing.T) {
	checkNoLeak(t)
	f := newFakeKinesis("s", 2)
	store := checkpoint.NewMemoryStore()
	c := newCollector()
	putKeys(f, testKeys(10), 2, map[string]int{})
	gate := make(chan struct{})
	cfg1 := fakeConfig(t, f, store, "w1", ProcessorFactoryFunc(func(shard string) RecordProcessor {
		return &gatedShutdown{testProcessor: testProcessor{c: c, worker: "w1", shard: shard}, gate: gate}
	}))
	cfg1.FailoverTime = 3 * time.Second
	w1, _ := New(cfg1)
	rw1 := runWorker(t, w1)
	waitFor(t, 5*time.Second, "w1 holding both leases", func() bool { return w1.Stats().LeasesHeld == 2 })
	cfg2 := cfg1
	cfg2.WorkerID, cfg2.Processor = "w2", processorFor(c, "w2", nil)
	w2, _ := New(cfg2)
	rw2 := runWorker(t, w2)
	waitFor(t, 10*time.Second, "w2 asking for a lease", func() bool { return w2.Stats().HandoffsRequested == 1 })
	if err := rw2.stop(); err != nil {
		t.Fatal(err)
	}
	ls, err := store.ListLeases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Owner != "w1" || l.CheckpointOwner != "" {
			t.Errorf("lease %s: owner %q, checkpoint owner %q after w2 stopped; want w1's, with no handoff left", l.Key, l.Owner, l.CheckpointOwner)
		}
	}
	close(gate)
	if err := rw1.stop(); err != nil {
		t.Fatal(err)
	}
}

func TestInitialPositions(t *testing.T) {
	for _, pos := range []InitialPosition{Latest, AtTimestamp} {
		t.Run(pos.String(), func(t *testing.T) {
			checkNoLeak(t)
			f := newFakeKinesis("s", 2)
			c := newCollector()
			keys := testKeys(10)
			next := map[string]int{}
			putKeys(f, keys, 2, next)
			time.Sleep(20 * time.Millisecond)
			cfg := fakeConfig(t, f, checkpoint.NewMemoryStore(), "w1", processorFor(c, "w1", nil))
			cfg.InitialPosition = pos
			cfg.InitialTimestamp = time.Now()
			w, _ := New(cfg)
			rw := runWorker(t, w)
			waitFor(t, 5*time.Second, "shards started", func() bool {
				for _, s := range w.Stats().Shards {
					if s.State != StateProcessing {
						return false
					}
				}
				return w.Stats().LeasesHeld == 2
			})
			time.Sleep(100 * time.Millisecond)
			putKeys(f, keys, 1, next)
			c.waitDistinct(t, len(keys), 5*time.Second)
			time.Sleep(100 * time.Millisecond)
			for _, e := range c.snapshot() {
				if e.idx < 2 {
					t.Errorf("record %s/%d written before the start was processed", e.key, e.idx)
				}
			}
			_ = rw.stop()
		})
	}
}

func TestMetricsAndStats(t *testing.T) {
	checkNoLeak(t)
	f := newFakeKinesis("s", 2)
	reg := metrics.NewRegistry()
	c := newCollector()
	total := putKeys(f, testKeys(10), 3, map[string]int{})
	cfg := fakeConfig(t, f, checkpoint.NewMemoryStore(), "w1", processorFor(c, "w1", nil))
	cfg.Metrics = reg
	w, _ := New(cfg)
	rw := runWorker(t, w)
	c.waitDistinct(t, total, 5*time.Second)
	waitFor(t, 5*time.Second, "a renewal", func() bool { return w.Stats().Renewals > 0 })
	snap := reg.Snapshot()
	if n := snap.CounterSum(metrics.RecordsProcessed); n != int64(total) {
		t.Errorf("RecordsProcessed = %d, want %d", n, total)
	}
	if n := snap.CounterSum(metrics.BytesProcessed); n == 0 {
		t.Error("BytesProcessed = 0")
	}
	if v := snap.GaugeSum(metrics.LeasesHeld); v != 2 {
		t.Errorf("LeasesHeld = %v, want 2", v)
	}
	if n := snap.CounterSum(metrics.LeasesTaken); n != 2 {
		t.Errorf("LeasesTaken = %d, want 2", n)
	}
	if d := snap.MergedDistribution(metrics.RenewalLatency); d.Count == 0 {
		t.Error("no RenewalLatency observed")
	}
	if d := snap.MergedDistribution(metrics.ProcessingTime); d.Count == 0 {
		t.Error("no ProcessingTime observed")
	}
	if _, ok := snap.Find(metrics.MillisBehindLatest, metrics.Dim(metrics.DimStreamName, "s"), metrics.Dim(metrics.DimShardID, "shardId-000000000000")); !ok {
		t.Error("no MillisBehindLatest series for the shard")
	}
	st := w.Stats()
	if st.RecordsProcessed != int64(total) || st.LeasesHeld != 2 || len(st.Shards) != 2 || st.Batches == 0 {
		t.Errorf("stats %+v", st)
	}
	_ = rw.stop()
	if w.Stats().LeasesHeld != 0 {
		t.Error("leases held after Run returned")
	}
}

// A worker configured for fan-out whose client cannot subscribe reads by polling, and says so.
func TestFanOutFallsBackToPolling(t *testing.T) {
	checkNoLeak(t)
	f := newFakeKinesis("s", 1)
	c := newCollector()
	total := putKeys(f, testKeys(5), 2, map[string]int{})
	cfg := fakeConfig(t, f, checkpoint.NewMemoryStore(), "w1", processorFor(c, "w1", nil))
	cfg.Retrieval = FanOut
	w, _ := New(cfg)
	rw := runWorker(t, w)
	c.waitDistinct(t, total, 5*time.Second)
	if st := w.Stats(); st.Retrieval != Polling || st.RetrievalFallbacks != 1 {
		t.Errorf("retrieval %s with %d fallbacks, want polling after one fallback", st.Retrieval, st.RetrievalFallbacks)
	}
	_ = rw.stop()
}

// A processor that panics is treated as one that failed: the batch comes again, the worker
// lives on.
func TestProcessorPanicIsRecovered(t *testing.T) {
	checkNoLeak(t)
	f := newFakeKinesis("s", 1)
	total := putKeys(f, testKeys(5), 2, map[string]int{})
	var seen atomic.Int64
	var panicked atomic.Bool
	cfg := fakeConfig(t, f, checkpoint.NewMemoryStore(), "w1", RecordFunc(func(ctx context.Context, r Record) error {
		if !panicked.Swap(true) {
			panic("bad record")
		}
		seen.Add(1)
		return nil
	}))
	cfg.MaxProcessingBackoff = 50 * time.Millisecond
	w, _ := New(cfg)
	rw := runWorker(t, w)
	waitFor(t, 5*time.Second, "every record", func() bool { return seen.Load() == int64(total) })
	if st := w.Stats(); st.ProcessorErrors != 1 {
		t.Errorf("ProcessorErrors = %d, want 1", st.ProcessorErrors)
	}
	_ = rw.stop()
}
