package consumer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/shardline/shardline/checkpoint"
)

var t0 = time.Unix(1_700_000_000, 0)

const testFailover = 10 * time.Second

// table builds an observed view: owner per lease ("" for unassigned), all seen changing at t0
// unless stale says otherwise.
func table(owners map[string]string, stale map[string]bool, kbps map[string]float64) []observedLease {
	var out []observedLease
	for key, owner := range owners {
		l := checkpoint.Lease{Key: key, Owner: owner, Counter: 1, Checkpoint: checkpoint.TrimHorizon}
		if v, ok := kbps[key]; ok {
			l.ThroughputKBps = &v
		}
		ol := observedLease{lease: l, lastChange: t0}
		if owner == "" {
			ol.lastChange = time.Time{}
		}
		if stale[key] {
			ol.lastChange = t0.Add(-testFailover)
		}
		out = append(out, ol)
	}
	slices.SortFunc(out, func(a, b observedLease) int {
		if a.lease.Key < b.lease.Key {
			return -1
		}
		return 1
	})
	return out
}

func input(me string, leases []observedLease) balanceInput {
	held := map[string]bool{}
	for _, ol := range leases {
		if ol.lease.Owner == me {
			held[ol.lease.Key] = true
		}
	}
	return balanceInput{
		me: me, now: t0, leases: leases, held: held, pending: map[string]time.Time{},
		failover: testFailover, handoffTimeout: 30 * time.Second, maxSteal: 1, hysteresis: 0.2, graceful: true,
	}
}

func keysOf(ls []checkpoint.Lease) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Key)
	}
	slices.Sort(out)
	return out
}

func rng() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

func TestBalanceTakesFairShare(t *testing.T) {
	cases := []struct {
		name   string
		owners map[string]string
		stale  map[string]bool
		max    int
		take   int
		steal  int
	}{
		{"alone takes everything", map[string]string{"a": "", "b": "", "c": "", "d": ""}, nil, 0, 4, 0},
		{"max leases per worker", map[string]string{"a": "", "b": "", "c": "", "d": ""}, nil, 2, 2, 0},
		{"half of the free leases beside a busy worker", map[string]string{"a": "", "b": "", "c": "w2", "d": "w2"}, nil, 0, 2, 0},
		{"ceiling of the fair share", map[string]string{"a": "", "b": "", "c": "", "d": "w2", "e": "w3"}, nil, 0, 2, 0},
		{"expired leases of a dead worker", map[string]string{"a": "dead", "b": "dead", "c": "w2", "d": "w2"}, map[string]bool{"a": true, "b": true}, 0, 2, 0},
		{"live leases are not taken", map[string]string{"a": "w2", "b": "w2", "c": "w2", "d": "w3"}, nil, 0, 0, 1},
		{"balanced within one stays put", map[string]string{"a": "me", "b": "me", "c": "w2", "d": "w2", "e": "w2"}, nil, 0, 0, 0},
		{"three workers four leases stays put", map[string]string{"a": "me", "b": "w2", "c": "w2", "d": "w3"}, nil, 0, 0, 0},
		{"steals from the most loaded", map[string]string{"a": "me", "b": "w2", "c": "w2", "d": "w2"}, nil, 0, 0, 1},
		{"no stealing past the cap", map[string]string{"a": "me", "b": "w2", "c": "w2", "d": "w2"}, nil, 1, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := input("me", table(tc.owners, tc.stale, nil))
			in.maxLeases = tc.max
			p := planBalance(in, rng())
			if len(p.take) != tc.take || len(p.steal) != tc.steal {
				t.Fatalf("take %v steal %v, want %d and %d (fair %.2f, my load %.2f, loads %v)", keysOf(p.take), keysOf(p.steal), tc.take, tc.steal, p.fair, p.myLoad, p.loads)
			}
		})
	}
}

func TestBalanceStealsFromMostLoadedWorker(t *testing.T) {
	owners := map[string]string{"a": "w2", "b": "w2", "c": "w2", "d": "w2", "e": "w3", "f": "w3", "g": "w3"}
	in := input("me", table(owners, nil, nil))
	in.maxSteal = 3
	p := planBalance(in, rng())
	// Fair share 7/3: w2 (4) gives two, then w3 (3) and w2 (2) are even with me.
	if len(p.steal) != 2 {
		t.Fatalf("stole %v, want two leases", keysOf(p.steal))
	}
	fromW2 := 0
	for _, l := range p.steal {
		if l.Owner == "w2" {
			fromW2++
		}
	}
	if fromW2 < 1 {
		t.Fatalf("stole %v, want at least one from the most loaded worker w2", keysOf(p.steal))
	}
}

