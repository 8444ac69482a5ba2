package producer

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDispatcherSleepsWhileRateLimited keeps putting records while every shard is held back
// by its rate limit and checks that the dispatcher wakes about as often as the limiter lets
// records go, not once per put: a put into a held-back shard changes nothing the dispatcher
// could act on before its own timer.
func TestDispatcherSleepsWhileRateLimited(t *testing.T) {
	f := newFake(t, 4)
	// RateLimit 1 lets each shard send 10 records a second. Without aggregation every put
	// queues a Kinesis record of its own, so every put reaches the dispatcher's queues.
	p := newTestProducer(t, f, Config{
		RateLimit:           1,
		DisableAdaptiveRate: true,
		DisableAggregation:  true,
		Linger:              5 * time.Millisecond,
		RecordTTL:           time.Minute,
		MaxBufferedRecords:  1 << 20,
	})
	for len(p.table.Load().shards) == 0 {
		time.Sleep(time.Millisecond)
	}
	const max = 200_000
	recs := make([]Record, max)
	for i := range recs {
		recs[i] = Record{PartitionKey: "k" + strconv.Itoa(i%64), Data: []byte("x")}
	}
	var results atomic.Int64
	done := func(*Record, Result) { results.Add(1) }
	ctx := context.Background()
	n := 0
	put := func(k int) {
		for end := min(n+k, max); n < end; n++ {
			if err := p.PutAsync(ctx, &recs[n], done); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Spend every shard's burst, so that from here on all of them are rate limited.
	put(1000)
	time.Sleep(50 * time.Millisecond)

	// Then put steadily, some 50,000 records a second, for a second.
	const window = time.Second
	w0, s0 := p.wakes.Load(), results.Load()
	start := time.Now()
	for time.Since(start) < window {
		put(50)
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	wakes, sent := p.wakes.Load()-w0, results.Load()-s0
	perSecond := float64(wakes) / elapsed.Seconds()
	t.Logf("%d puts, %d records sent, %d dispatcher wake-ups in %v", n, sent, wakes, elapsed)

	// Four shards at 10 records a second: about 40 sends a second, each costing the
	// dispatcher a timer wake-up and a completion. 200 a second leaves room for jitter and
	// is far below one per put.
	if perSecond > 200 {
		t.Fatalf("dispatcher woke %.0f times a second while every shard was rate limited (%d puts)", perSecond, n)
	}
	if sent == 0 || sent > 100 {
		t.Fatalf("%d records sent in %v at 10 records/s per shard", sent, elapsed)
	}

	cctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Close(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want DeadlineExceeded", err)
	}
	if got := results.Load(); got != int64(n) {
		t.Fatalf("%d results for %d records", got, n)
	}
}

// TestRoomWaitersInOrder fills the buffer, queues puts behind it and checks that they are
// let in in order as room frees, that a waiter whose context ends leaves the queue without
// blocking those behind it, and that waiting allocates nothing.
func TestRoomWaitersInOrder(t *testing.T) {
	r := newRoom(4, 1000)
	for range 4 {
		if !r.tryAcquire(10) {
			t.Fatal("room refused a record into a buffer with room")
		}
	}
	if r.tryAcquire(10) {
		t.Fatal("room took a fifth record with MaxBufferedRecords 4")
	}
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	ctx := context.Background()
	cctx, cancel := context.WithCancel(ctx)
	cancelled := make(chan error, 1)
	start := func(i int, ctx context.Context) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.wait(ctx, 10, nil)
			if i == 1 {
				cancelled <- err
				return
			}
			if err != nil {
				t.Errorf("waiter %d: %v", i, err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		}()
		// Each waiter queues before the next one starts.
		for queued(r) != i+1 {
			time.Sleep(time.Millisecond)
		}
	}
	for i := range 4 {
		c := ctx
		if i == 1 {
			c = cctx
		}
		start(i, c)
	}
	if r.tryAcquire(10) {
		t.Fatal("a put overtook the queue")
	}
	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	// One release at a time, each let in before the next, so that the order recorded is the
	// order of the grants and not of the goroutines' scheduling.
	for k := range 3 {
		r.release(1, 10)
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			mu.Lock()
			n := len(order)
			mu.Unlock()
			if n == k+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("release %d let no waiter in", k)
			}
		}
	}
	wg.Wait()
	if len(order) != 3 || order[0] != 0 || order[1] != 2 || order[2] != 3 {
		t.Fatalf("waiters let in in order %v, want [0 2 3]", order)
	}
	if got := r.recs.Load(); got != 4 {
		t.Fatalf("%d records held, want 4", got)
	}

	// A waiter and its wake-up allocate nothing once the room has recycled a waiter.
	allocs := testing.AllocsPerRun(100, func() {
		go r.release(1, 10)
		if err := r.wait(ctx, 10, nil); err != nil {
			t.Fatal(err)
		}
	})
	// The goroutine that releases costs an allocation or so of its own.
	if allocs > 2 {
		t.Fatalf("%.1f allocations per wait", allocs)
	}
}

// queued is the number of puts in r's queue.
func queued(r *room) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for w := r.head; w != nil; w = w.next {
		n++
	}
	return n
}

// TestRoomOversized checks that a record larger than the byte bound is let into an empty
// buffer, and only into an empty one.
func TestRoomOversized(t *testing.T) {
	r := newRoom(10, 100)
	if !r.tryAcquire(10) {
		t.Fatal("small record refused")
	}
	if r.tryAcquire(500) {
		t.Fatal("oversized record taken into a non-empty buffer")
	}
	got := make(chan error, 1)
	go func() { got <- r.wait(context.Background(), 500, nil) }()
	for r.waiting.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	r.release(1, 10)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if r.bytes.Load() != 500 || r.recs.Load() != 1 {
		t.Fatalf("holding %d records, %d bytes", r.recs.Load(), r.bytes.Load())
	}
	if r.tryAcquire(1) {
		t.Fatal("record taken beside an oversized one")
	}
}
