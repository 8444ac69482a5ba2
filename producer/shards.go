package producer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/cenkalti/backoff/v4"
	"github.com/shardline/shardline/aggregation"
)

// table is an immutable shard map: the open shards, sorted by starting hash key, for
// routing, and every shard ListShards returned, open or closed, for checking where a record
// really landed.
type table struct {
	shards []*shard
	known  map[string]aggregation.ShardRange
}

// lookup returns the open shard whose range holds k, or nil when none does (no map yet, or
// a gap while the stream is resharded).
func (t *table) lookup(k aggregation.HashKey) *shard {
	s := t.shards
	lo, hi := 0, len(s)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s[m].rng.Start.Cmp(k) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return nil
	}
	sh := s[lo-1]
	if k.Cmp(sh.rng.End) > 0 {
		return nil
	}
	return sh
}

// Minimum spacing of shard map refreshes. A refresh that changes nothing, or fails, doubles
// the spacing up to refreshMaxInterval, so that a storm of misrouted results (or a broken
// ListShards permission) does not hammer ListShards; one that finds a change resets it.
const (
	refreshMinInterval = 100 * time.Millisecond
	refreshMaxInterval = 30 * time.Second
	// misrouteRefreshDelay bounds the spacing when a PutRecords result showed the map stale.
	misrouteRefreshDelay = time.Second
)

// refreshLoop reloads the shard map when asked: at start, when a record finds no shard, and
// when PutRecords reports a shard other than the predicted one.
func (p *Producer) refreshLoop() {
	defer p.wg.Done()
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(refreshMinInterval),
		backoff.WithMaxInterval(refreshMaxInterval),
		backoff.WithMaxElapsedTime(0),
	)
	// Failed refreshes back off separately and no further than RetryMaxDelay: while the map
	// cannot be loaded, records wait unrouted, and after an outage they must not sit out a
	// long "nothing changed" backoff once ListShards answers again.
	errBo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(refreshMinInterval),
		backoff.WithMaxInterval(max(p.cfg.RetryMaxDelay, refreshMinInterval)),
		backoff.WithMaxElapsedTime(0),
	)
	var last time.Time
	wait := time.Duration(0)
	for {
		select {
		case <-p.refreshReq:
		case <-p.stop:
			return
		}
		w := wait
		if p.misrouted.Load() {
			// A result landed off its predicted shard: the map is stale for sure, and
			// records wait for the new one. Hold back no longer than misrouteRefreshDelay.
			w = min(w, misrouteRefreshDelay)
		}
		if d := time.Until(last.Add(w)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-p.stop:
				t.Stop()
				return
			}
		}
		// Requests that arrived while waiting are served by this refresh.
		select {
		case <-p.refreshReq:
		default:
		}
		p.misrouted.Store(false)
		changed, err := p.refresh()
		last = time.Now()
		switch {
		case err != nil:
			wait = errBo.NextBackOff()
			cls, _ := classifyError(err)
			p.log.Warn("shard map refresh failed", "error", err, "retry_in", wait)
			p.routeErr.Store(&err)
			if cls == classFatal {
				p.failUnrouted(err)
			}
			p.requestRefresh() // try again after the backoff
		case changed:
			bo.Reset()
			errBo.Reset()
			wait = refreshMinInterval
		default:
			errBo.Reset()
			wait = bo.NextBackOff()
		}
		p.processParked(err == nil)
		if err == nil && p.hasUnrouted() {
			p.requestRefresh() // a gap in the map: look again after the backoff
		}
	}
}

func (p *Producer) hasUnrouted() bool {
	p.unrouted.mu.Lock()
	defer p.unrouted.mu.Unlock()
	return len(p.unrouted.held) > 0
}

// failUnrouted fails the records waiting for a shard map when ListShards fails for good.
func (p *Producer) failUnrouted(err error) {
	p.unrouted.mu.Lock()
	held := p.unrouted.held
	p.unrouted.held = nil
	p.unrouted.mu.Unlock()
	if len(held) > 0 {
		_, code := classifyError(err)
		p.failUsers(held, &PutError{Code: code, Err: fmt.Errorf("producer: no shard map: %w", err)})
	}
}

