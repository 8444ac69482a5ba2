package consumer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/kinesistest"
)

// TestKinesistestReshardMidStream is the in-process twin of the split and merge cases of
// TestResharding and the reshard phase of TestFleetFailoverAndReshard, which run on
// kinesis-mock and stay as the cross-check: a fleet of two workers reads a 4-shard stream
// while records keep coming, one shard is split and two others merged. kinesistest enforces
// the per-shard read and write limits, and it ends a closed shard's subscription with its
// child shards, which kinesis-mock does not. Every record must be processed exactly once (no
// worker fails, and handoffs checkpoint first, so the KCL's at-least-once has no cause for a
// repeat), in order per key across parents and children, and no child before its parents
// finished.
func TestKinesistestReshardMidStream(t *testing.T) {
	for _, mode := range retrievalModes() {
		t.Run(mode.String(), func(t *testing.T) {
			checkNoLeak(t)
			// Fan-out events every 100 ms gather a few rounds of records each.
			env := newKTEnv(t, 4, kinesistest.Options{FanOutPollInterval: 100 * time.Millisecond})
			c := newCollector()
			keys := testKeys(200)
			prod := newTestProducer(t, env.client(nil), env.stream)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()

			kc := env.client(nil)
			store := checkpoint.NewMemoryStore()
			var ws []*runningWorker
			for i := range 2 {
				id := fmt.Sprintf("w%d", i+1)
				// Slow reading (small batches, a slow processor) leaves a backlog in the
				// shards that close, so their children appear before they are drained. A
				// fan-out event carries every record that arrived since the last one, so
				// there the processor itself must be slower.
				delay := 20 * time.Millisecond
				if mode == FanOut {
					delay = 300 * time.Millisecond
				}
				cfg := env.config(t, kc, store, "app", id, processorFor(c, id, func(p *testProcessor) {
					p.checkpointEvery = 3
					p.delay = delay
				}))
				cfg.Retrieval = mode
				cfg.MaxRecords = 2
				w, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				ws = append(ws, runWorker(t, w))
			}

			// Records keep coming: a backlog is left in the shards that close, and the merge
			// happens while records are written.
			total, err := prod.produce(ctx, keys, 40, 20*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			open := prod.openShardIDs()
			splitShard(t, kc, env.stream, open[0], prod.shards)
			if c.distinct() >= total {
				t.Fatal("the shards were drained before the split; the test needs a slower fleet")
			}
			if err := prod.refresh(ctx); err != nil {
				t.Fatal(err)
			}
			var during int
			var prodErr error
			var wg sync.WaitGroup
			wg.Go(func() { during, prodErr = prod.produce(ctx, keys, 20, 20*time.Millisecond) })
			mergeShards(t, kc, env.stream, open[2], open[3])
			wg.Wait()
			if prodErr != nil {
				t.Fatal(prodErr)
			}
			if err := prod.refresh(ctx); err != nil {
				t.Fatal(err)
			}
			after, err := prod.produce(ctx, keys, 10, 0)
			if err != nil {
				t.Fatal(err)
			}
			total += during + after
			c.waitDistinct(t, total, 60*time.Second)
			stopAll(t, ws)

			events := c.snapshot()
			checkOrder(t, events)
			checkLineage(t, kc, env.stream, events)
			checkExactlyOnce(t, c)
			for _, rw := range ws {
				if st := rw.w.Stats(); st.Retrieval != mode || st.RetrievalFallbacks != 0 {
					t.Errorf("%s read with %s and fell back %d times, want %s throughout", rw.w.WorkerID(), st.Retrieval, st.RetrievalFallbacks, mode)
				}
			}
		})
	}
}
