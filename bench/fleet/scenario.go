package fleet

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Result is what one scenario measured, in simulated time.
type Result struct {
	Scenario        string
	Workers, Shards int
	// Steady-state cost over Window, per shard-hour: DynamoDB requests (by API too) and the
	// capacity units they consumed.
	Window                           time.Duration
	RequestsPerShardHour             float64
	RCUPerShardHour, WCUPerShardHour float64
	ByAPI                            map[string]float64
	ScanPagesPerWorkerHour           float64
	// After the scenario's change: time until no lease lacks a running owner, time until
	// balanced (every lease owned, lease counts within one), lease moves, and the largest
	// lease-count spread seen while waiting.
	Recovery, Balance time.Duration
	Moves             Moves
	MaxSpread         int
	// Warnings counts the workers' warnings and errors by message.
	Warnings map[string]int
}

// String is one line for logs and the closing figures.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s workers=%d shards=%d", r.Scenario, r.Workers, r.Shards)
	if r.Window > 0 {
		fmt.Fprintf(&b, " req/shard-h=%.0f rcu/shard-h=%.1f wcu/shard-h=%.0f scan-pages/worker-h=%.0f", r.RequestsPerShardHour, r.RCUPerShardHour, r.WCUPerShardHour, r.ScanPagesPerWorkerHour)
	}
	if r.Recovery > 0 || r.Balance > 0 {
		fmt.Fprintf(&b, " recovery=%s balance=%s moves=%d twice=%d spread=%d", r.Recovery.Round(100*time.Millisecond), r.Balance.Round(100*time.Millisecond), r.Moves.Total, r.Moves.Twice, r.MaxSpread)
		kinds := make([]string, 0, len(r.Moves.Kinds))
		for k, n := range r.Moves.Kinds {
			kinds = append(kinds, fmt.Sprintf("%s:%d", k, n))
		}
		sort.Strings(kinds)
		fmt.Fprintf(&b, " by=%s", strings.Join(kinds, ","))
		if len(r.Warnings) > 0 {
			fmt.Fprintf(&b, " warnings=%d", len(r.Warnings))
		}
	}
	return b.String()
}

// KCLRequestsPerShardHour is the Java KCL 2.x's lease-table request count per shard-hour
// for the same shape, from its intervals (read in awslabs/amazon-kinesis-client):
// DynamoDBLeaseCoordinator renews every held lease every failoverTimeMillis/3 − 25 ms (one
// UpdateItem each, DynamoDBLeaseRefresher.renewLease), and every worker's DynamoDBLeaseTaker
// scans the whole table every (failoverTimeMillis + 25 ms) × 2, one Scan request per page.
// The scan term grows with the workers: it is the term the goal rules out.
func KCLRequestsPerShardHour(failover time.Duration, workers, shards, scanPages int) float64 {
	eps := 25 * time.Millisecond
	perHour := func(d time.Duration) float64 { return float64(time.Hour) / float64(d) }
	return perHour(failover/3-eps) + float64(workers*scanPages)*perHour(2*(failover+eps))/float64(shards)
}

// Start adds workers and waits until every open shard has a lease and the fleet is balanced.
func (f *Fleet) Start(workers int, limit time.Duration) error {
	f.Add(workers)
	want := f.Stream.OpenShards()
	_, _, err := f.WaitFor(limit, func(s State) bool { return s.Leases == want && s.Balanced() })
	return err
}

// Steady measures the fleet's cost over window of simulated time.
func (f *Fleet) Steady(window time.Duration) Result {
	workers := len(f.IDs())
	shards := f.Stream.OpenShards()
	before := f.Table.Counts()
	start := time.Now()
	f.Sleep(window)
	elapsed := f.Sim(time.Since(start))
	c := f.Table.Counts().Sub(before)
	shardHours := float64(shards) * elapsed.Hours()
	r := Result{Scenario: "steady", Workers: workers, Shards: shards, Window: elapsed, ByAPI: map[string]float64{}}
	r.RequestsPerShardHour = float64(c.Total()) / shardHours
	r.RCUPerShardHour, r.WCUPerShardHour = c.RCU/shardHours, c.WCU/shardHours
	for api, n := range c.Requests {
		if n > 0 {
			r.ByAPI[api] = float64(n) / shardHours
		}
	}
	r.ScanPagesPerWorkerHour = float64(c.ScanPages) / (float64(workers) * elapsed.Hours())
	return r
}

