package fleet

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFleetSurvivesEveryScenario runs a small fleet through every scenario of the harness
// and checks what does not depend on the machine's speed: the fleet always ends with every
// lease owned by a running worker and balanced, the table met no request it could not
// interpret, and no lease was taken from a live worker without a handoff.
func TestFleetSurvivesEveryScenario(t *testing.T) {
	// Slower than the benchmark's default, so that a loaded machine (the race detector, other
	// packages' tests) cannot starve a renewal past the simulated failover time.
	f := New(8, Options{Speed: 5})
	defer f.Close()
	limit := 10 * f.Failover()
	if err := f.Start(3, limit); err != nil {
		t.Fatal(err)
	}
	steady := f.Steady(2 * time.Minute)
	t.Log(steady)
	if steady.Shards != 8 || steady.Workers != 3 {
		t.Errorf("steady state measured over %d workers and %d shards, want 3 and 8", steady.Workers, steady.Shards)
	}
	// Renewals alone are one UpdateItem per lease every RenewInterval (2/5 of the failover
	// time): 900 per shard-hour at the default 10 s.
	if u := steady.ByAPI["UpdateItem"]; u < 800 || u > 1100 || steady.ByAPI["Scan"] <= 0 {
		t.Errorf("steady state: %.0f UpdateItem and %.0f Scan per shard-hour; want about 900 renewals and some scans", u, steady.ByAPI["Scan"])
	}
	run := func(name string, do func() (Result, error)) {
		r, err := do()
		t.Log(r)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if n := r.Moves.Kinds["unrequested"]; n > 0 {
			t.Errorf("%s: %d leases taken from a live worker without a handoff", name, n)
		}
	}
	run("kill", func() (Result, error) { return f.KillOne(limit) })
	run("add", func() (Result, error) { return f.AddWorkers(2, limit) })
	run("rolling", func() (Result, error) { return f.RollingRestart(f.Failover(), limit) })
	run("split", func() (Result, error) { return f.SplitAll(limit) })
	r, err := f.Throttle(0.5, 30*time.Second, limit)
	t.Log(r)
	if err != nil {
		t.Errorf("throttle: %v", err)
	}
	if err := f.Check(); err != nil {
		t.Error(err)
	}
}

var (
	gridWorkers = flag.String("fleet.workers", "2,10,50,100", "BenchmarkFleet: fleet sizes")
	gridShards  = flag.String("fleet.shards", "8,100,1000,4000", "BenchmarkFleet: stream sizes")
	gridSpeed   = flag.Float64("fleet.speed", 10, "BenchmarkFleet: simulated seconds per wall second")
	gridWindow  = flag.Duration("fleet.window", 3*time.Minute, "BenchmarkFleet: simulated steady-state window")
	gridChanges = flag.Bool("fleet.changes", true, "BenchmarkFleet: run the kill, add, rolling, split and throttle scenarios after the steady state")
)

func ints(t testing.TB, s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			t.Fatalf("bad list %q: %v", s, err)
		}
		out = append(out, n)
	}
	return out
}

// BenchmarkFleet measures lease coordination over a grid of fleet and stream sizes, in
// simulated time: go test -run '^$' -bench Fleet -benchtime 1x ./fleet/ (flags -fleet.* pick
// the grid). The figures are reported per shard-hour and in simulated seconds; see README.md.
func BenchmarkFleet(b *testing.B) {
	for _, shards := range ints(b, *gridShards) {
		for _, workers := range ints(b, *gridWorkers) {
			b.Run(fmt.Sprintf("workers=%d/shards=%d", workers, shards), func(b *testing.B) {
				for range b.N {
					benchFleet(b, workers, shards)
				}
			})
		}
	}
}

func benchFleet(b *testing.B, workers, shards int) {
	f := New(shards, Options{Speed: *gridSpeed})
	defer f.Close()
	limit := 20 * f.Failover()
	if err := f.Start(workers, limit); err != nil {
		b.Fatal(err)
	}
	f.Sleep(f.Failover())
	st := f.Steady(*gridWindow)
	b.Log(st)
	b.ReportMetric(st.RequestsPerShardHour, "req/shard-h")
	b.ReportMetric(st.RCUPerShardHour, "rcu/shard-h")
	b.ReportMetric(st.WCUPerShardHour, "wcu/shard-h")
	pages := max(1, int(st.ScanPagesPerWorkerHour/(float64(time.Hour)/float64(f.TakeInterval()))+0.5))
	b.ReportMetric(KCLRequestsPerShardHour(f.Failover(), workers, shards, pages), "kcl-req/shard-h")
	if !*gridChanges {
		return
	}
	for _, sc := range []struct {
		name string
		do   func() (Result, error)
	}{
		{"kill", func() (Result, error) { return f.KillOne(limit) }},
		{"add10", func() (Result, error) { return f.AddWorkers(10, limit) }},
		{"rolling", func() (Result, error) { return f.RollingRestart(f.TakeInterval(), limit) }},
		{"split", func() (Result, error) { return f.SplitAll(limit) }},
		{"throttle", func() (Result, error) { return f.Throttle(0.5, time.Minute, limit) }},
	} {
		r, err := sc.do()
		b.Log(r)
		if err != nil {
			b.Errorf("%s: %v", sc.name, err)
			return
		}
		b.ReportMetric(r.Recovery.Seconds(), sc.name+"-recovery-s")
		b.ReportMetric(r.Balance.Seconds(), sc.name+"-balance-s")
		b.ReportMetric(float64(r.Moves.Total), sc.name+"-moves")
		b.ReportMetric(float64(r.Moves.Twice), sc.name+"-twice")
		b.ReportMetric(float64(r.MaxSpread), sc.name+"-spread")
	}
	if err := f.Check(); err != nil {
		b.Error(err)
	}
}
