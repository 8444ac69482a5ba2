package checkpoint

import "context"

// MemoryStore keeps leases in process memory. It follows the same conditional rules as the
// DynamoDB store, so it suits tests and single-process consumers that may lose their
// checkpoints on exit. Safe for concurrent use; the zero value is not usable, call
// NewMemoryStore.
type MemoryStore struct {
	core *localCore
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{core: newLocalCore(nil, nil)}
}

// EnsureTable does nothing: the store always exists.
func (s *MemoryStore) EnsureTable(ctx context.Context) error { return s.core.check(ctx) }

// ListLeases returns every lease, sorted by key.
func (s *MemoryStore) ListLeases(ctx context.Context) ([]Lease, error) { return s.core.list(ctx) }

// GetLease returns the lease with the given key, or ErrLeaseNotFound.
func (s *MemoryStore) GetLease(ctx context.Context, key string) (Lease, error) {
	return s.core.get(ctx, key)
}

// CreateLeaseIfNotExists implements Store.
func (s *MemoryStore) CreateLeaseIfNotExists(ctx context.Context, lease Lease) (Lease, error) {
	return s.core.create(ctx, lease)
}

// TakeLease implements Store.
func (s *MemoryStore) TakeLease(ctx context.Context, seen Lease, newOwner string) (Lease, error) {
	return s.core.take(ctx, seen, newOwner)
}

// RenewLease implements Store.
func (s *MemoryStore) RenewLease(ctx context.Context, held Lease) (Lease, error) {
	return s.core.renew(ctx, held)
}

// EvictLease implements Store.
func (s *MemoryStore) EvictLease(ctx context.Context, held Lease) (Lease, error) {
	return s.core.evict(ctx, held)
}

// UpdateCheckpoint implements Store.
func (s *MemoryStore) UpdateCheckpoint(ctx context.Context, held Lease, cp ExtendedSequenceNumber) (Lease, error) {
	return s.core.updateCheckpoint(ctx, held, cp)
}

// InitiateHandoff implements Store.
func (s *MemoryStore) InitiateHandoff(ctx context.Context, lease Lease, nextOwner string) (Lease, error) {
	return s.core.handoff(ctx, lease, nextOwner)
}

// CancelHandoff implements Store.
func (s *MemoryStore) CancelHandoff(ctx context.Context, lease Lease) (Lease, error) {
	return s.core.cancelHandoff(ctx, lease)
}

// UpdateChildShards implements Store.
func (s *MemoryStore) UpdateChildShards(ctx context.Context, key string, childShardIDs []string) (Lease, error) {
	return s.core.childShards(ctx, key, childShardIDs)
}

// UpdateHashKeyRange implements Store.
func (s *MemoryStore) UpdateHashKeyRange(ctx context.Context, key string, r HashKeyRange) (Lease, error) {
	return s.core.hashKeyRange(ctx, key, r)
}

// DeleteLease implements Store.
func (s *MemoryStore) DeleteLease(ctx context.Context, lease Lease) error {
	return s.core.delete(ctx, lease)
}
