package checkpoint

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
)

// localCore holds leases in a map under one mutex and applies the same conditional rules as the
// DynamoDB store. The memory store uses it as is; the file store adds a commit function that
// makes each change durable before it becomes visible.
type localCore struct {
	mu     sync.Mutex
	leases map[string]Lease
	closed bool
	// broken is set when a commit failed in a way that leaves the durable state unknown; every
	// later call fails with it rather than serve state that may differ from the disk.
	broken error
	// commit persists the state after a change; when it fails the change is rolled back, so
	// what callers saw succeed is exactly what is durable. Nil for the memory store.
	commit func(map[string]Lease) error
}

func newLocalCore(leases map[string]Lease, commit func(map[string]Lease) error) *localCore {
	if leases == nil {
		leases = map[string]Lease{}
	}
	return &localCore{leases: leases, commit: commit}
}

func (c *localCore) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.closed {
		return ErrStoreClosed
	}
	return c.broken
}

func (c *localCore) list(ctx context.Context) ([]Lease, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check(ctx); err != nil {
		return nil, err
	}
	out := make([]Lease, 0, len(c.leases))
	for _, k := range slices.Sorted(maps.Keys(c.leases)) {
		out = append(out, c.leases[k].Clone())
	}
	return out, nil
}

func (c *localCore) get(ctx context.Context, key string) (Lease, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check(ctx); err != nil {
		return Lease{}, err
	}
	l, ok := c.leases[key]
	if !ok {
		return Lease{}, &LeaseError{Op: OpGetLease, Key: key, Err: ErrLeaseNotFound}
	}
	return l.Clone(), nil
}

// mutate runs fn on the stored lease under the lock. fn returns the new lease, or an error to
// refuse the change. remove deletes the lease instead of storing it.
func (c *localCore) mutate(ctx context.Context, op, key string, fn func(cur Lease, exists bool) (next Lease, remove bool, err error)) (Lease, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check(ctx); err != nil {
		return Lease{}, err
	}
	cur, exists := c.leases[key]
	next, remove, err := fn(cur.Clone(), exists)
	if err != nil {
		return Lease{}, err
	}
	if remove {
		delete(c.leases, key)
	} else {
		c.leases[key] = next.Clone()
	}
	if c.commit != nil {
		if err := c.commit(c.leases); err != nil {
			if exists {
				c.leases[key] = cur
			} else {
				delete(c.leases, key)
			}
			var u *uncertainError
			if errors.As(err, &u) {
				c.broken = err
			}
			return Lease{}, err
		}
	}
	return next, nil
}

// uncertainError marks a commit failure after which the durable state may or may not hold the
// change (for example the rename succeeded but syncing the directory failed).
type uncertainError struct{ err error }

func (e *uncertainError) Error() string { return e.err.Error() }
func (e *uncertainError) Unwrap() error { return e.err }

func notFound(op, key string) error {
	return &LeaseError{Op: op, Key: key, Err: ErrLeaseNotFound}
}

func lost(op, key, detail string, cur Lease) error {
	c := cur.Clone()
	return &LeaseError{Op: op, Key: key, Err: ErrLeaseLost, Detail: detail, Current: &c}
}

// heldBy reports whether cur is still held by the actual owner and at the counter of held:
// the condition of every write by a lease holder.
func heldBy(cur, held Lease) bool {
	return cur.Counter == held.Counter && cur.ActualOwner() == held.ActualOwner()
}

const (
	detailChanged = "counter or owner changed since the lease was read"
	detailNotHeld = "the lease is no longer held at the counter and by the owner given"
)

func (c *localCore) create(ctx context.Context, l Lease) (Lease, error) {
	if err := validateNewLease(l); err != nil {
		return Lease{}, err
	}
	l = l.Clone()
	l.ParentShardIDs = shardSet(l.ParentShardIDs)
	l.ChildShardIDs = shardSet(l.ChildShardIDs)
	return c.mutate(ctx, OpCreateLease, l.Key, func(cur Lease, exists bool) (Lease, bool, error) {
		if exists {
			return Lease{}, false, &LeaseError{Op: OpCreateLease, Key: l.Key, Err: ErrLeaseExists, Current: &cur}
		}
		return l, false, nil
	})
}

