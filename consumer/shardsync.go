package consumer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/cenkalti/backoff/v4"

	"github.com/shardline/shardline/checkpoint"
)

// shardSyncer keeps the lease table in step with the stream's shards: it lists the shards
// (ListShards, every page) at start, every ShardSyncInterval and when a shard ends, creates a
// lease for each shard that needs one, with its parents and hash key range, and deletes the
// leases of shards processed to SHARD_END once their children have started and
// LeaseCleanupDelay passed. Every worker runs one; creating a lease is conditional, so
// workers syncing at once create each lease once.
type shardSyncer struct {
	w       *Worker
	trigger chan struct{}

	lastSync time.Time // when the last sync that listed leases ended, for Worker.recentScan

	mu         sync.Mutex
	eligible   map[string]time.Time // finished leases ready for deletion, since when
	unreadable map[string]string    // lease keys whose items cannot be read, with the reason
}

func newShardSyncer(w *Worker) *shardSyncer {
	return &shardSyncer{
		w:          w,
		trigger:    make(chan struct{}, 1),
		eligible:   map[string]time.Time{},
		unreadable: map[string]string{},
	}
}

// requestSync asks for a sync soon, without waiting for it.
func (s *shardSyncer) requestSync() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// run syncs every ShardSyncInterval and on request until ctx ends. Failures are retried with
// backoff; a stream that no longer exists is reported to the worker.
func (s *shardSyncer) run(ctx context.Context) {
	cfg := &s.w.cfg
	t := time.NewTimer(cfg.ShardSyncInterval)
	defer t.Stop()
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(time.Second),
		backoff.WithMaxInterval(cfg.ShardSyncInterval),
		backoff.WithMaxElapsedTime(0))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.trigger:
			t.Stop()
		}
		next := cfg.ShardSyncInterval
		if err := s.sync(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, ErrStreamNotFound) {
				s.w.reportFatal(err)
			}
			s.w.checkTableGone(err)
			next = bo.NextBackOff()
			s.w.log.Warn("consumer: shard sync failed", "error", err, "retry_in", next)
		} else {
			bo.Reset()
		}
		t.Reset(next)
	}
}

// sync lists shards and leases once, creates the missing leases and cleans up finished ones.
func (s *shardSyncer) sync(ctx context.Context) error {
	w := s.w
	shards, err := listStreamShards(ctx, w.cfg.Kinesis, w.cfg.stream(), w.cfg.kinesisCallTimeout())
	if err != nil {
		return err
	}
	leases, ok := w.recentScan(s.lastSync)
	if !ok {
		lctx, cancel := context.WithTimeout(ctx, max(w.cfg.kinesisCallTimeout(), w.cfg.TakeInterval*2))
		leases, err = w.listLeases(lctx)
		cancel()
		if err != nil {
			return fmt.Errorf("consumer: listing leases: %w", err)
		}
	}
	defer func() { s.lastSync = time.Now() }()
	w.stats.shardSyncs.Add(1)
	for _, l := range planNewLeases(shards, leases, w.cfg.InitialPosition) {
		s.create(ctx, l)
	}
	// Leases from before the hash key range was recorded get it now: the decoder needs it
	// to drop records written under an older shard map.
	ranges := map[string]*types.HashKeyRange{}
	for i := range shards {
		ranges[deref(shards[i].ShardId)] = shards[i].HashKeyRange
	}
	for _, l := range leases {
		if r := ranges[l.Key]; l.HashKeyRange == nil && r != nil {
			uctx, cancel := context.WithTimeout(ctx, w.cfg.RenewInterval)
			_, _ = w.store.UpdateHashKeyRange(uctx, l.Key, checkpoint.HashKeyRange{StartingHashKey: deref(r.StartingHashKey), EndingHashKey: deref(r.EndingHashKey)})
			cancel()
		}
	}
	s.cleanup(ctx, leases, shards, time.Now())
	return nil
}

// create creates one lease; a lease that already exists is fine, unless the table holds an
// item for it that cannot be read, which is reported.
func (s *shardSyncer) create(ctx context.Context, l checkpoint.Lease) {
	w := s.w
	cctx, cancel := context.WithTimeout(ctx, w.cfg.RenewInterval)
	defer cancel()
	_, err := w.store.CreateLeaseIfNotExists(cctx, l)
	switch {
	case err == nil:
		w.log.Debug("consumer: created lease", "lease", l.Key, "checkpoint", l.Checkpoint.String(), "parents", l.ParentShardIDs)
		w.stats.leasesCreated.Add(1)
		s.setUnreadable(l.Key, "")
	case errors.Is(err, checkpoint.ErrLeaseExists):
		// The listing did not show it: either it was created since, or its item is not a
		// readable lease.
		_, gerr := w.store.GetLease(cctx, l.Key)
		if gerr != nil && !errors.Is(gerr, checkpoint.ErrLeaseNotFound) && !isTransient(gerr) && ctx.Err() == nil {
			uerr := fmt.Errorf("%w %q: %w", ErrUnreadableLease, l.Key, gerr)
			if s.setUnreadable(l.Key, gerr.Error()) {
				w.log.Error("consumer: the lease table item of a shard cannot be read; the shard is not processed until the item is fixed or deleted", "lease", l.Key, "error", uerr)
			}
		} else {
			s.setUnreadable(l.Key, "")
		}
	case ctx.Err() == nil:
		w.log.Warn("consumer: creating lease failed", "lease", l.Key, "error", err)
	}
}

