package consumer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardline/shardline/checkpoint"
)

// testLogger logs to stderr when SHARDLINE_TEST_LOG is set, and nowhere otherwise.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SHARDLINE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// event is one record a processor processed.
type event struct {
	worker, shard string
	key           string
	idx           int // the record's index among its key's records, from its data "key/idx"
	pos           checkpoint.ExtendedSequenceNumber
	at            time.Time
}

// collector gathers what the test processors of several workers did.
type collector struct {
	mu          sync.Mutex
	events      []event
	seen        map[string]int // data -> times processed
	checkpoints map[string]map[string]checkpoint.ExtendedSequenceNumber
	shutdowns   map[string]int // shard -> ShutdownRequested calls
	leaseLost   map[string]int // shard -> LeaseLost calls
	shardEnds   map[string]int // shard -> ShardEnded calls
	notify      chan struct{}
}

func newCollector() *collector {
	return &collector{
		seen:        map[string]int{},
		checkpoints: map[string]map[string]checkpoint.ExtendedSequenceNumber{},
		shutdowns:   map[string]int{},
		leaseLost:   map[string]int{},
		shardEnds:   map[string]int{},
		notify:      make(chan struct{}, 1),
	}
}

func (c *collector) record(worker, shard string, r *Record, at time.Time) {
	key, idxs, _ := strings.Cut(string(r.Data), "/")
	idxs, _, _ = strings.Cut(idxs, "/")
	idx, _ := strconv.Atoi(idxs)
	c.mu.Lock()
	c.events = append(c.events, event{worker: worker, shard: shard, key: key, idx: idx, pos: r.Position(), at: at})
	c.seen[string(r.Data)]++
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *collector) checkpointed(worker, shard string, pos checkpoint.ExtendedSequenceNumber) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.checkpoints[worker] == nil {
		c.checkpoints[worker] = map[string]checkpoint.ExtendedSequenceNumber{}
	}
	c.checkpoints[worker][shard] = pos
}

func (c *collector) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

func (c *collector) snapshot() []event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

// waitDistinct waits until n distinct records were processed.
func (c *collector) waitDistinct(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for c.distinct() < n {
		if time.Now().After(deadline) {
			t.Fatalf("processed %d distinct records, want %d, after %s", c.distinct(), n, timeout)
		}
		select {
		case <-c.notify:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkOrder verifies that, per key, each record was first processed only after every
// earlier record of the key: order holds across shards, parents and children.
func checkOrder(t testing.TB, events []event) {
	t.Helper()
	next := map[string]int{}
	bad := 0
	for _, e := range events {
		n := next[e.key]
		switch {
		case e.idx == n:
			next[e.key] = n + 1
		case e.idx > n:
			if bad < 5 {
				t.Errorf("key %s: record %d processed (shard %s, worker %s, %s) before record %d", e.key, e.idx, e.shard, e.worker, e.pos, n)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d records processed out of order", bad)
	}
}

// testProcessor records into a collector and checkpoints every checkpointEvery batches.
type testProcessor struct {
	c               *collector
	worker, shard   string
	checkpointEvery int
	batches         int
	skipShardEnd    int // ShardEnded calls to answer without checkpointing
	delay           time.Duration
}

func (p *testProcessor) Initialize(ctx context.Context, in InitializeInput) error { return nil }

func (p *testProcessor) ProcessRecords(ctx context.Context, in ProcessRecordsInput) error {
	now := time.Now()
	for i := range in.Records {
		p.c.record(p.worker, p.shard, &in.Records[i], now)
	}
	if p.delay > 0 {
		select {
		case <-time.After(p.delay):
		case <-ctx.Done():
		}
	}
	p.batches++
	if p.checkpointEvery <= 1 || p.batches%p.checkpointEvery == 0 {
		if err := in.Checkpointer.Checkpoint(ctx); err == nil {
			last := in.Records[len(in.Records)-1].Position()
			if lp, ok := in.Checkpointer.LastDelivered(); ok {
				last = lp
			}
			p.c.checkpointed(p.worker, p.shard, last)
		}
	}
	return nil
}

func (p *testProcessor) LeaseLost(ctx context.Context, in LeaseLostInput) {
	p.c.mu.Lock()
	p.c.leaseLost[p.shard]++
	p.c.mu.Unlock()
}

func (p *testProcessor) ShardEnded(ctx context.Context, in ShardEndedInput) error {
	p.c.mu.Lock()
	p.c.shardEnds[p.shard]++
	skip := p.c.shardEnds[p.shard] <= p.skipShardEnd
	p.c.mu.Unlock()
	if skip {
		return nil
	}
	return in.Checkpointer.Checkpoint(ctx)
}

func (p *testProcessor) ShutdownRequested(ctx context.Context, in ShutdownRequestedInput) error {
	p.c.mu.Lock()
	p.c.shutdowns[p.shard]++
	p.c.mu.Unlock()
	if _, ok := in.Checkpointer.LastDelivered(); !ok {
		return nil
	}
	err := in.Checkpointer.Checkpoint(ctx)
	if err == nil {
		if lp, ok := in.Checkpointer.LastDelivered(); ok {
			p.c.checkpointed(p.worker, p.shard, lp)
		}
	}
	return err
}

// processorFor returns a factory of test processors for one worker.
func processorFor(c *collector, worker string, tweak func(*testProcessor)) ProcessorFactory {
	return ProcessorFactoryFunc(func(shard string) RecordProcessor {
		p := &testProcessor{c: c, worker: worker, shard: shard}
		if tweak != nil {
			tweak(p)
		}
		return p
	})
}

// runningWorker is a worker running in the background.
type runningWorker struct {
	w      *Worker
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// runWorker runs w in the background until the test ends or stop is called.
func runWorker(t testing.TB, w *Worker) *runningWorker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rw := &runningWorker{w: w, cancel: cancel, done: make(chan struct{})}
	go func() {
		rw.err = w.Run(ctx)
		close(rw.done)
	}()
	t.Cleanup(func() { _ = rw.stop() })
	return rw
}

// stop ends Run's context (a graceful shutdown) and returns Run's error.
func (rw *runningWorker) stop() error {
	rw.cancel()
	return rw.wait(60 * time.Second)
}

// wait waits for Run to return and returns its error.
func (rw *runningWorker) wait(timeout time.Duration) error {
	select {
	case <-rw.done:
		return rw.err
	case <-time.After(timeout):
		return fmt.Errorf("worker %s did not stop within %s", rw.w.WorkerID(), timeout)
	}
}

// checkNoLeak fails the test if goroutines of this package are still running once the test's
// workers stopped.
func checkNoLeak(t testing.TB) {
	t.Helper()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			var leaked []string
			for _, g := range strings.Split(string(buf[:n]), "\n\n") {
				if (strings.Contains(g, "shardline/consumer.(*") || strings.Contains(g, "shardline/internal/fanout.")) && !strings.Contains(g, "checkNoLeak") {
					leaked = append(leaked, g)
				}
			}
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines left running:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