// settle waits until no lease lacks an owner and then until the fleet is balanced, and
// fills r's recovery, balance, moves and spread.
func (f *Fleet) settle(r *Result, since time.Time, limit time.Duration) error {
	_, spread1, err := f.WaitFor(limit, func(s State) bool { return s.Unowned == 0 })
	r.Recovery = f.Sim(time.Since(since))
	if err != nil {
		return err
	}
	_, spread2, err := f.WaitFor(limit, State.Balanced)
	r.Balance = f.Sim(time.Since(since))
	r.MaxSpread = max(spread1, spread2)
	r.Moves = f.Moves()
	r.Warnings = f.Logs()
	return err
}

// KillOne crashes one worker and measures until its leases run elsewhere and the fleet is
// balanced again.
func (f *Fleet) KillOne(limit time.Duration) (Result, error) {
	ids := f.IDs()
	r := Result{Scenario: "kill", Workers: len(ids), Shards: f.State().Leases}
	f.MarkMoves()
	start := time.Now()
	f.Kill(ids[0])
	return r, f.settle(&r, start, limit)
}

// AddWorkers adds n workers at once and measures until balanced.
func (f *Fleet) AddWorkers(n int, limit time.Duration) (Result, error) {
	r := Result{Scenario: fmt.Sprintf("add-%d", n), Workers: len(f.IDs()) + n, Shards: f.State().Leases}
	f.MarkMoves()
	start := time.Now()
	f.Add(n)
	return r, f.settle(&r, start, limit)
}

// RollingRestart stops half the fleet one worker at a time, gracefully, starting a new
// worker in place of each and waiting gap between them, and measures until balanced after
// the last.
func (f *Fleet) RollingRestart(gap, limit time.Duration) (Result, error) {
	ids := f.IDs()
	r := Result{Scenario: "rolling", Workers: len(ids), Shards: f.State().Leases}
	f.MarkMoves()
	start := time.Now()
	for _, id := range ids[:int(math.Ceil(float64(len(ids))/2))] {
		if err := f.Stop(id); err != nil {
			return r, err
		}
		f.Add(1)
		f.Sleep(gap)
	}
	return r, f.settle(&r, start, limit)
}

// SplitAll splits every open shard and measures until the children are all owned and
// balanced.
func (f *Fleet) SplitAll(limit time.Duration) (Result, error) {
	r := Result{Scenario: "split", Workers: len(f.IDs()), Shards: f.Stream.OpenShards() * 2}
	f.MarkMoves()
	start := time.Now()
	f.Stream.SplitAll()
	want := f.Stream.OpenShards()
	if _, _, err := f.WaitFor(limit, func(s State) bool { return s.Leases == want }); err != nil {
		return r, err
	}
	return r, f.settle(&r, start, limit)
}

// Throttle refuses share of the table's requests for d, then measures until the fleet is
// whole and balanced again.
func (f *Fleet) Throttle(share float64, d, limit time.Duration) (Result, error) {
	r := Result{Scenario: fmt.Sprintf("throttle-%.0f%%", share*100), Workers: len(f.IDs()), Shards: f.State().Leases}
	f.MarkMoves()
	f.Table.SetThrottle(share)
	_, spread, _ := f.WaitFor(d, func(State) bool { return false })
	f.Table.SetThrottle(0)
	start := time.Now()
	err := f.settle(&r, start, limit)
	r.MaxSpread = max(r.MaxSpread, spread)
	return r, err
}
