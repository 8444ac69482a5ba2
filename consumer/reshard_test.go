package consumer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/checkpoint"
)

// reshardFleet runs n workers on env with the test processor, tweaked per worker.
func reshardFleet(t *testing.T, env *emuEnv, c *collector, n int, tweak func(id string, p *testProcessor)) []*runningWorker {
	t.Helper()
	var out []*runningWorker
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("w%d", i+1)
		cfg := env.config(t, id, processorFor(c, id, func(p *testProcessor) {
			if tweak != nil {
				tweak(id, p)
			}
		}))
		w, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, runWorker(t, w))
	}
	return out
}

// checkLineage verifies that no record of a child shard was processed before the last
// record of each of its parents.
func checkLineage(t testing.TB, kc *kinesis.Client, stream string, events []event) {
	t.Helper()
	shards, err := listShards(context.Background(), kc, stream, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	first, last := map[string]time.Time{}, map[string]time.Time{}
	for _, e := range events {
		if f, ok := first[e.shard]; !ok || e.at.Before(f) {
			first[e.shard] = e.at
		}
		if e.at.After(last[e.shard]) {
			last[e.shard] = e.at
		}
	}
	for i := range shards {
		child := deref(shards[i].ShardId)
		f, ok := first[child]
		if !ok {
			continue
		}
		for _, p := range shardParents(&shards[i]) {
			if l, ok := last[p]; ok && f.Before(l) {
				t.Errorf("child %s processed from %s, before its parent %s finished at %s", child, f.Format(time.StampMilli), p, l.Format(time.StampMilli))
			}
		}
	}
}

func stopAll(t testing.TB, ws []*runningWorker) {
	t.Helper()
	for _, rw := range ws {
		if err := rw.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// TestResharding is the resharding conformance suite: split, merge, a split of a child, a
// parent still draining while its children appear, a processor that forgets the SHARD_END
// checkpoint, and aggregates written under an older shard map.
func TestResharding(t *testing.T) {
	keys := testKeys(60)

	t.Run("split", func(t *testing.T) {
		checkNoLeak(t)
		env := newEmuEnv(t, 1, nil, nil)
		c := newCollector()
		prod := newTestProducer(t, env.kc, env.stream)
		ws := reshardFleet(t, env, c, 2, nil)
		ctx := context.Background()
		n, _ := prod.produce(ctx, keys, 10, 0)
		splitShard(t, env.kc, env.stream, prod.openShardIDs()[0], prod.shards)
		_ = prod.refresh(ctx)
		m, _ := prod.produce(ctx, keys, 10, 0)
		c.waitDistinct(t, n+m, 30*time.Second)
		checkOrder(t, c.snapshot())
		checkLineage(t, env.kc, env.stream, c.snapshot())
		stopAll(t, ws)
	})

	t.Run("merge", func(t *testing.T) {
		checkNoLeak(t)
		env := newEmuEnv(t, 2, nil, nil)
		c := newCollector()
		prod := newTestProducer(t, env.kc, env.stream)
		ws := reshardFleet(t, env, c, 2, nil)
		ctx := context.Background()
		n, _ := prod.produce(ctx, keys, 10, 0)
		open := prod.openShardIDs()
		mergeShards(t, env.kc, env.stream, open[0], open[1])
		_ = prod.refresh(ctx)
		m, _ := prod.produce(ctx, keys, 10, 0)
		c.waitDistinct(t, n+m, 30*time.Second)
		checkOrder(t, c.snapshot())
		checkLineage(t, env.kc, env.stream, c.snapshot())
		stopAll(t, ws)
	})

	t.Run("split of a child", func(t *testing.T) {
		checkNoLeak(t)
		env := newEmuEnv(t, 1, nil, nil)
		c := newCollector()
		prod := newTestProducer(t, env.kc, env.stream)
		ws := reshardFleet(t, env, c, 2, nil)
		ctx := context.Background()
		total, _ := prod.produce(ctx, keys, 5, 0)
		splitShard(t, env.kc, env.stream, prod.openShardIDs()[0], prod.shards)
		_ = prod.refresh(ctx)
		n, _ := prod.produce(ctx, keys, 5, 0)
		total += n
		// Split a child before anything consumed it may have caught up.
		splitShard(t, env.kc, env.stream, prod.openShardIDs()[1], prod.shards)
		_ = prod.refresh(ctx)
		n, _ = prod.produce(ctx, keys, 5, 0)
		total += n
		c.waitDistinct(t, total, 30*time.Second)
		checkOrder(t, c.snapshot())
		checkLineage(t, env.kc, env.stream, c.snapshot())
		// Finished leases are deleted from the top of the lineage once the children started.
		store, _ := checkpoint.NewDynamoDBStore(env.ddb, checkpoint.DynamoDBConfig{TableName: env.table, Logger: testLogger(t)})
		waitFor(t, 20*time.Second, "finished leases cleaned up", func() bool {
			ls, err := store.ListLeases(ctx)
			if err != nil {
				return false
			}
			for _, l := range ls {
				if l.Checkpoint.IsShardEnd() {
					return false
				}
			}
			return len(ls) == 3
		})
		stopAll(t, ws)
	})

	t.Run("parent draining while children appear", func(t *testing.T) {
		checkNoLeak(t)
		env := newEmuEnv(t, 1, nil, nil)
		c := newCollector()
		prod := newTestProducer(t, env.kc, env.stream)
		ctx := context.Background()
		// A backlog in the parent, read slowly: small batches and a slow processor.
		n, _ := prod.produce(ctx, keys, 30, 0)
		var ws []*runningWorker
		for i := 0; i < 2; i++ {
			id := fmt.Sprintf("w%d", i+1)
			cfg := env.config(t, id, processorFor(c, id, func(p *testProcessor) { p.delay = 150 * time.Millisecond }))
			cfg.MaxRecords = 3
			w, _ := New(cfg)
			ws = append(ws, runWorker(t, w))
		}
		waitFor(t, 20*time.Second, "the parent to be read", func() bool { return c.distinct() > 0 })
		splitShard(t, env.kc, env.stream, prod.openShardIDs()[0], prod.shards)
		_ = prod.refresh(ctx)
		m, _ := prod.produce(ctx, keys, 10, 0)
		if c.distinct() >= n {
			t.Fatalf("the parent was drained before the children appeared; the test needs a slower parent")
		}
		c.waitDistinct(t, n+m, 60*time.Second)
		checkOrder(t, c.snapshot())
		checkLineage(t, env.kc, env.stream, c.snapshot())
		stopAll(t, ws)
	})

	t.Run("processor forgets the SHARD_END checkpoint", func(t *testing.T) {
		checkNoLeak(t)
		env := newEmuEnv(t, 1, nil, nil)
		c := newCollector()
		prod := newTestProducer(t, env.kc, env.stream)
		ctx := context.Background()
		n, _ := prod.produce(ctx, keys, 5, 0)
		cfg := env.config(t, "w1", processorFor(c, "w1", func(p *testProcessor) { p.skipShardEnd = 2 }))
		cfg.MaxProcessingBackoff = 300 * time.Millisecond
		w, _ := New(cfg)
		rw := runWorker(t, w)
		c.waitDistinct(t, n, 20*time.Second)
		parent := prod.openShardIDs()[0]
		splitShard(t, env.kc, env.stream, parent, prod.shards)
		_ = prod.refresh(ctx)
		m, _ := prod.produce(ctx, keys, 5, 0)
		c.waitDistinct(t, n+m, 30*time.Second)
		st := w.Stats()
		if st.ShardEndNotCheckpointed != 2 {
			t.Errorf("ShardEndNotCheckpointed = %d, want 2", st.ShardEndNotCheckpointed)
		}
		c.mu.Lock()
		calls := c.shardEnds[parent]
		c.mu.Unlock()
		if calls != 3 {
			t.Errorf("ShardEnded called %d times, want 3 (twice without a checkpoint, then with)", calls)
		}
		checkOrder(t, c.snapshot())
		checkLineage(t, env.kc, env.stream, c.snapshot())
		stopAll(t, []*runningWorker{rw})
	})

	t.Run("aggregates written under the old shard map", func(t *testing.T) {
		checkNoLeak(t)
		env := newEmuEnv(t, 1, nil, nil)
		c := newCollector()
		prod := newTestProducer(t, env.kc, env.stream)
		ctx := context.Background()
		splitShard(t, env.kc, env.stream, prod.openShardIDs()[0], prod.shards)
		_ = prod.refresh(ctx)
		low := prod.shards.Ranges()[0]
		// An aggregate built for the parent's whole range lands in the low child: its user
		// records hashing to the high child are outside the shard and were re-sent there by
		// the producer (here: put again properly), so the consumer drops them.
		var inLow, inHigh []string
		for _, k := range keys {
			if low.Contains(aggregation.PartitionKeyHash(k)) {
				inLow = append(inLow, k)
			} else {
				inHigh = append(inHigh, k)
			}
		}
		a := aggregation.NewAggregator(0)
		for _, k := range keys {
			_ = a.Add(aggregation.UserRecord{PartitionKey: k, Data: []byte(fmt.Sprintf("%s/0/stale", k))})
		}
		kr, _ := a.Flush()
		if err := prod.put(ctx, []types.PutRecordsRequestEntry{{Data: kr.Data, PartitionKey: aws.String(kr.PartitionKey), ExplicitHashKey: aws.String(low.Start.String())}}); err != nil {
			t.Fatal(err)
		}
		// The producer's retry of the high keys, to the right shard.
		for _, k := range inHigh {
			prod.next[k] = 0
		}
		n, _ := prod.round(ctx, inHigh)
		w, _ := New(env.config(t, "w1", processorFor(c, "w1", nil)))
		rw := runWorker(t, w)
		c.waitDistinct(t, len(inLow)+n, 30*time.Second)
		time.Sleep(300 * time.Millisecond)
		st := w.Stats()
		if st.RecordsOutsideRange != int64(len(inHigh)) {
			t.Errorf("RecordsOutsideRange = %d, want %d", st.RecordsOutsideRange, len(inHigh))
		}
		c.mu.Lock()
		for data, times := range c.seen {
			if times != 1 {
				t.Errorf("%s processed %d times", data, times)
			}
		}
		c.mu.Unlock()
		stopAll(t, []*runningWorker{rw})
	})
}
