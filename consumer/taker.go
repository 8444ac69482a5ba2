package consumer

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/shardline/shardline/checkpoint"
)

// leaseTaker finds leases for this worker: it scans the lease table, tracks each lease's
// counter on this worker's clock, takes unassigned and expired leases up to the worker's fair
// share, and balances the fleet by asking the most loaded worker for leases (see planBalance).
// It runs in one goroutine of the Worker.
type leaseTaker struct {
	w       *Worker
	obs     *leaseObserver
	pending map[string]time.Time // handoffs asked for, by lease key
	// silent are owners that let a handoff request time out while renewing (KCL 2.x
	// workers), forgotten once they own no lease.
	silent map[string]bool
	// from names the owner each handoff was asked of: once it releases the lease, the lease
	// names only this worker, and the log should name the worker it came from.
	from map[string]string
	rng  *rand.Rand
}

func newLeaseTaker(w *Worker) *leaseTaker {
	return &leaseTaker{
		w:       w,
		obs:     newLeaseObserver(),
		pending: map[string]time.Time{},
		silent:  map[string]bool{},
		from:    map[string]string{},
		rng:     rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
}

// run scans until ctx ends. A lease that may expire before the next regular scan gets a scan
// at its expiry, and handoffs under way are polled more often, so failover and handoffs do not
// wait for a whole interval.
func (t *leaseTaker) run(ctx context.Context) {
	cfg := &t.w.cfg
	minGap := cfg.TakeInterval / 4
	pollEvery := min(minGap, 500*time.Millisecond)
	scanTimer := time.NewTimer(0)
	defer scanTimer.Stop()
	poll := time.NewTicker(pollEvery)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
			if len(t.pending) > 0 {
				t.pollPending(ctx)
			}
		case <-scanTimer.C:
			next := t.scan(ctx)
			scanTimer.Reset(max(next, minGap))
		}
	}
}

// scan runs one cycle and returns the time until the next.
func (t *leaseTaker) scan(ctx context.Context) time.Duration {
	w := t.w
	cfg := &w.cfg
	sctx, cancel := context.WithTimeout(ctx, cfg.TakeInterval)
	started := time.Now()
	leases, err := w.listLeases(sctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil && !w.checkTableGone(err) {
			w.log.Warn("consumer: listing leases failed", "error", err)
		}
		return cfg.TakeInterval / 2
	}
	w.noteScan(slices.Clone(leases), started)
	now := time.Now()
	t.obs.update(leases, now)
	view := t.obs.snapshot()
	w.publishView(view)
	if len(t.silent) > 0 {
		owners := map[string]bool{}
		for _, ol := range view {
			owners[ol.lease.ActualOwner()] = true
		}
		for o := range t.silent {
			if !owners[o] {
				delete(t.silent, o)
			}
		}
	}

	plan := planBalance(balanceInput{
		me:             cfg.WorkerID,
		now:            now,
		leases:         view,
		held:           w.heldKeys(),
		pending:        t.pending,
		failover:       cfg.FailoverTime,
		handoffTimeout: cfg.HandoffTimeout,
		maxLeases:      cfg.MaxLeasesPerWorker,
		maxSteal:       cfg.MaxLeasesToStealAtOnce,
		hysteresis:     cfg.BalanceHysteresis,
		graceful:       !cfg.DisableGracefulHandoff,
		silent:         t.silent,
	}, t.rng)

	for _, l := range plan.cancel {
		delete(t.pending, l.Key)
		delete(t.from, l.Key)
		cctx, cancel := context.WithTimeout(ctx, cfg.TakeInterval)
		_, err := w.store.CancelHandoff(cctx, l)
		cancel()
		switch {
		case err == nil:
			t.silent[l.CheckpointOwner] = true
			w.stats.handoffsCancelled.Add(1)
			w.log.Warn("consumer: the owner did not answer the handoff request but still renews the lease; request withdrawn, and its leases are balanced by the KCL 2.x steal rule from now on",
				"lease", l.Key, "owner", l.CheckpointOwner, "timeout", cfg.HandoffTimeout)
		case errors.Is(err, checkpoint.ErrLeaseLost), errors.Is(err, checkpoint.ErrLeaseNotFound):
			w.log.Debug("consumer: handoff changed before it could be withdrawn", "lease", l.Key, "error", err)
		default:
			w.log.Warn("consumer: withdrawing a handoff request failed", "lease", l.Key, "error", err)
		}
	}

	for _, key := range plan.abandon {
		w.log.Debug("consumer: handoff abandoned: the lease went elsewhere", "lease", key)
		delete(t.pending, key)
		delete(t.from, key)
	}
	for _, l := range plan.complete {
		why := "handoff"
		if l.CheckpointOwner != "" {
			// planBalance completes an unreleased handoff only when the lease expired: the
			// owner stopped renewing, which is a failure, not a late answer.
			why = "expired during the handoff"
			w.log.Warn("consumer: the owner stopped renewing the lease during the handoff; taking the expired lease", "lease", l.Key, "owner", l.CheckpointOwner, "failover", cfg.FailoverTime)
		}
		delete(t.pending, l.Key)
		t.take(ctx, l, why)
	}
	if len(plan.take) > 0 || len(plan.steal) > 0 || len(plan.seize) > 0 {
		w.log.Debug("consumer: lease balance", "workers", plan.workers, "fair_share", round2(plan.fair), "my_load", round2(plan.myLoad), "max_load", round2(plan.maxLoad), "taking", len(plan.take), "stealing", len(plan.steal)+len(plan.seize))
	}
	for _, l := range plan.take {
		if ctx.Err() != nil {
			break
		}
		why := "unassigned"
		switch {
		case l.Owner == w.cfg.WorkerID && l.CheckpointOwner == "":
			why = "left by an earlier run of this worker"
		case !l.IsUnassigned():
			why = "expired"
		}
		t.take(ctx, l, why)
	}
	for _, l := range plan.seize {
		if ctx.Err() != nil {
			break
		}
		t.take(ctx, l, "steal from an owner that does not answer handoffs")
	}
	for _, l := range plan.steal {
		if ctx.Err() != nil {
			break
		}
		if cfg.DisableGracefulHandoff {
			t.take(ctx, l, "steal")
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, cfg.TakeInterval)
		_, err := w.store.InitiateHandoff(hctx, l, cfg.WorkerID)
		cancel()
		switch {
		case err == nil:
			t.pending[l.Key] = time.Now()
			t.from[l.Key] = l.Owner
			w.stats.handoffsRequested.Add(1)
			w.log.Info("consumer: asked for a lease to balance the load", "lease", l.Key, "from", l.Owner)
		case errors.Is(err, checkpoint.ErrLeaseLost), errors.Is(err, checkpoint.ErrLeaseNotFound), errors.Is(err, checkpoint.ErrInvalidLease):
			w.log.Debug("consumer: lease changed before the handoff request", "lease", l.Key, "error", err)
		default:
			w.log.Warn("consumer: handoff request failed", "lease", l.Key, "error", err)
		}
	}

	next := cfg.TakeInterval
	if plan.nextScan > 0 && plan.nextScan+10*time.Millisecond < next {
		next = plan.nextScan + 10*time.Millisecond
	}
	return next
}

