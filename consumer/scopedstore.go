package consumer

import (
	"context"
	"errors"
	"strings"

	"github.com/shardline/shardline/checkpoint"
)

// scopedStore shows one stream's leases of a multi-stream lease table as a single-stream table:
// the KCL's MultiStreamLease keys a lease "account:stream:creationEpoch:shardId" and writes
// the stream identifier and the shard ID to the streamName and shardId attributes
// (DynamoDBMultiStreamLeaseSerializer), while parentShardId and childShardIds hold bare shard
// IDs. The store strips the prefix from every lease it returns and adds it to every key it is
// given, so a Worker for one stream keeps working with shard IDs, and writes leases a KCL
// multi-stream application reads as its own.
type scopedStore struct {
	inner    checkpoint.Store
	streamID string // serialized StreamIdentifier, account:stream:creationEpoch
	prefix   string // streamID + ":"
}

var _ checkpoint.Store = (*scopedStore)(nil)

func newScopedStore(inner checkpoint.Store, streamID string) *scopedStore {
	return &scopedStore{inner: inner, streamID: streamID, prefix: streamID + ":"}
}

// mine reports whether a lease of the whole table belongs to this store's stream.
func (s *scopedStore) mine(l *checkpoint.Lease) bool {
	if l.StreamIdentifier != "" {
		return l.StreamIdentifier == s.streamID
	}
	return strings.HasPrefix(l.Key, s.prefix)
}

// out turns a lease of the table into the stream's view of it.
func (s *scopedStore) out(l checkpoint.Lease) checkpoint.Lease {
	if l.ShardID != "" {
		l.Key = l.ShardID
	} else {
		l.Key = strings.TrimPrefix(l.Key, s.prefix)
	}
	l.StreamIdentifier, l.ShardID = "", ""
	return l
}

// in turns the stream's view of a lease into the table's.
func (s *scopedStore) in(l checkpoint.Lease) checkpoint.Lease {
	l.ShardID = l.Key
	l.StreamIdentifier = s.streamID
	l.Key = s.prefix + l.Key
	return l
}

// result maps a lease and error returned by the inner store, including the lease a refusal
// carries.
func (s *scopedStore) result(l checkpoint.Lease, err error) (checkpoint.Lease, error) {
	if err != nil {
		var le *checkpoint.LeaseError
		if errors.As(err, &le) && le.Current != nil {
			c := s.out(*le.Current)
			cp := *le
			cp.Current = &c
			cp.Key = c.Key
			return checkpoint.Lease{}, &cp
		}
		return checkpoint.Lease{}, err
	}
	return s.out(l), nil
}

func (s *scopedStore) EnsureTable(ctx context.Context) error { return s.inner.EnsureTable(ctx) }

func (s *scopedStore) ListLeases(ctx context.Context) ([]checkpoint.Lease, error) {
	all, err := s.inner.ListLeases(ctx)
	if err != nil {
		return nil, err
	}
	var out []checkpoint.Lease
	for i := range all {
		if s.mine(&all[i]) {
			out = append(out, s.out(all[i]))
		}
	}
	return out, nil
}

func (s *scopedStore) GetLease(ctx context.Context, key string) (checkpoint.Lease, error) {
	return s.result(s.inner.GetLease(ctx, s.prefix+key))
}

func (s *scopedStore) CreateLeaseIfNotExists(ctx context.Context, l checkpoint.Lease) (checkpoint.Lease, error) {
	return s.result(s.inner.CreateLeaseIfNotExists(ctx, s.in(l)))
}

func (s *scopedStore) TakeLease(ctx context.Context, seen checkpoint.Lease, owner string) (checkpoint.Lease, error) {
	return s.result(s.inner.TakeLease(ctx, s.in(seen), owner))
}

func (s *scopedStore) RenewLease(ctx context.Context, held checkpoint.Lease) (checkpoint.Lease, error) {
	return s.result(s.inner.RenewLease(ctx, s.in(held)))
}

func (s *scopedStore) EvictLease(ctx context.Context, held checkpoint.Lease) (checkpoint.Lease, error) {
	return s.result(s.inner.EvictLease(ctx, s.in(held)))
}

func (s *scopedStore) UpdateCheckpoint(ctx context.Context, held checkpoint.Lease, cp checkpoint.ExtendedSequenceNumber) (checkpoint.Lease, error) {
	return s.result(s.inner.UpdateCheckpoint(ctx, s.in(held), cp))
}

func (s *scopedStore) InitiateHandoff(ctx context.Context, l checkpoint.Lease, next string) (checkpoint.Lease, error) {
	return s.result(s.inner.InitiateHandoff(ctx, s.in(l), next))
}

func (s *scopedStore) CancelHandoff(ctx context.Context, l checkpoint.Lease) (checkpoint.Lease, error) {
	return s.result(s.inner.CancelHandoff(ctx, s.in(l)))
}

func (s *scopedStore) UpdateChildShards(ctx context.Context, key string, ids []string) (checkpoint.Lease, error) {
	return s.result(s.inner.UpdateChildShards(ctx, s.prefix+key, ids))
}

func (s *scopedStore) UpdateHashKeyRange(ctx context.Context, key string, r checkpoint.HashKeyRange) (checkpoint.Lease, error) {
	return s.result(s.inner.UpdateHashKeyRange(ctx, s.prefix+key, r))
}

func (s *scopedStore) DeleteLease(ctx context.Context, l checkpoint.Lease) error {
	return s.inner.DeleteLease(ctx, s.in(l))
}
