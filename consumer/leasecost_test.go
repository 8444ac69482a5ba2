package consumer

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardline/shardline/aggregation"
)

// leaseCostWindow is how long BenchmarkLeaseTableCost counts each phase. At the default
// timings a minute holds 18 renewals per lease, 12 take scans and one shard sync per worker,
// so the per-hour figure settles within a few percent.
var leaseCostWindow = flag.Duration("leasecost.window", time.Minute, "BenchmarkLeaseTableCost: length of the idle and of the busy phase")

// countingTransport counts the DynamoDB requests that reach the HTTP layer, by the operation
// named in the X-Amz-Target header (DynamoDB_20120810.Scan and so on), so retries and every
// call the store makes are seen, not only those the store reports in its Stats.
type countingTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	ops  map[string]int64
}

func newCountingTransport() *countingTransport {
	return &countingTransport{next: http.DefaultTransport, ops: map[string]int64{}}
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	op := r.Header.Get("X-Amz-Target")
	if i := strings.LastIndexByte(op, '.'); i >= 0 {
		op = op[i+1:]
	}
	c.mu.Lock()
	c.ops[op]++
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

// snapshot returns the counts by operation so far.
func (c *countingTransport) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.ops))
	for k, v := range c.ops {
		out[k] = v
	}
	return out
}

// since returns the counts by operation since before, and their total.
func (c *countingTransport) since(before map[string]int64) (map[string]int64, int64) {
	now := c.snapshot()
	var total int64
	for k, v := range now {
		now[k] = v - before[k]
		total += now[k]
		if now[k] == 0 {
			delete(now, k)
		}
	}
	return now, total
}

// kclRequestsPerLeaseHour is the Java KCL 2.x's lease-table request count per lease-hour at
// failover time f, for a fleet of workers holding leases leases in all, from its intervals:
//
//   - DynamoDBLeaseCoordinator renews every lease every getRenewerTakerIntervalMillis =
//     failoverTimeMillis / 3 - epsilonMillis (CommonCalculations; epsilon 25 ms), one
//     UpdateItem each (DynamoDBLeaseRefresher.renewLease): 3600 s / 3.308 s = 1,088.3;
//   - its DynamoDBLeaseTaker scans the whole table every takerIntervalMillis =
//     (failoverTimeMillis + epsilonMillis) × 2 = 20.05 s on every worker, one Scan per page:
//     3600 / 20.05 = 179.6 per worker-hour, so with 2 workers and 8 leases 44.9 per lease-hour;
//   - a checkpoint is one more UpdateItem (DynamoDBLeaseRefresher.updateLease, through
//     DynamoDBLeaseCoordinator.updateLease), on the application's cadence; it does not replace a
//     renewal, so checkpoints add checkpointsPerHour.
//
// At the defaults, 2 workers and 8 leases, idle: 1,088.3 + 44.9 = 1,133.2 (the periodic shard
// sync and leader election of the KCL 2.x run on one worker every few minutes and add a few
// more). The KCL 3.x renews the same way, but instead of the take scan queries
// LeaseOwnerToLeaseKeyIndex every leaseAssignmentIntervalMillis / 2 - epsilon = 9.975 s on
// every worker (DynamoDBLeaseDiscoverer; 3600 / 9.975 × 2 / 8 = 90.2) and its leader scans every
// leaseAssignmentIntervalMillis = 20 s (LeaseAssignmentManager; 180 / 8 = 22.5): 1,201.0, plus
// its worker-metrics table, so the 2.x figure is the one to meet.
func kclRequestsPerLeaseHour(f time.Duration, workers, leases int, checkpointsPerHour float64) float64 {
	eps := 25 * time.Millisecond
	perHour := func(d time.Duration) float64 { return float64(time.Hour) / float64(d) }
	return perHour(f/3-eps) + float64(workers)*perHour(2*(f+eps))/float64(leases) + checkpointsPerHour
}

func TestKCLRequestsPerLeaseHour(t *testing.T) {
	got := kclRequestsPerLeaseHour(10*time.Second, 2, 8, 0)
	if got < 1132.5 || got > 1134 {
		t.Errorf("KCL 2.x figure at the defaults = %.1f, want 1,133.2 (1,088.3 renewals + 44.9 scans)", got)
	}
}

// oneKeyPerShard returns a partition key for each shard of m, so a round of the test producer
// writes one record to every shard.
func oneKeyPerShard(m *aggregation.ShardMap, shards int) []string {
	seen := map[string]bool{}
	var keys []string
	for i := 0; len(keys) < shards && i < 100000; i++ {
		k := fmt.Sprintf("key-%05d", i)
		r, ok := m.Lookup(aggregation.PartitionKeyHash(k))
		if ok && !seen[r.ShardID] {
			seen[r.ShardID] = true
			keys = append(keys, k)
		}
	}
	return keys
}

