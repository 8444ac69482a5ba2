package producer

import (
	"errors"

	"github.com/shardline/shardline/aggregation"
)

// errWrongShard is the last cause of records that expired while being written again
// because their aggregate landed on a shard whose range does not hold all of them.
var errWrongShard = &PutError{Code: "WrongShard", Message: "the aggregate landed on a shard whose range does not hold all its user records", Retryable: true}

// visible reports whether a Kinesis record that PutRecords put on shardID, rather than on
// the predicted shard, reaches a Java KCL application. The KCL passes a plain record on
// whatever its hash key, but drops an aggregate whole as soon as one of its user records lies
// outside the shard's hash key range (software.amazon.kinesis.retrieval.AggregatorUtil.deaggregate
// in awslabs/amazon-kinesis-client); an aggregate is therefore delivered only when the range
// of the shard it landed on holds every one of its records. The KPL before version 0.15.11
// (aws/kinesis/core/retrier.cc) likewise wrote every record that landed on a wrong shard again.
func (p *Producer) visible(kr *kRecord, shardID string, t *table) bool {
	if !kr.aggregated {
		return true
	}
	r, ok := t.known[shardID]
	return ok && r.Contains(kr.lo) && r.Contains(kr.hi)
}

// resendGroup is what one request brought back for one shard that must be written again:
// aggregates that landed where a KCL reader would drop them, and retryable failures of a
// shard retired meanwhile. Until the group is resolved the shard counts the request as in
// flight, which holds back the shard and every shard that took over its range (waitFor), so
// the group's records are queued again ahead of any later record of their keys.
type resendGroup struct {
	sh      *shard
	entries []resendEntry
}

type resendEntry struct {
	kr           *kRecord
	shardID, seq string // where it landed; empty when it failed
	split        bool   // refused as a whole: its user records go one per request
}

// resendGroups builds the groups of a handled request, one per shard in b.held, with the
// shard's records in request order.
func (p *Producer) resendGroups(b *batch) []*resendGroup {
	groups := make([]*resendGroup, len(b.held))
	for i, sh := range b.held {
		groups[i] = &resendGroup{sh: sh}
	}
	for i, kr := range b.krs {
		r := &b.res[i]
		if r.action != actResend {
			continue
		}
		for _, g := range groups {
			if g.sh == kr.sh {
				g.entries = append(g.entries, resendEntry{kr: kr, shardID: r.shardID, seq: r.seq, split: r.split})
				break
			}
		}
	}
	return groups
}

// resolve writes a group's records again at once when its shard is already retired (the
// map that replaced it is installed) and otherwise parks the group until the next refresh,
// which the misrouted answer requested.
func (p *Producer) resolve(g *resendGroup) {
	p.mu.Lock()
	now := g.sh.retired
	p.mu.Unlock()
	if now || len(g.entries) == 0 || g.entries[0].split || p.aborted.Load() {
		p.settleGroup(g)
		return
	}
	p.parkMu.Lock()
	p.parked = append(p.parked, g)
	p.parkMu.Unlock()
	p.requestRefresh()
}

// settleGroup decides the group's records against the current map: an aggregate that landed
// on a shard now known to hold all its records is delivered; the others' records go to the
// front of the queues of the shards the map gives them. Then the group's shard lets go of
// the request.
func (p *Producer) settleGroup(g *resendGroup) {
	t := p.table.Load()
	var again []pending
	var done []*kRecord
	alone := false
	for _, e := range g.entries {
		alone = alone || e.split
		kr := e.kr
		if e.shardID != "" && p.visible(kr, e.shardID, t) {
			p.complete(kr, e.shardID, e.seq)
			continue
		}
		for i := range kr.users {
			v := kr.users[i]
			v.tries += kr.attempts
			again = append(again, v)
		}
		done = append(done, kr)
	}
	if len(again) > 0 {
		if p.aborted.Load() {
			p.failUsers(again, closedError(p.abortCause()))
		} else {
			p.log.Debug("writing records again after a reshard", "shard", g.sh.id, "records", len(again))
			p.resendFront(again, alone)
		}
	}
	// The records were copied into new Kinesis records (their data still belongs to the
	// producer), so the old ones can go now.
	for _, kr := range done {
		p.putKR(kr)
	}
	p.mu.Lock()
	g.sh.inflight--
	p.mu.Unlock()
	p.signal()
}

// processParked settles parked groups against the current map after a refresh. After a
// failed one they wait for the next, unless the producer is closing; records whose TTL ran
// out meanwhile expire.
func (p *Producer) processParked(refreshed bool) {
	p.parkMu.Lock()
	parked := p.parked
	p.parked = nil
	p.parkMu.Unlock()
	if len(parked) == 0 {
		return
	}
	if refreshed || p.closed.Load() {
		for _, g := range parked {
			p.settleGroup(g)
		}
		return
	}
	now := p.now()
	var kept []*resendGroup
	for _, g := range parked {
		live := g.entries[:0]
		for _, e := range g.entries {
			if e.kr.expires > now {
				live = append(live, e)
				continue
			}
			p.stats.expired.Add(int64(len(e.kr.users)))
			p.m.expired.Add(int64(len(e.kr.users)))
			p.fail(e.kr, p.expiredError(e.kr.attempts, errWrongShard))
			p.putKR(e.kr)
		}
		clear(g.entries[len(live):])
		g.entries = live
		if len(live) == 0 {
			p.settleGroup(g) // lets go of the shard
			continue
		}
		kept = append(kept, g)
	}
	if len(kept) > 0 {
		p.parkMu.Lock()
		p.parked = append(kept, p.parked...)
		p.parkMu.Unlock()
	}
}