// setUnreadable records (reason != "") or clears a lease that cannot be read, and reports
// whether the state changed.
func (s *shardSyncer) setUnreadable(key, reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.unreadable[key]
	if reason == "" {
		delete(s.unreadable, key)
		return had
	}
	s.unreadable[key] = reason
	s.w.m.unreadableLeases.Set(float64(len(s.unreadable)))
	return !had || old != reason
}

func (s *shardSyncer) unreadableLeases() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.unreadable))
	for k, v := range s.unreadable {
		out[k] = v
	}
	return out
}

// createChildLeases creates the leases of the shards that replaced a finished shard, from
// the ChildShards GetRecords returned at its end, and asks for a full sync.
func (s *shardSyncer) createChildLeases(ctx context.Context, children []types.ChildShard) {
	for _, ch := range children {
		l := checkpoint.Lease{Key: deref(ch.ShardId), Checkpoint: checkpoint.TrimHorizon, ParentShardIDs: ch.ParentShards}
		if r := ch.HashKeyRange; r != nil {
			l.HashKeyRange = &checkpoint.HashKeyRange{StartingHashKey: deref(r.StartingHashKey), EndingHashKey: deref(r.EndingHashKey)}
		}
		if l.Key != "" {
			s.create(ctx, l)
		}
	}
	s.requestSync()
}

// cleanup deletes the leases planCleanup finds, once they stayed eligible for
// LeaseCleanupDelay on this worker's clock.
func (s *shardSyncer) cleanup(ctx context.Context, leases []checkpoint.Lease, shards []types.Shard, now time.Time) {
	w := s.w
	ready := planCleanup(leases, shards)
	s.mu.Lock()
	var del []checkpoint.Lease
	keep := map[string]bool{}
	for _, l := range ready {
		keep[l.Key] = true
		since, ok := s.eligible[l.Key]
		if !ok {
			s.eligible[l.Key] = now
			continue
		}
		if now.Sub(since) >= w.cfg.LeaseCleanupDelay {
			del = append(del, l)
		}
	}
	for k := range s.eligible {
		if !keep[k] {
			delete(s.eligible, k)
		}
	}
	s.mu.Unlock()
	for _, l := range del {
		dctx, cancel := context.WithTimeout(ctx, w.cfg.RenewInterval)
		err := w.store.DeleteLease(dctx, l)
		cancel()
		switch {
		case err == nil:
			w.log.Debug("consumer: deleted the lease of a finished shard", "lease", l.Key, "children", l.ChildShardIDs)
			w.stats.leasesDeleted.Add(1)
			s.mu.Lock()
			delete(s.eligible, l.Key)
			s.mu.Unlock()
		case errors.Is(err, checkpoint.ErrLeaseLost), errors.Is(err, checkpoint.ErrLeaseNotFound):
		default:
			w.log.Warn("consumer: deleting a finished lease failed", "lease", l.Key, "error", err)
		}
	}
}

// listShards returns every shard of the named stream, open and closed, following NextToken.
func listShards(ctx context.Context, client KinesisAPI, stream string, callLimit time.Duration) ([]types.Shard, error) {
	return listStreamShards(ctx, client, streamRef{name: stream}, callLimit)
}

