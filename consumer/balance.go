package consumer

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/shardline/shardline/checkpoint"
)

// observedLease is a lease as one worker sees it: the stored value and when, on this worker's
// monotonic clock, its counter was last seen to change.
type observedLease struct {
	lease checkpoint.Lease
	// lastChange is the time of the scan that first saw the current counter; zero for an
	// unowned lease first seen unowned, which is free to take at once.
	lastChange time.Time
	// lastOwner is the last worker this observer saw processing the lease (ActualOwner),
	// kept while the lease is unassigned; movedAt the scan that first saw it go from one
	// worker to another, zero when never seen to move (a free lease taken is not a move).
	lastOwner string
	movedAt   time.Time
}

// leaseObserver keeps one worker's view of the lease table across scans. Expiry is judged on
// the observer's clock only: a lease expires when its counter has not changed for the failover
// time since this observer first saw the current value, so clocks of different machines are
// never compared.
type leaseObserver struct {
	leases map[string]*observedLease
}

func newLeaseObserver() *leaseObserver {
	return &leaseObserver{leases: map[string]*observedLease{}}
}

// update records a scan's result, taken at now.
func (o *leaseObserver) update(scan []checkpoint.Lease, now time.Time) {
	seen := make(map[string]bool, len(scan))
	for _, l := range scan {
		seen[l.Key] = true
		old, ok := o.leases[l.Key]
		switch {
		case !ok && l.IsUnassigned():
			o.leases[l.Key] = &observedLease{lease: l}
		case !ok:
			// An owned lease seen for the first time is presumed alive: its owner gets a full
			// failover time to show it renews.
			o.leases[l.Key] = &observedLease{lease: l, lastChange: now, lastOwner: l.ActualOwner()}
		case old.lease.Counter != l.Counter:
			old.lease, old.lastChange = l, now
		default:
			old.lease = l
		}
		ol := o.leases[l.Key]
		if owner := l.ActualOwner(); owner != "" {
			if ol.lastOwner != "" && ol.lastOwner != owner {
				ol.movedAt = now
			}
			ol.lastOwner = owner
		}
	}
	for k := range o.leases {
		if !seen[k] {
			delete(o.leases, k)
		}
	}
}

// snapshot returns the observed leases sorted by key.
func (o *leaseObserver) snapshot() []observedLease {
	out := make([]observedLease, 0, len(o.leases))
	for _, ol := range o.leases {
		out = append(out, observedLease{lease: ol.lease.Clone(), lastChange: ol.lastChange, lastOwner: ol.lastOwner, movedAt: ol.movedAt})
	}
	slices.SortFunc(out, func(a, b observedLease) int { return cmp.Compare(a.lease.Key, b.lease.Key) })
	return out
}

// balanceInput is everything the lease taker's decision depends on, so that the decision is a
// pure function that tests drive with a fake clock.
type balanceInput struct {
	me       string
	now      time.Time
	leases   []observedLease      // the view after the latest scan
	held     map[string]bool      // leases this worker holds now
	pending  map[string]time.Time // handoffs this worker asked for, and when
	failover time.Duration
	// handoffTimeout bounds the wait for a handoff before the lease is taken outright.
	handoffTimeout time.Duration
	maxLeases      int // 0: no cap
	maxSteal       int
	hysteresis     float64
	graceful       bool
	// silent are the owners that let a handoff request time out while they kept renewing:
	// KCL 2.x workers, which do not know the request. Their leases are balanced by the KCL
	// 2.x steal rule instead (see kcl2StealCount).
	silent map[string]bool
}

// balancePlan is what the lease taker does after a scan.
type balancePlan struct {
	take     []checkpoint.Lease // unassigned or expired leases to take
	steal    []checkpoint.Lease // leases to ask for (graceful) or take outright
	complete []checkpoint.Lease // handoffs to finish by taking the released (or expired) lease
	abandon  []string           // handoffs that will not complete (the lease went elsewhere)
	// cancel are handoff requests to withdraw: the owner did not answer within the handoff
	// timeout but its counter still moves, so it is alive and processing.
	cancel []checkpoint.Lease
	// seize are leases to take outright from an owner that does not answer handoffs, as a KCL
	// 2.x worker steals (DynamoDBLeaseTaker.chooseLeasesToSteal).
	seize []checkpoint.Lease

	// Figures of the decision, for logs and tests.
	workers  int
	fair     float64
	myLoad   float64
	maxLoad  float64
	loads    map[string]float64
	weights  map[string]float64
	nextScan time.Duration // when a lease may expire before the regular next scan; 0 if none
}

