package checkpoint

import (
	"context"
	"slices"
)

// Lease is one shard's row in the lease table: who processes the shard, how far it got, and
// where the shard sits in the stream's family tree. A Lease value is a snapshot; the stores
// return a fresh one from every call and never keep a reference to the caller's slices.
type Lease struct {
	// Key identifies the lease: the shard ID, or "streamIdentifier:shardId" in the KCL's
	// multi-stream mode.
	Key string
	// Owner is the worker the lease is assigned to; empty when unassigned. During a graceful
	// handoff it is already the next worker while CheckpointOwner is still the current one.
	Owner string
	// Counter goes up by one on every write that asserts ownership (take, renew, checkpoint,
	// evict). Workers judge expiry by watching it: a lease whose counter has not moved for the
	// failover time is free to take. Every conditional write names the counter it saw, so a
	// worker acting on a stale view is refused.
	Counter int64
	// Checkpoint is the last position the owner recorded as processed, or a sentinel: where to
	// start (TRIM_HORIZON, LATEST, AT_TIMESTAMP) or SHARD_END once the shard is finished.
	Checkpoint ExtendedSequenceNumber
	// PendingCheckpoint is a prepared but not yet committed checkpoint (the KCL's two-phase
	// checkpoint); nil when none. Committing a checkpoint clears it.
	PendingCheckpoint *ExtendedSequenceNumber
	// PendingCheckpointState is the application state the KCL stores with a prepared
	// checkpoint; nil when none.
	PendingCheckpointState []byte
	// OwnerSwitchesSinceCheckpoint counts how often the lease changed hands since the last
	// checkpoint: a growing value points at a shard that workers keep failing on.
	OwnerSwitchesSinceCheckpoint int64
	// ParentShardIDs are the shards this one was split or merged from; their leases must reach
	// SHARD_END before this shard is processed, so records stay in order across a reshard.
	ParentShardIDs []string
	// ChildShardIDs are the shards that replaced this one, recorded when it reached its end.
	ChildShardIDs []string
	// HashKeyRange is the shard's hash key range; nil when unknown (older tables).
	HashKeyRange *HashKeyRange
	// CheckpointOwner is set only during a graceful handoff (KCL 3.x): the worker still
	// processing the shard and allowed to checkpoint, while Owner already names the next one.
	CheckpointOwner string
	// ThroughputKBps is the shard's recent throughput as the owner measured it (KCL 3.x load
	// balancing input); nil when never reported.
	ThroughputKBps *float64
	// StreamIdentifier ("account:stream:creationEpoch") and ShardID are set in the KCL's
	// multi-stream mode, where Key combines them; both empty for a single-stream lease.
	StreamIdentifier string
	ShardID          string // see StreamIdentifier
}

// HashKeyRange is the range of partition-key hashes a shard serves, as decimal strings (the
// values exceed 64 bits).
type HashKeyRange struct {
	StartingHashKey string // lowest hash served, inclusive
	EndingHashKey   string // highest hash served, inclusive
}

// ActualOwner returns the worker that is processing the lease now: the checkpoint owner while
// a graceful handoff is under way, the owner otherwise. Renewals, checkpoints and eviction are
// conditional on it.
func (l Lease) ActualOwner() string {
	if l.CheckpointOwner != "" {
		return l.CheckpointOwner
	}
	return l.Owner
}

// IsUnassigned reports whether nobody owns the lease, so any worker may take it at once.
func (l Lease) IsUnassigned() bool { return l.Owner == "" && l.CheckpointOwner == "" }

// HandoffRequested reports whether a graceful handoff away from worker was requested: the
// worker should finish its in-flight records, checkpoint, and evict the lease so that the
// next owner (Owner) starts without waiting for the lease to expire.
func (l Lease) HandoffRequested(worker string) bool {
	return l.CheckpointOwner == worker && l.Owner != worker
}

// Clone returns a deep copy of l.
func (l Lease) Clone() Lease {
	c := l
	c.ParentShardIDs = slices.Clone(l.ParentShardIDs)
	c.ChildShardIDs = slices.Clone(l.ChildShardIDs)
	c.PendingCheckpointState = slices.Clone(l.PendingCheckpointState)
	if l.PendingCheckpoint != nil {
		p := *l.PendingCheckpoint
		c.PendingCheckpoint = &p
	}
	if l.HashKeyRange != nil {
		r := *l.HashKeyRange
		c.HashKeyRange = &r
	}
	if l.ThroughputKBps != nil {
		t := *l.ThroughputKBps
		c.ThroughputKBps = &t
	}
	return c
}

