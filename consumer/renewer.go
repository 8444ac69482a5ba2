package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shardline/shardline/checkpoint"
)

// maxConcurrentRenewals bounds the renewals in flight, so a worker with many leases spreads
// them over a few connections instead of opening one per lease.
const maxConcurrentRenewals = 16

// leaseRenewer keeps this worker's leases: it renews each one every RenewInterval, reporting
// the shard's throughput, passes a requested handoff to the shard's consumer, and stops a
// shard whose lease was lost or could not be renewed for close to the failover time, before
// another worker may take it.
type leaseRenewer struct {
	w   *Worker
	sem chan struct{}
	wg  sync.WaitGroup
}

func newLeaseRenewer(w *Worker) *leaseRenewer {
	return &leaseRenewer{w: w, sem: make(chan struct{}, maxConcurrentRenewals)}
}

// checkInterval is how often the renewer looks at its leases: often enough to stop a shard
// within a small fraction of the failover time once renewals fail.
func (r *leaseRenewer) checkInterval() time.Duration {
	return max(min(r.w.cfg.RenewInterval/4, r.w.cfg.FailoverTime/10), 5*time.Millisecond)
}

// run renews until ctx ends, then waits for renewals in flight.
func (r *leaseRenewer) run(ctx context.Context) {
	defer r.wg.Wait()
	tick := time.NewTicker(r.checkInterval())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.check(ctx)
		}
	}
}

func (r *leaseRenewer) check(ctx context.Context) {
	w := r.w
	now := time.Now()
	w.accountLeaseTime(now)
	for _, c := range w.heldConsumers() {
		h := &c.hold
		h.mu.Lock()
		since := now.Sub(h.lastRenewed)
		due := !h.renewing && !now.Before(h.nextRenew)
		if due {
			h.renewing = true
		}
		h.mu.Unlock()
		if since > w.cfg.renewDeadline() {
			c.loseLease(fmt.Errorf("%w: not renewed for %s (renewals failing)", checkpoint.ErrLeaseLost, since.Round(time.Millisecond)))
			continue
		}
		if !due {
			continue
		}
		select {
		case r.sem <- struct{}{}:
		case <-ctx.Done():
			h.mu.Lock()
			h.renewing = false
			h.mu.Unlock()
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() { <-r.sem }()
			r.renew(ctx, c)
		}()
	}
}

// renew renews one lease, unless a checkpoint written since the last renewal already moved
// its counter and the throughput report is recent: every ownership write proves the owner is
// alive to the other workers, so a busy shard costs a checkpoint per batch and not also a
// renewal.
func (r *leaseRenewer) renew(ctx context.Context, c *shardConsumer) {
	w := r.w
	cfg := &w.cfg
	h := &c.hold
	// A checkpoint's answer shows a requested handoff as a renewal's does. The holder's lock
	// waits for a write in flight, which is why this runs here and not in check.
	if c.holder.HandoffRequested() {
		c.requestStop(stopHandoff)
	}
	start := time.Now()
	h.mu.Lock()
	lastCheckpoint, lastReport := h.lastCheckpoint, h.lastReport
	if lastCheckpoint.After(lastReport) && start.Sub(lastCheckpoint) < cfg.RenewInterval && start.Sub(lastReport) < cfg.FailoverTime {
		h.nextRenew = lastCheckpoint.Add(cfg.RenewInterval)
		h.renewing = false
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	c.holder.SetThroughput(c.throughputKBps(start))
	rctx, cancel := context.WithTimeout(ctx, cfg.RenewInterval)
	l, err := c.holder.Renew(rctx)
	cancel()
	took := time.Since(start)
	h.mu.Lock()
	h.renewing = false
	if err == nil {
		h.lastRenewed, h.lastReport = start, start
		// At a fixed rate, so the renewer's tick delays a renewal without slowing the
		// rate, and a late renewal is not followed by a second one at once.
		h.nextRenew = h.nextRenew.Add(cfg.RenewInterval)
		if h.nextRenew.Before(start.Add(cfg.RenewInterval / 2)) {
			h.nextRenew = start.Add(cfg.RenewInterval)
		}
	} else {
		// Try again soon; the check gives the lease up locally at renewDeadline.
		h.nextRenew = time.Now().Add(cfg.renewRetry())
	}
	h.mu.Unlock()
	switch {
	case err == nil:
		w.stats.renewals.Add(1)
		w.stats.renewalNanos.Add(int64(took))
		w.m.renewalLatency.ObserveDuration(took)
		if l.HandoffRequested(cfg.WorkerID) {
			c.requestStop(stopHandoff)
		}
	case errors.Is(err, checkpoint.ErrLeaseLost), errors.Is(err, checkpoint.ErrLeaseNotFound):
		c.loseLease(err)
	case ctx.Err() != nil:
	case w.checkTableGone(err):
	default:
		w.stats.renewalFailures.Add(1)
		w.log.Warn("consumer: lease renewal failed", "lease", c.shardID, "error", err, "since_last_renewal", time.Since(h.lastRenewedAt()).Round(time.Millisecond))
	}
}