// resendFront queues records again, in order, ahead of everything queued for the shards the
// current map gives them, re-aggregated per shard. Records for which the map has no open
// shard wait in the unrouted area, ahead of those already there.
//
// With alone set, every record is sent as a Kinesis record of its own, in a request of its
// own: its aggregate was refused as a whole, and this finds the records at fault.
func (p *Producer) resendFront(us []pending, alone bool) {
	for len(us) > 0 {
		t := p.table.Load()
		var order []*shard
		byShard := map[*shard][]pending{}
		var unrouted []pending
		for _, u := range us {
			sh := t.lookup(u.hash)
			if sh == nil {
				unrouted = append(unrouted, u)
				continue
			}
			if _, ok := byShard[sh]; !ok {
				order = append(order, sh)
			}
			byShard[sh] = append(byShard[sh], u)
		}
		var retry []pending
		for _, sh := range order {
			if !p.pushFront(sh, byShard[sh], alone) {
				retry = append(retry, byShard[sh]...)
			}
		}
		if len(unrouted) > 0 {
			p.unrouted.mu.Lock()
			p.unrouted.held = append(unrouted, p.unrouted.held...)
			p.unrouted.mu.Unlock()
			p.requestRefresh()
			p.signal()
		}
		us = retry
	}
}

// pushFront builds Kinesis records of us for sh and puts them at the front of its queue. It
// reports false, doing nothing, when sh was retired meanwhile: the caller routes again.
func (p *Producer) pushFront(sh *shard, us []pending, alone bool) bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.retired {
		return false
	}
	krs := p.buildResend(sh, us, alone)
	p.mu.Lock()
	for i := len(krs) - 1; i >= 0; i-- {
		kr := krs[i]
		kr.encoded = true
		sh.ready.pushFront(kr)
		p.readyCount++
		p.readyBytes += kr.size
	}
	if !sh.inReady {
		sh.inReady = true
		p.readyShards = append(p.readyShards, sh)
	}
	p.mu.Unlock()
	p.signal()
	return true
}

// buildResend packs us, in order, into encoded Kinesis records for sh, the way addLocked
// would, without touching the shard's open aggregate.
func (p *Producer) buildResend(sh *shard, us []pending, alone bool) []*kRecord {
	ttl, linger := int64(p.cfg.RecordTTL), int64(p.cfg.Linger)
	var out []*kRecord
	var open *kRecord
	single := func(u *pending) {
		kr := p.getKR(sh)
		kr.addUser(u, ttl, linger)
		kr.pk, kr.ehk, kr.data = u.rec.PartitionKey, u.rec.ExplicitHashKey, u.rec.Data
		kr.isolate = alone
		out = append(out, kr)
	}
	for i := range us {
		u := &us[i]
		rec := u.rec
		if alone || p.cfg.DisableAggregation || len(rec.Data)+len(rec.PartitionKey) > aggregation.MaxRecordSize {
			if open != nil {
				out, open = append(out, open), nil
			}
			single(u)
			continue
		}
		ur := aggregation.UserRecord{PartitionKey: rec.PartitionKey, ExplicitHashKey: rec.ExplicitHashKey, Data: rec.Data}
		keyHash := u.hash.Lo
		if rec.ExplicitHashKey != "" {
			keyHash = aggregation.KeyHash(rec.PartitionKey)
		}
		if open != nil && p.cfg.AggregationMaxCount > 0 && len(open.users) >= p.cfg.AggregationMaxCount {
			out, open = append(out, open), nil
		}
		if open == nil {
			open = p.getKR(sh)
			open.agg = p.freeAggregators.get()
		}
		err := open.agg.AddHashed(ur, keyHash)
		if errors.Is(err, aggregation.ErrFull) {
			out = append(out, open)
			open = p.getKR(sh)
			open.agg = p.freeAggregators.get()
			err = open.agg.AddHashed(ur, keyHash)
		}
		if err != nil {
			p.log.Error("aggregator refused a validated record; sending it alone", "error", err)
			if open.agg.Len() == 0 {
				p.putKR(open)
			} else {
				out = append(out, open)
			}
			open = nil
			single(u)
			continue
		}
		open.addUser(u, ttl, linger)
	}
	if open != nil {
		out = append(out, open)
	}
	for _, kr := range out {
		kr.failErr = p.encode(kr)
	}
	return out
}

// blockedLocked reports whether sh must not send yet because a retired shard whose range it
// took over still has a request in flight (see shard.waitFor). p.mu is held.
func (p *Producer) blockedLocked(sh *shard) bool {
	for n := len(sh.waitFor); n > 0; n = len(sh.waitFor) {
		if sh.waitFor[n-1].inflight > 0 {
			return true
		}
		sh.waitFor[n-1] = nil
		sh.waitFor = sh.waitFor[:n-1]
	}
	return false
}

// inheritBlockers makes the shards of nt that took over the range of a retired shard wait
// for its request in flight, and for those it was waiting for itself. p.mu is held.
func inheritBlockers(nt *table, retired []*shard) {
	for _, old := range retired {
		var blockers []*shard
		if old.inflight > 0 {
			blockers = append(blockers, old)
		}
		for _, w := range old.waitFor {
			if w.inflight > 0 {
				blockers = append(blockers, w)
			}
		}
		if len(blockers) == 0 {
			continue
		}
		for _, sh := range nt.shards {
			if sh.rng.Start.Cmp(old.rng.End) <= 0 && old.rng.Start.Cmp(sh.rng.End) <= 0 && sh != old {
				sh.waitFor = append(sh.waitFor, blockers...)
			}
		}
	}
}