// Store keeps a consumer application's leases and checkpoints. All implementations give the
// same guarantees, checked by one conformance suite:
//
//   - Every write that depends on ownership is conditional on the counter (and owner) the
//     caller saw and fails with ErrLeaseLost when either changed, so at most one worker can
//     succeed from a given view of a lease.
//   - A write that asserts ownership increments the counter by one and returns the lease as
//     stored after the write; callers continue from that value.
//   - Refusals are *LeaseError values matching ErrLeaseLost, ErrLeaseExists, ErrLeaseNotFound
//     or ErrInvalidLease; other errors (network, throttling, I/O) are wrapped with %w.
//
// Implementations are safe for concurrent use.
type Store interface {
	// EnsureTable creates the lease table if it does not exist and waits until it can be used.
	EnsureTable(ctx context.Context) error
	// ListLeases returns every lease, in no particular order.
	ListLeases(ctx context.Context) ([]Lease, error)
	// GetLease returns the lease with the given key, or ErrLeaseNotFound.
	GetLease(ctx context.Context, key string) (Lease, error)
	// CreateLeaseIfNotExists stores lease if no lease with its key exists, and returns it as
	// stored; otherwise it fails with ErrLeaseExists. The lease needs a key and a valid
	// checkpoint (a start sentinel for a new shard).
	CreateLeaseIfNotExists(ctx context.Context, lease Lease) (Lease, error)
	// TakeLease makes newOwner the owner, on condition that the counter, owner and checkpoint
	// owner are still those of seen; it increments the counter, clears a handoff in progress,
	// and counts an owner switch when the lease had another owner. It fails with ErrLeaseLost
	// when the lease changed since seen was read.
	TakeLease(ctx context.Context, seen Lease, newOwner string) (Lease, error)
	// RenewLease increments the counter of a lease the caller holds, on condition that the
	// counter and the actual owner are those of held. It also records held.ThroughputKBps when
	// set. The returned lease shows a requested handoff (see Lease.HandoffRequested).
	RenewLease(ctx context.Context, held Lease) (Lease, error)
	// EvictLease gives up a held lease, on the same condition as RenewLease: it removes the
	// owner (or, during a handoff, only the checkpoint owner, so the next owner can start) and
	// increments the counter, so other workers see the change at once.
	EvictLease(ctx context.Context, held Lease) (Lease, error)
	// UpdateCheckpoint records cp as the checkpoint of a held lease, on the same condition as
	// RenewLease: a worker that lost the lease cannot overwrite the new owner's checkpoint. It
	// resets the owner-switch count, clears a pending checkpoint and increments the counter,
	// and records held.ThroughputKBps when set, as RenewLease does, so a checkpoint that stands
	// in for a renewal carries the throughput report too.
	// It does not check that cp is after the stored checkpoint; the Checkpointer does.
	UpdateCheckpoint(ctx context.Context, held Lease, cp ExtendedSequenceNumber) (Lease, error)
	// InitiateHandoff asks the current owner of lease to hand it to nextOwner (KCL 3.x graceful
	// handoff): on condition that the owner is still lease.Owner and no handoff is under way,
	// it sets the checkpoint owner to the current owner and the owner to nextOwner. The counter
	// is left alone so the current owner's renewals and its final checkpoint still succeed.
	InitiateHandoff(ctx context.Context, lease Lease, nextOwner string) (Lease, error)
	// CancelHandoff withdraws a handoff request that its owner did not answer: on condition
	// that the owner is still lease.Owner (the worker that asked) and the checkpoint owner
	// still lease.CheckpointOwner, it makes the checkpoint owner the owner again and clears the
	// checkpoint owner. The counter is left alone: the worker still processing the shard (a KCL
	// 2.x worker, whose renewals are conditional on the counter alone, never answers a
	// request) keeps renewing without noticing.
	CancelHandoff(ctx context.Context, lease Lease) (Lease, error)
	// UpdateChildShards records the child shards of a shard that reached its end. It needs the
	// lease to exist but not to be held, and leaves the counter alone.
	UpdateChildShards(ctx context.Context, key string, childShardIDs []string) (Lease, error)
	// UpdateHashKeyRange records a shard's hash key range, like UpdateChildShards.
	UpdateHashKeyRange(ctx context.Context, key string, r HashKeyRange) (Lease, error)
	// DeleteLease removes a lease on condition that its counter is still lease.Counter; the
	// consumer deletes the lease of a shard processed to SHARD_END once its children started.
	DeleteLease(ctx context.Context, lease Lease) error
}