// listShards lists every shard of the stream, following NextToken.
func (p *Producer) listShards(ctx context.Context) ([]types.Shard, error) {
	first := &kinesis.ListShardsInput{}
	if p.cfg.StreamName != "" {
		first.StreamName = aws.String(p.cfg.StreamName)
	}
	if p.cfg.StreamARN != "" {
		first.StreamARN = aws.String(p.cfg.StreamARN)
	}
	var all []types.Shard
	in := first
	for restarts := 0; ; {
		out, err := p.client.ListShards(ctx, in)
		if err != nil {
			var expired *types.ExpiredNextTokenException
			if errors.As(err, &expired) && restarts < 3 {
				restarts++
				all, in = all[:0], first
				continue
			}
			return nil, fmt.Errorf("producer: ListShards: %w", err)
		}
		all = append(all, out.Shards...)
		if out.NextToken == nil || *out.NextToken == "" {
			return all, nil
		}
		// With a token, the stream must not be named again.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// refresh loads the shard map and installs it. Records queued for shards that closed are
// re-routed under the new map before any later record can reach the new shards, which keeps
// each key's records in order across a reshard. It reports whether the open shards changed.
func (p *Producer) refresh() (bool, error) {
	ctx, cancel := context.WithTimeout(p.callCtx, p.cfg.RequestTimeout)
	defer cancel()
	p.learnRecordSize(ctx)
	listed, err := p.listShards(ctx)
	if err != nil {
		return false, err
	}
	known := make(map[string]aggregation.ShardRange, len(listed))
	var open []aggregation.ShardRange
	for _, s := range listed {
		if s.ShardId == nil || s.HashKeyRange == nil {
			continue
		}
		start, err1 := aggregation.ParseHashKey(aws.ToString(s.HashKeyRange.StartingHashKey))
		end, err2 := aggregation.ParseHashKey(aws.ToString(s.HashKeyRange.EndingHashKey))
		if err := errors.Join(err1, err2); err != nil {
			return false, fmt.Errorf("producer: shard %s: %w", *s.ShardId, err)
		}
		r := aggregation.ShardRange{ShardID: *s.ShardId, Start: start, End: end}
		known[r.ShardID] = r
		// Open shards have no ending sequence number.
		if s.SequenceNumberRange == nil || s.SequenceNumberRange.EndingSequenceNumber == nil {
			open = append(open, r)
		}
	}
	if _, err := aggregation.NewShardMap(open); err != nil {
		// Overlapping open shards: a listing caught mid-reshard. Try again later.
		return false, fmt.Errorf("producer: inconsistent shard listing: %w", err)
	}
	slices.SortFunc(open, func(a, b aggregation.ShardRange) int { return a.Start.Cmp(b.Start) })

	old := p.table.Load()
	byID := make(map[string]*shard, len(old.shards))
	for _, sh := range old.shards {
		byID[sh.id] = sh
	}
	nt := &table{known: known, shards: make([]*shard, 0, len(open))}
	changed := len(open) != len(old.shards)
	now := p.now()
	for _, r := range open {
		sh := byID[r.ShardID]
		if sh == nil {
			sh = p.newShard(r, now)
			changed = true
		} else {
			delete(byID, r.ShardID)
		}
		nt.shards = append(nt.shards, sh)
	}
	p.m.refreshes.Add(1)
	p.stats.refreshes.Add(1)
	if !changed && !p.hasUnrouted() {
		p.table.Store(nt) // same shards; newer knowledge of closed ones
		return false, nil
	}
	retired := make([]*shard, 0, len(byID))
	for _, sh := range old.shards {
		if byID[sh.id] != nil {
			retired = append(retired, sh)
		}
	}
	// Even an unchanged map is installed when records wait unrouted: they may have been
	// set aside by a misrouted result, and routing them again is what they wait for.
	p.install(nt, retired)
	switch {
	case changed && len(old.shards) == 0:
		p.log.Debug("shard map loaded", "open_shards", len(nt.shards))
	case changed:
		p.log.Info("shard map changed", "open_shards", len(nt.shards), "retired", len(retired))
	}
	return changed, nil
}

func (p *Producer) newShard(r aggregation.ShardRange, now int64) *shard {
	return &shard{
		id:  r.ShardID,
		rng: r,
		bo: backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(p.cfg.RetryBaseDelay),
			backoff.WithMaxInterval(p.cfg.RetryMaxDelay),
			backoff.WithMaxElapsedTime(0),
		),
		lim: newLimiter(p.cfg.RateLimit, !p.cfg.DisableAdaptiveRate, now),
		m:   p.m.shard(r.ShardID),
	}
}

// install swaps in a new table, moving the records of retired shards and of the unrouted
// area to the shards the new table gives them.
func (p *Producer) install(nt *table, retired []*shard) {
	// Holding the retired shards' locks (and the unrouted area's) keeps puts out of them
	// until the table is swapped; puts that then get a lock see retired (or a new table)
	// and route again, behind the moved records.
	for _, sh := range retired {
		sh.mu.Lock()
	}
	p.unrouted.mu.Lock()

	var moved []pending
	var toFree []*kRecord
	p.mu.Lock()
	inheritBlockers(nt, retired)
	for _, sh := range retired {
		sh.retired = true
		for _, kr := range sh.ready.takeAll() {
			p.readyCount--
			moved = append(moved, kr.users...)
			for i := range kr.users {
				moved[len(moved)-len(kr.users)+i].tries += kr.attempts
			}
			if kr.encoded {
				p.readyBytes -= kr.size
				toFree = append(toFree, kr)
			} else {
				kr.dropped = true // its encoder frees it
			}
		}
		if sh.inReady {
			sh.inReady = false
			p.readyShards = slices.DeleteFunc(p.readyShards, func(s *shard) bool { return s == sh })
		}
	}
	p.mu.Unlock()
	for _, sh := range retired {
		if kr := sh.open; kr != nil {
			sh.open = nil
			moved = append(moved, kr.users...)
			toFree = append(toFree, kr)
		}
	}
	moved = append(moved, p.unrouted.held...)
	p.unrouted.held = p.unrouted.held[:0]

	var sealed []*kRecord
	for i := range moved {
		u := &moved[i]
		sh := nt.lookup(u.hash)
		if sh == nil {
			p.unrouted.held = append(p.unrouted.held, *u)
			continue
		}
		sh.mu.Lock()
		s1, s2, _ := p.addLocked(sh, u)
		sh.mu.Unlock()
		for _, s := range []*kRecord{s1, s2} {
			if s != nil {
				sealed = append(sealed, s)
			}
		}
	}
	p.table.Store(nt)
	p.unrouted.mu.Unlock()
	for _, sh := range retired {
		sh.mu.Unlock()
	}
	// The moved records' data still belongs to the producer (callbacks have not run), so the
	// old kRecords can go only now that the records were copied into new aggregates.
	for _, kr := range toFree {
		p.putKR(kr)
	}
	for _, kr := range sealed {
		p.finishSeal(kr)
	}
	p.signal()
}