// pollPending checks the handoffs under way with one read each, to start as soon as the
// previous owner released the lease.
func (t *leaseTaker) pollPending(ctx context.Context) {
	w := t.w
	for key := range t.pending {
		gctx, cancel := context.WithTimeout(ctx, w.cfg.TakeInterval)
		l, err := w.store.GetLease(gctx, key)
		cancel()
		switch {
		case errors.Is(err, checkpoint.ErrLeaseNotFound):
			delete(t.pending, key)
			delete(t.from, key)
		case err != nil:
			continue
		case l.Owner != w.cfg.WorkerID || l.Checkpoint.IsShardEnd():
			delete(t.pending, key)
			delete(t.from, key)
		case l.CheckpointOwner == "":
			// Released. A request that timed out is judged by the scan, which knows whether
			// the owner's counter still moves.
			delete(t.pending, key)
			t.take(ctx, l, "handoff")
		}
	}
}

// releasePending gives up the handoffs under way when the worker shuts down. A request the
// owner has not answered yet is withdrawn, so the owner keeps the lease rather than the lease
// naming a stopped worker as its next owner until it expires; a lease the owner already
// released names this worker alone, and is evicted so that another worker takes it at once.
func (t *leaseTaker) releasePending(ctx context.Context) {
	for key := range t.pending {
		delete(t.pending, key)
		delete(t.from, key)
		t.withdraw(ctx, key)
	}
}

// withdraw gives up one handoff this worker asked for. The owner may release the lease
// between the read and the write, which fails the write's condition; the lease is then read
// again and evicted.
func (t *leaseTaker) withdraw(ctx context.Context, key string) {
	w := t.w
	for attempt := 0; attempt < 3; attempt++ {
		gctx, cancel := context.WithTimeout(ctx, w.cfg.RenewInterval)
		l, err := w.store.GetLease(gctx, key)
		if err == nil {
			switch {
			case l.Owner != w.cfg.WorkerID || w.holds(key):
				cancel()
				return
			case l.CheckpointOwner == "":
				_, err = w.store.EvictLease(gctx, l)
			default:
				_, err = w.store.CancelHandoff(gctx, l)
			}
		}
		cancel()
		switch {
		case err == nil, errors.Is(err, checkpoint.ErrLeaseNotFound):
			return
		case errors.Is(err, checkpoint.ErrLeaseLost):
			continue
		default:
			w.log.Debug("consumer: giving up a handoff failed", "lease", key, "error", err)
			return
		}
	}
}

// take takes l and starts processing it.
func (t *leaseTaker) take(ctx context.Context, l checkpoint.Lease, why string) {
	w := t.w
	if w.holds(l.Key) {
		return
	}
	start := time.Now()
	tctx, cancel := context.WithTimeout(ctx, w.cfg.TakeInterval)
	got, err := w.store.TakeLease(tctx, l, w.cfg.WorkerID)
	cancel()
	if err != nil {
		if errors.Is(err, checkpoint.ErrLeaseLost) || errors.Is(err, checkpoint.ErrLeaseNotFound) {
			w.log.Debug("consumer: lease changed before it could be taken", "lease", l.Key, "error", err)
		} else if ctx.Err() == nil {
			w.log.Warn("consumer: taking lease failed", "lease", l.Key, "error", err)
		}
		return
	}
	prev := l.ActualOwner()
	if from, ok := t.from[l.Key]; ok && l.CheckpointOwner == "" && l.Owner == w.cfg.WorkerID {
		prev = from
	}
	delete(t.from, l.Key)
	w.log.Info("consumer: took lease", "lease", l.Key, "reason", why, "previous_owner", prev, "checkpoint", got.Checkpoint.String())
	w.startShard(got, start)
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