func TestBalanceByThroughput(t *testing.T) {
	// w2 holds a hot lease and a cold one, this worker one cold lease: moving the cold lease
	// evens the load; moving the hot one would only turn the imbalance around.
	owners := map[string]string{"hot": "w2", "cold1": "w2", "cold2": "me"}
	kbps := map[string]float64{"hot": 900, "cold1": 1, "cold2": 1}
	p := planBalance(input("me", table(owners, nil, kbps)), rng())
	if got := keysOf(p.steal); !slices.Equal(got, []string{"cold1"}) {
		t.Fatalf("stole %v, want [cold1] (weights %v)", got, p.weights)
	}
	if p.weights["hot"] <= 2*p.weights["cold1"] {
		t.Fatalf("weights %v: a hot lease should weigh more than an idle one", p.weights)
	}

	// Two hot leases on one worker and two idle ones on the other: one hot lease moves, then
	// one idle lease moves back, and each worker ends with one of each.
	owners = map[string]string{"h1": "w2", "h2": "w2", "c1": "me", "c2": "me"}
	kbps = map[string]float64{"h1": 500, "h2": 500, "c1": 0, "c2": 0}
	view := table(owners, nil, kbps)
	p = planBalance(input("me", view), rng())
	if len(p.steal) != 1 || p.steal[0].Key[0] != 'h' {
		t.Fatalf("stole %v, want one hot lease", keysOf(p.steal))
	}
	moved := p.steal[0].Key
	for i := range view {
		if view[i].lease.Key == moved {
			view[i].lease.Owner = "me"
		}
	}
	p = planBalance(input("w2", view), rng())
	if len(p.steal) != 1 || p.steal[0].Key[0] != 'c' {
		t.Fatalf("w2 stole %v, want one idle lease back", keysOf(p.steal))
	}
}

func TestBalanceHysteresisPreventsPingPong(t *testing.T) {
	// After any steal, the victim must not want the lease back.
	for seed := uint64(0); seed < 50; seed++ {
		r := rand.New(rand.NewPCG(seed, seed))
		owners := map[string]string{}
		kbps := map[string]float64{}
		for i := 0; i < 8; i++ {
			key := fmt.Sprintf("l%d", i)
			owners[key] = []string{"me", "w2", "w2", "w2"}[r.IntN(4)]
			kbps[key] = float64(r.IntN(1000))
		}
		view := table(owners, nil, kbps)
		p := planBalance(input("me", view), r)
		for _, l := range p.steal {
			for i := range view {
				if view[i].lease.Key == l.Key {
					view[i].lease.Owner = "me"
				}
			}
			back := planBalance(input(l.Owner, view), r)
			for _, b := range back.steal {
				if b.Key == l.Key {
					t.Fatalf("seed %d: %s moved to me and straight back (weights %v)", seed, l.Key, p.weights)
				}
			}
		}
	}
}

func TestBalanceHandoffs(t *testing.T) {
	view := table(map[string]string{"a": "me", "b": "me", "c": "w2", "d": "me"}, nil, nil)
	view[0].lease.CheckpointOwner = "w2" // a: still being handed over
	view[2].lease.Owner = "w3"           // c: went elsewhere
	in := input("me", view)
	in.held = map[string]bool{}
	in.pending = map[string]time.Time{"a": t0, "b": t0, "c": t0}
	p := planBalance(in, rng())
	if got := keysOf(p.complete); !slices.Equal(got, []string{"b"}) {
		t.Errorf("complete %v, want [b] (released by its owner)", got)
	}
	if !slices.Equal(p.abandon, []string{"c"}) {
		t.Errorf("abandon %v, want [c]", p.abandon)
	}
	// The owner did not answer in time but still renews: the request is withdrawn, and the
	// lease is not taken while its counter moves.
	in.now = t0.Add(31 * time.Second)
	view[0].lastChange = in.now
	p = planBalance(in, rng())
	if got := keysOf(p.complete); slices.Contains(got, "a") {
		t.Errorf("complete %v after the handoff timeout with a live owner, want a not taken", got)
	}
	if got := keysOf(p.cancel); !slices.Equal(got, []string{"a"}) {
		t.Errorf("cancel %v, want [a]", got)
	}
	// The owner stopped renewing during the handoff: the lease is free.
	view[0].lastChange = in.now.Add(-testFailover)
	p = planBalance(in, rng())
	if got := keysOf(p.complete); !slices.Contains(got, "a") || len(p.cancel) != 0 {
		t.Errorf("complete %v, cancel %v after the owner expired, want a completed", got, keysOf(p.cancel))
	}
}