// Operation names used in errors, logs and statistics.
const (
	OpEnsureTable        = "EnsureTable"
	OpListLeases         = "ListLeases"
	OpGetLease           = "GetLease"
	OpCreateLease        = "CreateLeaseIfNotExists"
	OpTakeLease          = "TakeLease"
	OpRenewLease         = "RenewLease"
	OpEvictLease         = "EvictLease"
	OpUpdateCheckpoint   = "UpdateCheckpoint"
	OpInitiateHandoff    = "InitiateHandoff"
	OpCancelHandoff      = "CancelHandoff"
	OpUpdateChildShards  = "UpdateChildShards"
	OpUpdateHashKeyRange = "UpdateHashKeyRange"
	OpDeleteLease        = "DeleteLease"
	// OpListLeaseKeysForOwner is DynamoDBStore.ListLeaseKeysForOwner.
	OpListLeaseKeysForOwner = "ListLeaseKeysForOwner"
)

// validateNewLease checks what every store needs from a lease before creating it.
func validateNewLease(l Lease) error {
	if l.Key == "" {
		return invalid(OpCreateLease, l.Key, "empty lease key")
	}
	if err := l.Checkpoint.Validate(); err != nil {
		return &LeaseError{Op: OpCreateLease, Key: l.Key, Err: ErrInvalidLease, Detail: "checkpoint", Cause: err}
	}
	if l.PendingCheckpoint != nil {
		if err := l.PendingCheckpoint.Validate(); err != nil {
			return &LeaseError{Op: OpCreateLease, Key: l.Key, Err: ErrInvalidLease, Detail: "pending checkpoint", Cause: err}
		}
	}
	if l.Counter < 0 || l.OwnerSwitchesSinceCheckpoint < 0 {
		return invalid(OpCreateLease, l.Key, "negative counter")
	}
	if l.CheckpointOwner != "" && l.Owner == "" {
		return invalid(OpCreateLease, l.Key, "checkpoint owner without owner")
	}
	if slices.Contains(l.ParentShardIDs, "") || slices.Contains(l.ChildShardIDs, "") {
		return invalid(OpCreateLease, l.Key, "empty shard ID")
	}
	return validateRange(OpCreateLease, l.Key, l.HashKeyRange)
}

func validateRange(op, key string, r *HashKeyRange) error {
	if r == nil {
		return nil
	}
	if !isDigits(r.StartingHashKey) || !isDigits(r.EndingHashKey) {
		return invalid(op, key, "hash key range %q..%q is not decimal", r.StartingHashKey, r.EndingHashKey)
	}
	return nil
}

// validateHeld checks a lease the caller claims to hold.
func validateHeld(op string, held Lease) error {
	if held.Key == "" {
		return invalid(op, held.Key, "empty lease key")
	}
	if held.ActualOwner() == "" {
		return invalid(op, held.Key, "lease has no owner, so nobody holds it")
	}
	return nil
}

func validateTake(seen Lease, newOwner string) error {
	if seen.Key == "" {
		return invalid(OpTakeLease, seen.Key, "empty lease key")
	}
	if newOwner == "" {
		return invalid(OpTakeLease, seen.Key, "empty new owner")
	}
	return nil
}

func validateHandoff(l Lease, next string) error {
	switch {
	case l.Key == "":
		return invalid(OpInitiateHandoff, l.Key, "empty lease key")
	case l.Owner == "":
		return invalid(OpInitiateHandoff, l.Key, "lease has no owner to hand off from")
	case next == "" || next == l.Owner:
		return invalid(OpInitiateHandoff, l.Key, "next owner %q must differ from the owner", next)
	case l.CheckpointOwner != "":
		return invalid(OpInitiateHandoff, l.Key, "a handoff to %q is already under way", l.Owner)
	}
	return nil
}

func validateCancelHandoff(l Lease) error {
	switch {
	case l.Key == "":
		return invalid(OpCancelHandoff, l.Key, "empty lease key")
	case l.Owner == "" || l.CheckpointOwner == "" || l.Owner == l.CheckpointOwner:
		return invalid(OpCancelHandoff, l.Key, "no handoff under way")
	}
	return nil
}

// shardSet returns ids sorted and without duplicates, nil when empty: the DynamoDB schema keeps
// them in a string set, which has neither order nor duplicates, so every store returns them in
// this one form.
func shardSet(ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}
