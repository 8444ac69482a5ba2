package checkpoint

import (
	"context"
	"errors"
	"sync"
)

// LeaseHolder is one worker's hold on one lease. Renewals and checkpoints both increment the
// lease counter and are both conditional on it, so if they ran independently each would
// invalidate the other's view and the worker would seem to lose its own lease. A LeaseHolder
// serializes them and carries the counter from each write into the next.
//
// The consumer creates one per lease it takes, renews through it, and hands a Checkpointer
// built on it to the application. Once the store reports the lease lost (or the holder
// evicts it), every later call fails with the same error without a request: the worker must
// stop processing the shard. Safe for concurrent use.
type LeaseHolder struct {
	store Store

	mu         sync.Mutex
	lease      Lease
	err        error
	throughput *float64
	// deferred is a checkpoint accepted by Checkpointer.CheckpointAtNextRenewal and not yet
	// written: the next renewal writes it instead of a bare renewal.
	deferred *ExtendedSequenceNumber
}

// NewLeaseHolder returns a holder for lease, which must be the value returned by the take (or
// renewal) that gave this worker the lease.
func NewLeaseHolder(store Store, lease Lease) (*LeaseHolder, error) {
	if err := validateHeld("NewLeaseHolder", lease); err != nil {
		return nil, err
	}
	return &LeaseHolder{store: store, lease: lease.Clone()}, nil
}

// Lease returns the lease as of the last successful write or renewal.
func (h *LeaseHolder) Lease() Lease {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lease.Clone()
}

// Key returns the lease key.
func (h *LeaseHolder) Key() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lease.Key
}

// Err returns nil while the lease is held, and the error that ended the hold (matching
// ErrLeaseLost or ErrLeaseNotFound) afterwards.
func (h *LeaseHolder) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// HandoffRequested reports whether the last renewal showed a graceful handoff to another
// worker: the holder should let the application checkpoint and then call Evict.
func (h *LeaseHolder) HandoffRequested() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lease.HandoffRequested(h.lease.ActualOwner())
}

// SetThroughput records the shard's measured throughput; the next renewal stores it.
func (h *LeaseHolder) SetThroughput(kbps float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.throughput = &kbps
}

// Renew renews the lease. When a checkpoint waits for the renewal (see
// Checkpointer.CheckpointAtNextRenewal), the renewal is that checkpoint's write: one
// UpdateCheckpoint, which moves the counter as a renewal does, instead of a RenewLease.
func (h *LeaseHolder) Renew(ctx context.Context) (Lease, error) {
	return h.do(ctx, func(l Lease) (Lease, error) {
		// Only a measurement of this holder's is written, never a value read from the table,
		// which may be another worker's and stale.
		l.ThroughputKBps = h.throughput
		if d := h.deferred; d != nil && d.Compare(l.Checkpoint) > 0 {
			got, err := h.store.UpdateCheckpoint(ctx, l, *d)
			if err == nil {
				h.deferred = nil
			}
			return got, err
		}
		return h.store.RenewLease(ctx, l)
	})
}

// DeferredCheckpoint returns the checkpoint waiting for the next renewal, and false when none
// is waiting.
func (h *LeaseHolder) DeferredCheckpoint() (ExtendedSequenceNumber, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.deferred == nil {
		return ExtendedSequenceNumber{}, false
	}
	return *h.deferred, true
}

// Checkpoint stores cp as the lease's checkpoint, without ordering checks; applications use a
// Checkpointer, which makes them.
func (h *LeaseHolder) Checkpoint(ctx context.Context, cp ExtendedSequenceNumber) (Lease, error) {
	return h.checkpointIf(ctx, cp, nil)
}

// checkpointIf runs check against the held lease and, when it passes, stores cp, all under the
// holder's lock so the lease cannot change between the check and the write. check may return
// errSkipWrite to accept cp without a write.
func (h *LeaseHolder) checkpointIf(ctx context.Context, cp ExtendedSequenceNumber, check func(Lease) error) (Lease, error) {
	return h.do(ctx, func(l Lease) (Lease, error) {
		if check != nil {
			if err := check(l); err != nil {
				return l, err
			}
		}
		l.ThroughputKBps = h.throughput
		got, err := h.store.UpdateCheckpoint(ctx, l, cp)
		if err == nil && h.deferred != nil && h.deferred.Compare(cp) <= 0 {
			h.deferred = nil // written, or passed
		}
		return got, err
	})
}

// deferIf runs check against the held lease and, when it passes, keeps cp for the next
// renewal to write, unless a later checkpoint already waits.
func (h *LeaseHolder) deferIf(cp ExtendedSequenceNumber, check func(Lease) error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return h.err
	}
	if err := check(h.lease); err != nil {
		if errors.Is(err, errSkipWrite) {
			return nil
		}
		return err
	}
	if h.deferred == nil || h.deferred.Compare(cp) < 0 {
		c := cp
		h.deferred = &c
	}
	return nil
}

var errSkipWrite = errors.New("no write needed")

// Evict gives the lease up so another worker can take it at once, after writing a checkpoint
// that waits for a renewal. Afterwards the holder reports the lease as lost.
func (h *LeaseHolder) Evict(ctx context.Context) (Lease, error) {
	l, err := h.do(ctx, func(l Lease) (Lease, error) {
		// A checkpoint waiting for a renewal is written first: the lease goes to another
		// worker now, and a handoff must not lose progress the application recorded.
		if d := h.deferred; d != nil && d.Compare(l.Checkpoint) > 0 {
			cl, err := h.store.UpdateCheckpoint(ctx, l, *d)
			if err != nil {
				return cl, err
			}
			h.deferred, l = nil, cl
		}
		return h.store.EvictLease(ctx, l)
	})
	if err == nil {
		h.mu.Lock()
		h.err = &LeaseError{Op: OpEvictLease, Key: l.Key, Err: ErrLeaseLost, Detail: "evicted by this worker"}
		h.mu.Unlock()
	}
	return l, err
}

func (h *LeaseHolder) do(ctx context.Context, write func(Lease) (Lease, error)) (Lease, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return Lease{}, h.err
	}
	l, err := write(h.lease.Clone())
	switch {
	case errors.Is(err, errSkipWrite):
		return h.lease.Clone(), nil
	case errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrLeaseNotFound):
		h.err = err
		return Lease{}, err
	case err != nil:
		// Transient failures (network, throttling, a cancelled context) leave the hold as it
		// was: the write may or may not have applied, and the next write finds out.
		return Lease{}, err
	}
	h.lease = l.Clone()
	return l, nil
}