// TestKCL2StealCount checks the steal rule of the KCL 2.x's DynamoDBLeaseTaker
// (chooseLeasesToSteal with target = ceil(leases / workers)).
func TestKCL2StealCount(t *testing.T) {
	cases := []struct{ leases, workers, mine, victim, maxSteal, want int }{
		{2, 2, 0, 2, 1, 1},   // target 1: steal one
		{3, 2, 1, 2, 1, 0},   // target 2: the victim has no excess and one is needed
		{4, 2, 1, 3, 1, 1},   // target 2
		{10, 2, 0, 10, 1, 1}, // capped by maxLeasesToStealAtOneTime
		{10, 2, 0, 10, 3, 3}, // excess 5, needed 5, cap 3
		{9, 3, 0, 3, 2, 1},   // target 3, needed 3, no excess: one
		{4, 2, 2, 2, 1, 0},   // at target
		{4, 2, 0, 1, 1, 0},   // victim below target
	}
	for _, c := range cases {
		if got := kcl2StealCount(c.leases, c.workers, c.mine, c.victim, c.maxSteal); got != c.want {
			t.Errorf("kcl2StealCount%+v = %d, want %d", c, got, c.want)
		}
	}
}

// TestBalanceSilentOwner checks that an owner that does not answer handoffs is balanced by
// the KCL 2.x rule: no handoff request, an outright steal only when the count rule allows it.
func TestBalanceSilentOwner(t *testing.T) {
	// Hot leases of the silent owner weigh more, so the weighted balance wants one; the KCL
	// 2.x count rule (target 2 of 3 leases, victim holding 2) does not.
	view := table(map[string]string{"a": "kcl", "b": "kcl", "c": "me"}, nil, map[string]float64{"a": 100, "b": 100, "c": 0})
	in := input("me", view)
	in.silent = map[string]bool{"kcl": true}
	p := planBalance(in, rng())
	if len(p.steal) != 0 || len(p.seize) != 0 {
		t.Errorf("steal %v seize %v, want nothing from a silent owner at its KCL 2.x target", keysOf(p.steal), keysOf(p.seize))
	}
	in.silent = nil
	if p := planBalance(in, rng()); len(p.steal) != 1 {
		t.Fatalf("steal %v without the silent rule, want one (the scenario must differ)", keysOf(p.steal))
	}
	// Four leases all held by the silent owner: target 2, steal one outright.
	view = table(map[string]string{"a": "kcl", "b": "kcl", "c": "kcl", "d": "kcl"}, nil, nil)
	in = input("me", view)
	in.silent = map[string]bool{"kcl": true}
	p = planBalance(in, rng())
	if len(p.seize) != 1 || len(p.steal) != 0 {
		t.Errorf("seize %v steal %v, want one lease seized and no handoff request", keysOf(p.seize), keysOf(p.steal))
	}
}

func TestBalancePrefersLeasesWhoseParentsAreDone(t *testing.T) {
	view := table(map[string]string{"parent": "w2", "child": "", "other": ""}, nil, nil)
	for i := range view {
		if view[i].lease.Key == "child" {
			view[i].lease.ParentShardIDs = []string{"parent"}
		}
	}
	in := input("me", view)
	in.maxLeases = 1
	for seed := uint64(0); seed < 20; seed++ {
		p := planBalance(in, rand.New(rand.NewPCG(seed, 0)))
		if got := keysOf(p.take); !slices.Equal(got, []string{"other"}) {
			t.Fatalf("took %v, want [other] before a child still waiting on its parent", got)
		}
	}
}

func TestBalanceSchedulesScanAtExpiry(t *testing.T) {
	view := table(map[string]string{"a": "w2", "b": "w3"}, nil, nil)
	view[0].lastChange = t0.Add(-7 * time.Second)
	p := planBalance(input("me", view), rng())
	if p.nextScan != 3*time.Second {
		t.Fatalf("next scan in %s, want 3s, when lease a expires", p.nextScan)
	}
}

func TestLeaseObserver(t *testing.T) {
	o := newLeaseObserver()
	o.update([]checkpoint.Lease{{Key: "a", Owner: "w", Counter: 1}, {Key: "b", Counter: 0}}, t0)
	s := o.snapshot()
	if !s[0].lastChange.Equal(t0) || !s[1].lastChange.IsZero() {
		t.Fatalf("first sight: %v", s)
	}
	o.update([]checkpoint.Lease{{Key: "a", Owner: "w", Counter: 1}, {Key: "b", Owner: "x", Counter: 1}}, t0.Add(time.Second))
	s = o.snapshot()
	if !s[0].lastChange.Equal(t0) {
		t.Errorf("unchanged counter moved lastChange to %v", s[0].lastChange)
	}
	if !s[1].lastChange.Equal(t0.Add(time.Second)) {
		t.Errorf("changed counter: lastChange %v", s[1].lastChange)
	}
	o.update([]checkpoint.Lease{{Key: "b", Owner: "x", Counter: 1}}, t0.Add(2*time.Second))
	if len(o.snapshot()) != 1 {
		t.Errorf("deleted lease still observed")
	}
}