func (c *localCore) take(ctx context.Context, seen Lease, newOwner string) (Lease, error) {
	if err := validateTake(seen, newOwner); err != nil {
		return Lease{}, err
	}
	return c.mutate(ctx, OpTakeLease, seen.Key, func(cur Lease, exists bool) (Lease, bool, error) {
		switch {
		case !exists:
			return Lease{}, false, notFound(OpTakeLease, seen.Key)
		case cur.Counter != seen.Counter || cur.Owner != seen.Owner || cur.CheckpointOwner != seen.CheckpointOwner:
			return Lease{}, false, lost(OpTakeLease, seen.Key, detailChanged, cur)
		}
		if prev := cur.ActualOwner(); prev != "" && prev != newOwner {
			cur.OwnerSwitchesSinceCheckpoint++
		}
		cur.Owner = newOwner
		cur.CheckpointOwner = ""
		cur.Counter++
		return cur, false, nil
	})
}

func (c *localCore) renew(ctx context.Context, held Lease) (Lease, error) {
	if err := validateHeld(OpRenewLease, held); err != nil {
		return Lease{}, err
	}
	return c.mutate(ctx, OpRenewLease, held.Key, func(cur Lease, exists bool) (Lease, bool, error) {
		switch {
		case !exists:
			return Lease{}, false, notFound(OpRenewLease, held.Key)
		case !heldBy(cur, held):
			return Lease{}, false, lost(OpRenewLease, held.Key, detailNotHeld, cur)
		}
		cur.Counter++
		if held.ThroughputKBps != nil {
			t := *held.ThroughputKBps
			cur.ThroughputKBps = &t
		}
		return cur, false, nil
	})
}

func (c *localCore) evict(ctx context.Context, held Lease) (Lease, error) {
	if err := validateHeld(OpEvictLease, held); err != nil {
		return Lease{}, err
	}
	return c.mutate(ctx, OpEvictLease, held.Key, func(cur Lease, exists bool) (Lease, bool, error) {
		switch {
		case !exists:
			return Lease{}, false, notFound(OpEvictLease, held.Key)
		case !heldBy(cur, held):
			return Lease{}, false, lost(OpEvictLease, held.Key, detailNotHeld, cur)
		}
		// Decided from held, not cur, exactly as the DynamoDB store must (its update
		// expression is fixed before the request): a holder that saw the handoff leaves the
		// next owner in place.
		if held.CheckpointOwner == "" {
			cur.Owner = ""
		}
		cur.CheckpointOwner = ""
		cur.Counter++
		return cur, false, nil
	})
}

func (c *localCore) updateCheckpoint(ctx context.Context, held Lease, cp ExtendedSequenceNumber) (Lease, error) {
	if err := validateHeld(OpUpdateCheckpoint, held); err != nil {
		return Lease{}, err
	}
	if err := cp.Validate(); err != nil {
		return Lease{}, &LeaseError{Op: OpUpdateCheckpoint, Key: held.Key, Err: ErrInvalidLease, Detail: "checkpoint", Cause: err}
	}
	return c.mutate(ctx, OpUpdateCheckpoint, held.Key, func(cur Lease, exists bool) (Lease, bool, error) {
		switch {
		case !exists:
			return Lease{}, false, notFound(OpUpdateCheckpoint, held.Key)
		case !heldBy(cur, held):
			return Lease{}, false, lost(OpUpdateCheckpoint, held.Key, detailNotHeld, cur)
		}
		cur.Checkpoint = cp
		cur.PendingCheckpoint = nil
		cur.PendingCheckpointState = nil
		cur.OwnerSwitchesSinceCheckpoint = 0
		cur.Counter++
		if held.ThroughputKBps != nil {
			t := *held.ThroughputKBps
			cur.ThroughputKBps = &t
		}
		return cur, false, nil
	})
}