// leaseWeights returns each active lease's weight for balancing: 1 for an idle lease plus its
// throughput relative to the mean, so a lease at the mean throughput weighs 2 and a hot one
// more. Lease counts therefore still matter when load is uneven, and with no throughput
// reported at all (an idle stream, or a KCL 2.x fleet) balancing is by count, as in the KCL.
func leaseWeights(active []*checkpoint.Lease) map[string]float64 {
	w := make(map[string]float64, len(active))
	var sum float64
	for _, l := range active {
		if t := l.ThroughputKBps; t != nil && *t > 0 && !math.IsInf(*t, 0) && !math.IsNaN(*t) {
			sum += *t
		}
	}
	mean := sum / float64(max(len(active), 1))
	for _, l := range active {
		w[l.Key] = 1
		if t := l.ThroughputKBps; mean > 0 && t != nil && *t > 0 && !math.IsInf(*t, 0) && !math.IsNaN(*t) {
			w[l.Key] += *t / mean
		}
	}
	return w
}

// planBalance decides which leases this worker takes or asks for. Every worker runs it on its
// own view of the same table and reaches compatible decisions without a leader: each aims at
// its fair share of the total weight, takes free leases while below it, and otherwise moves
// leases from the most loaded worker only when the move leaves both closer to even by more
// than the hysteresis, so a balanced fleet stays put. Conditional writes settle races between
// workers acting on the same lease.
func planBalance(in balanceInput, rng *rand.Rand) balancePlan {
	var plan balancePlan
	expired := func(ol *observedLease) bool {
		return ol.lastChange.IsZero() || in.now.Sub(ol.lastChange) >= in.failover
	}

	// A lease that just changed hands is not moved again for balance until it has settled:
	// its new owner reports its throughput (the lease's weight) from the first renewals,
	// while catching up from the checkpoint, and a weight that then falls back would send
	// the lease straight back. The span is the KCL 3.x's leaseAssignmentIntervalMillis
	// (2 × failoverTimeMillis, LeaseManagementConfig): its leader moves a lease at most once
	// per assignment run.
	recentlyMoved := func(ol *observedLease) bool {
		return !ol.movedAt.IsZero() && in.now.Sub(ol.movedAt) < 2*in.failover
	}

	var active []*checkpoint.Lease
	byKey := map[string]*observedLease{}
	for i := range in.leases {
		ol := &in.leases[i]
		byKey[ol.lease.Key] = ol
		if !ol.lease.Checkpoint.IsShardEnd() {
			active = append(active, &ol.lease)
		}
	}
	plan.weights = leaseWeights(active)

	// Handoffs this worker asked for.
	for key, started := range in.pending {
		ol, ok := byKey[key]
		switch {
		case !ok || ol.lease.Owner != in.me || ol.lease.Checkpoint.IsShardEnd() || in.held[key]:
			plan.abandon = append(plan.abandon, key)
		case ol.lease.CheckpointOwner == "":
			// Released: the handoff is done.
			plan.complete = append(plan.complete, ol.lease)
		case expired(ol):
			// The owner stopped renewing during the handoff: it died, and the lease is free.
			plan.complete = append(plan.complete, ol.lease)
		case in.now.Sub(started) >= in.handoffTimeout:
			// No answer, but the counter moves: the owner is alive and still processing (a
			// KCL 2.x worker never answers). Taking the lease now would have two workers
			// process the shard at once; withdraw the request instead.
			plan.cancel = append(plan.cancel, ol.lease)
		}
	}
	// A request of this worker's that it no longer tracks (a take that lost a race, or an
	// earlier run with the same worker ID) is withdrawn the same way while its owner lives.
	for i := range in.leases {
		ol := &in.leases[i]
		l := &ol.lease
		if l.Owner == in.me && l.CheckpointOwner != "" && !in.held[l.Key] && in.pending[l.Key].IsZero() && !expired(ol) && !l.Checkpoint.IsShardEnd() {
			plan.cancel = append(plan.cancel, *l)
		}
	}
	slices.Sort(plan.abandon)
	slices.SortFunc(plan.complete, func(a, b checkpoint.Lease) int { return cmp.Compare(a.Key, b.Key) })
	slices.SortFunc(plan.cancel, func(a, b checkpoint.Lease) int { return cmp.Compare(a.Key, b.Key) })
	cancelling := make(map[string]bool, len(plan.cancel))
	for _, l := range plan.cancel {
		cancelling[l.Key] = true
	}

	// Who holds what. A lease being handed over counts for the worker it goes to.
	loads := map[string]float64{in.me: 0}
	counts := map[string]int{in.me: 0}
	owned := map[string][]*checkpoint.Lease{}
	var available []*checkpoint.Lease
	var total float64
	for _, l := range active {
		ol := byKey[l.Key]
		w := plan.weights[l.Key]
		total += w
		mine := in.held[l.Key] || (l.Owner == in.me && in.pending[l.Key] != time.Time{} && !cancelling[l.Key])
		switch {
		case mine:
			loads[in.me] += w
			counts[in.me]++
		case l.IsUnassigned() || expired(ol) || (l.Owner == in.me && l.CheckpointOwner == ""):
			// A lease the table says is this worker's but that it does not hold was left by
			// an earlier run with the same worker ID: free to take at once. One that names a
			// checkpoint owner too is that owner's until it releases the lease or expires.
			available = append(available, l)
		case cancelling[l.Key]:
			loads[l.CheckpointOwner] += w
			counts[l.CheckpointOwner]++
		default:
			loads[l.Owner] += w
			counts[l.Owner]++
			if l.CheckpointOwner == "" && !recentlyMoved(ol) {
				owned[l.Owner] = append(owned[l.Owner], l)
			}
		}
	}
	plan.workers = len(loads)
	plan.fair = total / float64(len(loads))
	myLoad, myCount := loads[in.me], counts[in.me]
	canHoldMore := func() bool { return in.maxLeases == 0 || myCount < in.maxLeases }

	// Free leases first: those whose parents are done can be processed at once, so they go
	// before children still waiting; otherwise random, so workers starting together do not
	// all race for the same lease.
	rng.Shuffle(len(available), func(i, j int) { available[i], available[j] = available[j], available[i] })
	slices.SortStableFunc(available, func(a, b *checkpoint.Lease) int {
		return cmp.Compare(waitingOnParents(a, byKey), waitingOnParents(b, byKey))
	})
	for _, l := range available {
		if myLoad >= plan.fair-1e-9 || !canHoldMore() {
			break
		}
		plan.take = append(plan.take, *l)
		myLoad += plan.weights[l.Key]
		myCount++
	}

	// Then balance, when nothing was free, and only a few leases at a time.
	if len(plan.take) == 0 && len(in.pending) < in.maxSteal {
		for n := len(in.pending); n < in.maxSteal && canHoldMore() && myLoad < plan.fair; n++ {
			victim := ""
			for wk, ld := range loads {
				if wk == in.me || len(owned[wk]) == 0 {
					continue
				}
				if victim == "" || ld > loads[victim] || (ld == loads[victim] && wk < victim) {
					victim = wk
				}
			}
			if victim == "" || loads[victim] <= plan.fair {
				break
			}
			if in.silent[victim] {
				// The victim does not answer handoff requests: steal as a KCL 2.x worker
				// would, so a mixed fleet follows one rule.
				k := kcl2StealCount(len(active), len(loads), myCount, counts[victim], in.maxSteal-n)
				cands := owned[victim]
				rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
				for _, l := range cands[:min(k, len(cands))] {
					plan.seize = append(plan.seize, *l)
					myLoad += plan.weights[l.Key]
					myCount++
				}
				break
			}
			var best *checkpoint.Lease
			bestGap := math.Inf(1)
			cands := owned[victim]
			rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
			// The move must leave the pair more even than before by at least the hysteresis;
			// the reverse move then cannot qualify, so leases do not ping-pong.
			d := loads[victim] - myLoad
			for _, l := range cands {
				gap := math.Abs(d - 2*plan.weights[l.Key])
				if gap <= d-in.hysteresis && gap < bestGap {
					best, bestGap = l, gap
				}
			}
			if best == nil {
				break
			}
			plan.steal = append(plan.steal, *best)
			w := plan.weights[best.Key]
			loads[victim] -= w
			myLoad += w
			myCount++
			owned[victim] = slices.DeleteFunc(owned[victim], func(l *checkpoint.Lease) bool { return l.Key == best.Key })
		}
	}
	plan.myLoad = myLoad
	plan.loads = loads
	for _, ld := range loads {
		plan.maxLoad = max(plan.maxLoad, ld)
	}

	// A lease whose owner stopped renewing expires between scans: scan again right then
	// instead of up to a whole interval later.
	for _, ol := range in.leases {
		l := &ol.lease
		if l.Checkpoint.IsShardEnd() || l.IsUnassigned() || in.held[l.Key] || ol.lastChange.IsZero() {
			continue
		}
		if d := ol.lastChange.Add(in.failover).Sub(in.now); d > 0 && (plan.nextScan == 0 || d < plan.nextScan) {
			plan.nextScan = d
		}
	}
	return plan
}

// kcl2StealCount is how many leases the KCL 2.x's DynamoDBLeaseTaker steals from the most
// loaded worker when none are free: its target is the lease count over the worker count,
// rounded up; it steals only while below the target and from a worker at or above it, at most
// the victim's excess over the target (one, when it needs more than one and the victim has no
// excess), and at most maxLeasesToStealAtOneTime (here the steals left this scan).
func kcl2StealCount(leases, workers, mine, victims, maxSteal int) int {
	if workers == 0 || maxSteal <= 0 {
		return 0
	}
	target := (leases + workers - 1) / workers
	needed := target - mine
	if needed <= 0 || victims < target {
		return 0
	}
	n := min(needed, victims-target)
	if needed > 1 && n == 0 {
		n = 1
	}
	return min(n, maxSteal)
}

// waitingOnParents returns 1 when one of the lease's parents still has a lease that is not
// finished, 0 otherwise.
func waitingOnParents(l *checkpoint.Lease, byKey map[string]*observedLease) int {
	for _, p := range l.ParentShardIDs {
		if pl, ok := byKey[p]; ok && !pl.lease.Checkpoint.IsShardEnd() {
			return 1
		}
	}
	return 0
}