// TestBalanceConverges simulates a fleet without goroutines: every worker plans from the
// same table in turn, steals complete at once, and the fleet must settle within one lease of
// the fair share and then stay put, after a worker joins and after one dies.
func TestBalanceConverges(t *testing.T) {
	type sim struct {
		owners map[string]string
		seen   map[string]time.Time
	}
	s := sim{owners: map[string]string{}, seen: map[string]time.Time{}}
	for i := 0; i < 10; i++ {
		s.owners[fmt.Sprintf("shard-%02d", i)] = ""
	}
	now := t0
	r := rand.New(rand.NewPCG(7, 7))
	round := func(workers []string, dead string) int {
		moves := 0
		for _, w := range workers {
			var view []observedLease
			for k, o := range s.owners {
				ol := observedLease{lease: checkpoint.Lease{Key: k, Owner: o, Counter: 1, Checkpoint: checkpoint.TrimHorizon}, lastChange: now}
				if o == "" {
					ol.lastChange = time.Time{}
				}
				if o == dead {
					ol.lastChange = now.Add(-2 * testFailover)
				}
				view = append(view, ol)
			}
			in := input(w, view)
			in.now = now
			p := planBalance(in, r)
			for _, l := range append(p.take, p.steal...) {
				s.owners[l.Key] = w
				moves++
			}
		}
		now = now.Add(time.Second)
		return moves
	}
	counts := func() map[string]int {
		c := map[string]int{}
		for _, o := range s.owners {
			c[o]++
		}
		return c
	}
	settle := func(workers []string, dead string) {
		t.Helper()
		quiet := 0
		for i := 0; i < 50 && quiet < 5; i++ {
			if round(workers, dead) == 0 {
				quiet++
			} else {
				quiet = 0
			}
		}
		if quiet < 5 {
			t.Fatalf("fleet %v did not settle: %v", workers, counts())
		}
		fair := float64(len(s.owners)) / float64(len(workers))
		for _, w := range workers {
			if n := float64(counts()[w]); n < fair-1 || n > fair+1 {
				t.Fatalf("fleet %v settled at %v, not within one of %.2f", workers, counts(), fair)
			}
		}
	}
	settle([]string{"w1", "w2", "w3"}, "")
	settle([]string{"w1", "w2", "w3", "w4"}, "")
	settle([]string{"w1", "w2", "w4"}, "w3")
}

// A lease seen going from one worker to another is not moved again for balance within two
// failover times: a weight that changed meanwhile (a new owner's catch-up reading inflates
// the throughput it reports) would otherwise send it straight back.
func TestBalanceLeavesAJustMovedLeaseAlone(t *testing.T) {
	o := newLeaseObserver()
	// A free lease taken is not a move.
	o.update([]checkpoint.Lease{{Key: "x", Counter: 0}, {Key: "b", Counter: 0}}, t0.Add(-time.Minute))
	o.update([]checkpoint.Lease{{Key: "x", Owner: "me", Counter: 1}, {Key: "b", Owner: "w2", Counter: 1}}, t0.Add(-50*time.Second))
	for _, ol := range o.snapshot() {
		if !ol.movedAt.IsZero() {
			t.Fatalf("%s marked moved after its first take", ol.lease.Key)
		}
	}
	// x goes from me to w2, released and taken between two scans.
	o.update([]checkpoint.Lease{{Key: "x", Counter: 2}, {Key: "b", Owner: "w2", Counter: 2}}, t0.Add(-time.Second))
	o.update([]checkpoint.Lease{{Key: "x", Owner: "w2", Counter: 3}, {Key: "b", Owner: "w2", Counter: 3}}, t0)
	// me now holds nothing, w2 both: either lease would even the pair.
	stolen := func(now time.Time) map[string]int {
		got := map[string]int{}
		for seed := uint64(0); seed < 40; seed++ {
			in := input("me", o.snapshot())
			in.now = now
			for i := range in.leases {
				in.leases[i].lastChange = now // every counter moves: nothing expires
			}
			for _, l := range planBalance(in, rand.New(rand.NewPCG(seed, seed))).steal {
				got[l.Key]++
			}
		}
		return got
	}
	if got := stolen(t0.Add(time.Second)); got["x"] != 0 || got["b"] != 40 {
		t.Errorf("steals one second after x moved: %v; want b every time, never x", got)
	}
	if got := stolen(t0.Add(2*testFailover + time.Second)); got["x"] == 0 || got["x"]+got["b"] != 40 {
		t.Errorf("steals two failover times later: %v; want x among them again", got)
	}
}
