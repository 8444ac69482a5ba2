package consumer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/internal/testenv"
)

// retrievalModes are the retrieval modes the fleet scenario runs with.
func retrievalModes() []Retrieval { return []Retrieval{Polling, FanOut} }

// newModeEnv returns an emulator environment for the retrieval mode: fan-out needs the
// transport that supplies kinesis-mock's missing initial-response.
func newModeEnv(t testing.TB, shards int32, mode Retrieval) *emuEnv {
	if mode == FanOut {
		return newEmuEnv(t, shards, testenv.HTTPClient(EmulatorTransport(nil)), nil)
	}
	return newEmuEnv(t, shards, nil, nil)
}

// modeConfig applies the retrieval mode to a test configuration.
func modeConfig(cfg Config, mode Retrieval) Config {
	cfg.Retrieval = mode
	// kinesis-mock never reports a shard's end on a subscription: look for it often.
	cfg.FanOutShardCheckInterval = 500 * time.Millisecond
	return cfg
}

// TestFleetFailoverAndReshard runs three workers on one lease table over a 4-shard stream while
// 20,000 records are produced; one worker is killed without a graceful shutdown, one shard is
// split and two others merged. It checks that every record is processed, in order per
// partition key across parents and children, that duplicates come only from after the killed
// worker's last checkpoints, that the killed worker's shards resume within twice the failover
// time, and that the leases end up balanced.
func TestFleetFailoverAndReshard(t *testing.T) {
	for _, mode := range retrievalModes() {
		t.Run(mode.String(), func(t *testing.T) { testFleet(t, mode) })
	}
}

func testFleet(t *testing.T, mode Retrieval) {
	checkNoLeak(t)
	env := newModeEnv(t, 4, mode)
	c := newCollector()
	keys := testKeys(200)
	prod := newTestProducer(t, env.kc, env.stream)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Phase 1: 10,000 records over about 6 s, while the workers start and one dies.
	var produced1 int
	var prodErr error
	var prodWG sync.WaitGroup
	prodWG.Add(1)
	go func() {
		defer prodWG.Done()
		produced1, prodErr = prod.produce(ctx, keys, 50, 120*time.Millisecond)
	}()

	ids := []string{"worker-a", "worker-b", "worker-c"}
	workers := map[string]*Worker{}
	running := map[string]*runningWorker{}
	for _, id := range ids {
		cfg := modeConfig(env.config(t, id, processorFor(c, id, func(p *testProcessor) { p.checkpointEvery = 3 })), mode)
		w, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		workers[id] = w
		running[id] = runWorker(t, w)
	}

	// Kill the most loaded worker once every worker processes something.
	waitFor(t, 20*time.Second, "every worker holding a lease", func() bool {
		for _, w := range workers {
			if w.Stats().LeasesHeld == 0 {
				return false
			}
		}
		return true
	})
	victim := ids[0]
	for _, id := range ids {
		if workers[id].Stats().LeasesHeld > workers[victim].Stats().LeasesHeld {
			victim = id
		}
	}
	var victimShards []string
	for _, s := range workers[victim].Stats().Shards {
		victimShards = append(victimShards, s.ShardID)
	}
	killedAt := time.Now()
	workers[victim].Kill()
	if err := running[victim].wait(10 * time.Second); !errors.Is(err, ErrKilled) {
		t.Fatalf("killed worker's Run returned %v, want ErrKilled", err)
	}
	began := time.Now()
	t.Logf("killed %s holding %v", victim, victimShards)

	// Each of the dead worker's shards resumes on another worker within twice the failover
	// time: expiry after FailoverTime, a scan at the expiry, and the first read.
	bound := 2 * emuFailover
	resumed := map[string]time.Duration{}
	waitFor(t, 3*emuFailover, "the dead worker's shards resuming", func() bool {
		for _, e := range c.snapshot() {
			if e.worker != victim && e.at.After(killedAt) {
				if _, ok := resumed[e.shard]; !ok {
					resumed[e.shard] = e.at.Sub(killedAt)
				}
			}
		}
		for _, s := range victimShards {
			if _, ok := resumed[s]; !ok {
				return false
			}
		}
		return true
	})
	for _, s := range victimShards {
		t.Logf("shard %s resumed %s after the kill", s, resumed[s].Round(time.Millisecond))
		if resumed[s] > bound {
			t.Errorf("shard %s resumed %s after the kill, want at most %s", s, resumed[s], bound)
		}
	}

	// Phase 2: reshard, then 10,000 more records under the new shard map.
	prodWG.Wait()
	if prodErr != nil {
		t.Fatal(prodErr)
	}
	open := prod.openShardIDs()
	splitShard(t, env.kc, env.stream, open[0], prod.shards)
	mergeShards(t, env.kc, env.stream, open[2], open[3])
	if err := prod.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("resharded at +%s", time.Since(began).Round(time.Millisecond))
	produced2, err := prod.produce(ctx, keys, 50, 60*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("produced at +%s", time.Since(began).Round(time.Millisecond))
	total := produced1 + produced2
	c.waitDistinct(t, total, 90*time.Second)
	t.Logf("all processed at +%s", time.Since(began).Round(time.Millisecond))
	events := c.snapshot()
	checkOrder(t, events)
	checkDuplicates(t, c, victim, killedAt)

	// Leases settle within one of the fair share: 4 open shards over the 2 live workers.
	live := []string{}
	for _, id := range ids {
		if id != victim {
			live = append(live, id)
		}
	}
	fair := float64(len(prod.openShardIDs())) / float64(len(live))
	waitFor(t, 30*time.Second, "balanced leases", func() bool {
		held := 0
		for _, id := range live {
			n := workers[id].Stats().LeasesHeld
			held += n
			if float64(n) < fair-1 || float64(n) > fair+1 {
				return false
			}
		}
		return held == len(prod.openShardIDs())
	})
	t.Logf("balanced at +%s", time.Since(began).Round(time.Millisecond))
	for _, id := range live {
		st := workers[id].Stats()
		if st.Retrieval != mode || st.RetrievalFallbacks != 0 {
			t.Errorf("%s read with %s and fell back %d times, want %s throughout", id, st.Retrieval, st.RetrievalFallbacks, mode)
		}
		t.Logf("%s: %d leases, %d records, %d taken, %d lost, %d handoffs asked, lease-table requests per lease-hour %.0f",
			id, st.LeasesHeld, st.RecordsProcessed, st.LeasesTaken, st.LeasesLost, st.HandoffsRequested, st.RequestsPerLeaseHour)
	}
	for _, id := range live {
		if err := running[id].stop(); err != nil {
			t.Errorf("%s: Run: %v", id, err)
		}
	}
}

// checkDuplicates verifies that every record processed more than once was first processed by
// the killed worker before it died, after its last checkpoint on that shard.
func checkDuplicates(t testing.TB, c *collector, victim string, killedAt time.Time) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	first := map[string]event{}
	dups := 0
	var bad []string
	for _, e := range c.events {
		key := fmt.Sprintf("%s/%d", e.key, e.idx)
		f, seen := first[key]
		if !seen {
			first[key] = e
			continue
		}
		dups++
		cp, ok := c.checkpoints[victim][f.shard]
		switch {
		case f.worker != victim || f.at.After(killedAt):
			bad = append(bad, fmt.Sprintf("%s first processed by %s on %s (not the killed worker before it died)", key, f.worker, f.shard))
		case ok && f.pos.Compare(cp) <= 0:
			bad = append(bad, fmt.Sprintf("%s at %s processed again although the killed worker checkpointed %s", key, f.pos, cp))
		}
	}
	sort.Strings(bad)
	for i, b := range bad {
		if i == 5 {
			break
		}
		t.Error(b)
	}
	if len(bad) > 0 {
		t.Errorf("%d unexpected duplicates of %d", len(bad), dups)
	}
	t.Logf("%d duplicate deliveries, all after the killed worker's last checkpoints", dups)
}