// BenchmarkLeaseTableCost runs 2 workers on 8 shards on dynalite at the default timings and
// counts every DynamoDB request at the HTTP layer (countingTransport on the DynamoDB client),
// first idle and then busy (a RecordFunc with its default cadence and 10 records/s per shard),
// and reports each as requests per lease-hour beside the KCL 2.x figure from its intervals
// (kclRequestsPerLeaseHour). The op is the whole run; the figures are the reported metrics:
//
//	go test -run '^$' -bench BenchmarkLeaseTableCost -benchtime 1x ./consumer/
//
// -leasecost.window sets each phase's length. Measured with a one-minute window: before
// checkpoints rode on renewals, idle 1,275 and busy 15,007 requests per lease-hour; now idle
// 1,080 and busy 1,080 (a renewal every 4 s, 900, and a scan every 5 s on each worker, 180),
// against the KCL 2.x's 1,133 idle and 1,493 checkpointing every 10 s.
func BenchmarkLeaseTableCost(b *testing.B) {
	const workers, shards = 2, 8
	ct := newCountingTransport()
	env := newEmuEnv(b, shards, nil, &http.Client{Transport: ct})
	prod := newTestProducer(b, env.kc, env.stream)
	if err := prod.refresh(context.Background()); err != nil {
		b.Fatal(err)
	}
	keys := oneKeyPerShard(prod.shards, shards)
	var processed atomicCounter
	var ws []*Worker
	for i := range workers {
		cfg := env.config(b, fmt.Sprintf("w%d", i+1), RecordFunc(func(ctx context.Context, r Record) error { processed.add(1); return nil }))
		// The defaults, not the emulator tests' short timings: the figures are per lease-hour
		// of a fleet as deployed.
		cfg.FailoverTime, cfg.ShardSyncInterval, cfg.LeaseCleanupDelay, cfg.HandoffTimeout = 0, 0, 0, 0
		cfg.IdleTimeBetweenReads, cfg.MinTimeBetweenReads = 0, 0
		w, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		rw := runWorker(b, w)
		defer rw.stop()
		ws = append(ws, w)
	}
	waitFor(b, 3*time.Minute, "4 leases on each worker", func() bool {
		return ws[0].Stats().LeasesHeld == shards/workers && ws[1].Stats().LeasesHeld == shards/workers
	})
	time.Sleep(2 * DefaultFailoverTime)

	measure := func(load func(ctx context.Context)) (float64, map[string]int64) {
		ctx, cancel := context.WithTimeout(context.Background(), *leaseCostWindow)
		defer cancel()
		before, t0 := ct.snapshot(), time.Now()
		var wg sync.WaitGroup
		if load != nil {
			wg.Go(func() { load(ctx) })
		}
		<-ctx.Done()
		wg.Wait()
		ops, total := ct.since(before)
		return float64(total) / (shards * time.Since(t0).Hours()), ops
	}
	b.ResetTimer()
	for range b.N {
		idle, idleOps := measure(nil)
		n0 := processed.load()
		var produced atomic.Int64
		busy, busyOps := measure(func(ctx context.Context) {
			// 10 records/s per shard on average: each round sends every shard the records
			// due since the start, so a slow PutRecords call delays records without
			// lowering the rate.
			const perShardPerSecond = 10
			start, sent := time.Now(), 0
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for ctx.Err() == nil {
				due := int(time.Since(start).Seconds()*perShardPerSecond) - sent
				if due > 0 {
					var round []string
					for range due {
						round = append(round, keys...)
					}
					if n, err := prod.round(ctx, round); err == nil {
						sent += n / len(keys)
					}
				}
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
			produced.Store(int64(sent))
		})
		held := ws[0].Stats().LeasesHeld + ws[1].Stats().LeasesHeld
		if held != shards {
			b.Errorf("the fleet holds %d leases after the run, want %d", held, shards)
		}
		kcl := kclRequestsPerLeaseHour(DefaultFailoverTime, workers, shards, 0)
		b.ReportMetric(idle, "req/lease-h-idle")
		b.ReportMetric(busy, "req/lease-h-busy")
		b.ReportMetric(kcl, "kcl-req/lease-h-idle")
		io, _ := json.Marshal(idleOps)
		bo, _ := json.Marshal(busyOps)
		b.Logf("idle %.0f req/lease-h %s; busy %.0f req/lease-h %s with %.1f records/s written and %.1f processed per shard; KCL 2.x %.0f idle, %.0f checkpointing every 10 s",
			idle, io, busy, bo, float64(produced.Load())/leaseCostWindow.Seconds(), float64(processed.load()-n0)/shards/leaseCostWindow.Seconds(), kcl, kclRequestsPerLeaseHour(DefaultFailoverTime, workers, shards, 360))
	}
}