// listStreamShards is listShards for a stream named by name or ARN.
func listStreamShards(ctx context.Context, client KinesisAPI, stream streamRef, callLimit time.Duration) ([]types.Shard, error) {
	var shards []types.Shard
	in := &kinesis.ListShardsInput{}
	in.StreamName, in.StreamARN = stream.input()
	for {
		cctx, cancel := context.WithTimeout(ctx, callLimit)
		out, err := client.ListShards(cctx, in)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("consumer: ListShards %s: %w", stream, classifyKinesisError(err))
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil || *out.NextToken == "" {
			return shards, nil
		}
		// With a NextToken the stream name and ARN must be left out.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

func shardParents(s *types.Shard) []string {
	var ps []string
	for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
		if p != nil && *p != "" {
			ps = append(ps, *p)
		}
	}
	return ps
}

func isClosed(s *types.Shard) bool {
	return s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil
}

func isStartSentinel(e checkpoint.ExtendedSequenceNumber) bool {
	return e == checkpoint.TrimHorizon || e == checkpoint.Latest || e == checkpoint.AtTimestamp
}

// planNewLeases returns the leases to create for shards that have none, parents first. The
// rules depend only on the table and the shard list, so every worker reaches the same plan:
//
//   - A shard with a parent that has a lease (or gets one now) starts at TRIM_HORIZON: it is
//     the child of a shard being processed, and all its records must follow the parent's.
//   - Otherwise the shard is a root for this application. With LATEST only open roots get a
//     lease, at LATEST: a closed shard has nothing after its end. With TRIM_HORIZON and
//     AT_TIMESTAMP every root gets one, at that position, closed ones too, so that all
//     retained records are processed in order; except a closed shard with a leased
//     descendant, which was processed and cleaned up already (a parent's lease is deleted
//     only after its children have leases).
func planNewLeases(shards []types.Shard, leases []checkpoint.Lease, pos InitialPosition) []checkpoint.Lease {
	have := make(map[string]bool, len(leases))
	for _, l := range leases {
		have[l.Key] = true
	}
	byID := make(map[string]*types.Shard, len(shards))
	children := map[string][]string{}
	for i := range shards {
		s := &shards[i]
		id := deref(s.ShardId)
		byID[id] = s
		for _, p := range shardParents(s) {
			children[p] = append(children[p], id)
		}
	}
	var leasedDescendant func(id string, depth int) bool
	leasedDescendant = func(id string, depth int) bool {
		if depth > len(shards) {
			return false
		}
		for _, c := range children[id] {
			if have[c] || leasedDescendant(c, depth+1) {
				return true
			}
		}
		return false
	}

	// Parents before children: a shard is visited after every listed parent.
	var order []*types.Shard
	visited := map[string]bool{}
	var visit func(s *types.Shard)
	visit = func(s *types.Shard) {
		id := deref(s.ShardId)
		if visited[id] {
			return
		}
		visited[id] = true
		for _, p := range shardParents(s) {
			if ps, ok := byID[p]; ok {
				visit(ps)
			}
		}
		order = append(order, s)
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		visit(byID[id])
	}

	leased := make(map[string]bool, len(have))
	for k := range have {
		leased[k] = true
	}
	var out []checkpoint.Lease
	for _, s := range order {
		id := deref(s.ShardId)
		if id == "" || have[id] {
			continue
		}
		parents := shardParents(s)
		parentLeased := false
		for _, p := range parents {
			parentLeased = parentLeased || leased[p]
		}
		var cp checkpoint.ExtendedSequenceNumber
		switch {
		case parentLeased:
			cp = checkpoint.TrimHorizon
		case pos == Latest:
			if isClosed(s) {
				continue
			}
			cp = checkpoint.Latest
		default:
			if isClosed(s) && leasedDescendant(id, 0) {
				continue
			}
			cp = pos.sentinel()
		}
		l := checkpoint.Lease{Key: id, Checkpoint: cp, ParentShardIDs: parents}
		if r := s.HashKeyRange; r != nil && r.StartingHashKey != nil && r.EndingHashKey != nil {
			l.HashKeyRange = &checkpoint.HashKeyRange{StartingHashKey: *r.StartingHashKey, EndingHashKey: *r.EndingHashKey}
		}
		out = append(out, l)
		leased[id] = true
	}
	return out
}

// planCleanup returns the leases of finished shards that can be deleted: processed to
// SHARD_END, with no parent lease left (lineages are deleted from the top, so a child's
// lease never disappears while its parent's is still there to be judged), and either every
// child has a lease that started (its checkpoint is past the start position), or the shard
// is no longer listed (past the stream's retention) and has no known children.
func planCleanup(leases []checkpoint.Lease, shards []types.Shard) []checkpoint.Lease {
	byKey := make(map[string]*checkpoint.Lease, len(leases))
	for i := range leases {
		byKey[leases[i].Key] = &leases[i]
	}
	listed := map[string]bool{}
	children := map[string][]string{}
	for i := range shards {
		id := deref(shards[i].ShardId)
		listed[id] = true
		for _, p := range shardParents(&shards[i]) {
			children[p] = append(children[p], id)
		}
	}
	var out []checkpoint.Lease
	for _, l := range leases {
		if !l.Checkpoint.IsShardEnd() {
			continue
		}
		parentLeft := false
		for _, p := range l.ParentShardIDs {
			if _, ok := byKey[p]; ok {
				parentLeft = true
			}
		}
		if parentLeft {
			continue
		}
		kids := slices.Clone(l.ChildShardIDs)
		kids = append(kids, children[l.Key]...)
		slices.Sort(kids)
		kids = slices.Compact(kids)
		if len(kids) == 0 {
			if len(shards) > 0 && !listed[l.Key] {
				out = append(out, l)
			}
			continue
		}
		started := true
		for _, k := range kids {
			cl, ok := byKey[k]
			if !ok || isStartSentinel(cl.Checkpoint) {
				started = false
				break
			}
		}
		if started {
			out = append(out, l)
		}
	}
	return out
}

// isTransient reports errors of the request rather than of the item: network failures,
// service errors and timeouts.
func isTransient(err error) bool {
	var ae smithy.APIError
	var ne net.Error
	var oe *smithy.OperationError
	return errors.As(err, &ae) || errors.As(err, &ne) || errors.As(err, &oe) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