// TestGracefulShutdownReleasesLeases stops one of two workers gracefully while records flow:
// its processors checkpoint, its leases are released, and the other worker takes them well
// before the failover time, without processing any record twice.
func TestGracefulShutdownReleasesLeases(t *testing.T) {
	for _, mode := range retrievalModes() {
		t.Run(mode.String(), func(t *testing.T) {
			checkNoLeak(t)
			env := newModeEnv(t, 4, mode)
			c := newCollector()
			keys := testKeys(80)
			prod := newTestProducer(t, env.kc, env.stream)
			ctx := context.Background()
			var ws []*Worker
			var rws []*runningWorker
			for _, id := range []string{"w1", "w2"} {
				w, err := New(modeConfig(env.config(t, id, processorFor(c, id, nil)), mode))
				if err != nil {
					t.Fatal(err)
				}
				ws = append(ws, w)
				rws = append(rws, runWorker(t, w))
			}
			total, _ := prod.produce(ctx, keys, 5, 50*time.Millisecond)
			waitFor(t, 30*time.Second, "two leases each", func() bool {
				return ws[0].Stats().LeasesHeld == 2 && ws[1].Stats().LeasesHeld == 2
			})
			c.waitDistinct(t, total, 30*time.Second)

			stopped := time.Now()
			if err := rws[0].stop(); err != nil {
				t.Fatal(err)
			}
			// A graceful stop gives its leases up before Run returns, so w2 need not wait for
			// them to expire. Checked on the table, not by the clock (a loaded machine would
			// make a time bound flaky).
			store, err := checkpoint.NewDynamoDBStore(env.ddb, checkpoint.DynamoDBConfig{TableName: env.table, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			ls, err := store.ListLeases(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range ls {
				if l.Owner == "w1" {
					t.Errorf("lease %s still names w1 as its owner after w1's graceful stop", l.Key)
				}
			}
			waitFor(t, 30*time.Second, "w2 holding every lease", func() bool { return ws[1].Stats().LeasesHeld == 4 })
			t.Logf("leases taken over %s after the shutdown began (failover time %s)", time.Since(stopped).Round(time.Millisecond), emuFailover)
			n, _ := prod.produce(ctx, keys, 5, 0)
			c.waitDistinct(t, total+n, 30*time.Second)
			checkExactlyOnce(t, c)
			checkOrder(t, c.snapshot())
			if err := rws[1].stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