func (c *localCore) handoff(ctx context.Context, l Lease, next string) (Lease, error) {
	if err := validateHandoff(l, next); err != nil {
		return Lease{}, err
	}
	return c.mutate(ctx, OpInitiateHandoff, l.Key, func(cur Lease, exists bool) (Lease, bool, error) {
		switch {
		case !exists:
			return Lease{}, false, notFound(OpInitiateHandoff, l.Key)
		case cur.Owner != l.Owner || cur.CheckpointOwner != "":
			return Lease{}, false, lost(OpInitiateHandoff, l.Key, "owner changed or a handoff is already under way", cur)
		}
		cur.CheckpointOwner = l.Owner
		cur.Owner = next
		return cur, false, nil
	})
}

func (c *localCore) cancelHandoff(ctx context.Context, l Lease) (Lease, error) {
	if err := validateCancelHandoff(l); err != nil {
		return Lease{}, err
	}
	return c.mutate(ctx, OpCancelHandoff, l.Key, func(cur Lease, exists bool) (Lease, bool, error) {
		switch {
		case !exists:
			return Lease{}, false, notFound(OpCancelHandoff, l.Key)
		case cur.Owner != l.Owner || cur.CheckpointOwner != l.CheckpointOwner:
			return Lease{}, false, lost(OpCancelHandoff, l.Key, "the handoff ended or changed", cur)
		}
		cur.Owner = cur.CheckpointOwner
		cur.CheckpointOwner = ""
		return cur, false, nil
	})
}

func (c *localCore) childShards(ctx context.Context, key string, ids []string) (Lease, error) {
	if err := validateChildShards(key, ids); err != nil {
		return Lease{}, err
	}
	ids = shardSet(ids)
	return c.mutate(ctx, OpUpdateChildShards, key, func(cur Lease, exists bool) (Lease, bool, error) {
		if !exists {
			return Lease{}, false, notFound(OpUpdateChildShards, key)
		}
		cur.ChildShardIDs = ids
		return cur, false, nil
	})
}

func (c *localCore) hashKeyRange(ctx context.Context, key string, r HashKeyRange) (Lease, error) {
	if key == "" {
		return Lease{}, invalid(OpUpdateHashKeyRange, key, "empty lease key")
	}
	if err := validateRange(OpUpdateHashKeyRange, key, &r); err != nil {
		return Lease{}, err
	}
	return c.mutate(ctx, OpUpdateHashKeyRange, key, func(cur Lease, exists bool) (Lease, bool, error) {
		if !exists {
			return Lease{}, false, notFound(OpUpdateHashKeyRange, key)
		}
		cur.HashKeyRange = &r
		return cur, false, nil
	})
}

func (c *localCore) delete(ctx context.Context, l Lease) error {
	if l.Key == "" {
		return invalid(OpDeleteLease, l.Key, "empty lease key")
	}
	_, err := c.mutate(ctx, OpDeleteLease, l.Key, func(cur Lease, exists bool) (Lease, bool, error) {
		switch {
		case !exists:
			return Lease{}, false, notFound(OpDeleteLease, l.Key)
		case cur.Counter != l.Counter:
			return Lease{}, false, lost(OpDeleteLease, l.Key, "counter changed since the lease was read", cur)
		}
		return Lease{}, true, nil
	})
	return err
}

func validateChildShards(key string, ids []string) error {
	switch {
	case key == "":
		return invalid(OpUpdateChildShards, key, "empty lease key")
	case len(ids) == 0:
		return invalid(OpUpdateChildShards, key, "no child shard IDs")
	case slices.Contains(ids, ""):
		return invalid(OpUpdateChildShards, key, "empty child shard ID")
	}
	return nil
}
