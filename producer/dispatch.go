package producer

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/shardline/shardline/aggregation"
)

// noData stands in for nil Data.
var noData = []byte{}

// batch is one PutRecords request: the Kinesis records it carries and the shards they
// belong to. Batches are pooled with their slices.
type batch struct {
	krs      []*kRecord
	shards   []*shard
	res      []entryResult
	entries  []types.PutRecordsRequestEntry
	in       kinesis.PutRecordsInput
	bytes    int
	users    int
	isolated bool // carries one Kinesis record that must travel alone
	sentAt   int64

	wire putRecordsBody          // builds in's body, into a buffer lent for the call
	sums aggregation.Checksummer // checksums the request's new aggregates
	aggs [][]byte                // the aggregates it is given
	// keys holds the key hashes of the user records taken so far from the shard being
	// filled, under StrictOrdering (see disjoint).
	keys   map[uint64]struct{}
	krKeys []uint64                 // the key hashes of the Kinesis record disjoint last looked at
	made   []byte                   // the deferred aggregates made for this call (makeAggregates)
	held   []*shard                 // shards whose records are written again (resendGroup)
	opts   []func(*kinesis.Options) // the per-call options, wire's included
}

// entryResult is what became of one entry of a request.
type entryResult struct {
	err     error
	cls     errClass
	code    string
	action  action
	shardID string
	seq     string
	split   bool // an aggregate refused as a whole: its records are sent again one by one
}

type action uint8

const (
	actDone action = iota
	actRequeue
	actResend  // written again under the current shard map, ahead of later records (resendGroup)
	actIsolate // sent again alone: its request was refused as a whole (narrowable)
	actFail
	actExpire
)

// dispatchLoop is the producer's clock: it seals aggregates whose Linger ran out, expires
// records that waited too long for a shard map, and turns ready Kinesis records into
// PutRecords requests for the senders. It sleeps until the next deadline or until woken by
// a put, a finished request or Flush/Close.
func (p *Producer) dispatchLoop() {
	defer p.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		p.wakes.Add(1)
		p.nextWake.Store(math.MaxInt64)
		now := p.now()
		eager := p.eager()
		next := p.sealDue(now, eager)
		if p.aborted.Load() {
			p.abortQueued()
		}
		next = p.dispatch(now, eager, next)
		p.m.pending.Set(float64(p.room.recs.Load()))
		p.nextWake.Store(next)

		var tick <-chan time.Time
		if next != math.MaxInt64 {
			d := time.Duration(next - p.now())
			if d <= 0 {
				continue
			}
			timer.Reset(d)
			tick = timer.C
		}
		select {
		case <-p.wakeCh:
		case <-tick:
		case <-p.stop:
			return
		}
	}
}

// sealDue seals open aggregates whose Linger ran out (all of them when eager) and returns
// the earliest deadline among the rest.
func (p *Producer) sealDue(now int64, eager bool) int64 {
	next := int64(math.MaxInt64)
	for _, sh := range p.table.Load().shards {
		sh.mu.Lock()
		kr := sh.open
		if kr == nil || sh.retired {
			sh.mu.Unlock()
			continue
		}
		if !eager && kr.deadline > now {
			next = min(next, kr.deadline)
			sh.mu.Unlock()
			continue
		}
		p.enqueue(sh, kr)
		sh.mu.Unlock()
		p.finishSeal(kr)
	}
	return min(next, p.expireUnrouted(now))
}

// expireUnrouted fails the records that waited for a shard map past their TTL and returns
// the earliest expiry among the rest.
func (p *Producer) expireUnrouted(now int64) int64 {
	u := p.unrouted
	u.mu.Lock()
	if len(u.held) == 0 {
		u.mu.Unlock()
		return math.MaxInt64
	}
	ttl := int64(p.cfg.RecordTTL)
	next := int64(math.MaxInt64)
	var expired []pending
	kept := u.held[:0]
	for _, r := range u.held {
		if r.arrival+ttl <= now {
			expired = append(expired, r)
			continue
		}
		next = min(next, r.arrival+ttl)
		kept = append(kept, r)
	}
	clear(u.held[len(kept):])
	u.held = kept
	u.mu.Unlock()
	if len(expired) > 0 {
		var last error
		if e := p.routeErr.Load(); e != nil {
			last = *e
		}
		p.stats.expired.Add(int64(len(expired)))
		p.m.expired.Add(int64(len(expired)))
		p.failUsers(expired, p.expiredError(0, last))
	}
	return next
}

// abortQueued fails everything not in flight once Close has given up.
func (p *Producer) abortQueued() {
	err := closedError(p.abortCause())
	var fails []*kRecord
	var users []pending
	p.mu.Lock()
	for _, sh := range p.readyShards {
		for _, kr := range sh.ready.takeAll() {
			p.readyCount--
			if kr.encoded {
				p.readyBytes -= kr.size
				fails = append(fails, kr)
			} else {
				users = append(users, kr.users...)
				kr.dropped = true // its encoder frees it
			}
		}
		sh.inReady = false
	}
	clear(p.readyShards)
	p.readyShards = p.readyShards[:0]
	p.mu.Unlock()
	for _, kr := range fails {
		p.fail(kr, err)
		p.putKR(kr)
	}
	if len(users) > 0 {
		p.failUsers(users, err)
	}
	p.failUnrouted(err)
	p.processParked(true)
}

// eager reports whether ready records go without waiting for Linger.
func (p *Producer) eager() bool {
	return p.cfg.Linger == 0 || p.flushing.Load() > 0 || p.closed.Load()
}

// dispatch hands requests to the senders while slots are free and something is due. It
// returns when it next needs to look, at the latest at next: a deadline, a backoff or a
// rate limit running out.
func (p *Producer) dispatch(now int64, eager bool, next int64) int64 {
	var fails []*kRecord
	p.mu.Lock()
	for p.inflightReqs < p.cfg.MaxConcurrentRequests && p.readyCount > 0 {
		due := eager || p.readyCount >= p.cfg.MaxBatchRecords || p.readyBytes >= p.cfg.MaxBatchBytes
		if !due {
			d := p.earliestReady(now)
			if d > now {
				next = min(next, d)
				break
			}
		}
		// Also while flushing: the tokens, not the dispatcher, decide when records go.
		if at := p.holdForTokens(now); at > now {
			next = min(next, at)
			break
		}
		b := p.buildBatch(now, &next, &fails)
		if b == nil {
			break
		}
		p.holdSince = 0
		p.inflightReqs++
		p.batches <- b // buffered to MaxConcurrentRequests: never blocks
	}
	p.readyWake = next
	p.mu.Unlock()
	for _, kr := range fails {
		if kr.failErr != nil {
			p.fail(kr, kr.failErr)
		} else {
			p.stats.expired.Add(int64(len(kr.users)))
			p.m.expired.Add(int64(len(kr.users)))
			p.fail(kr, p.expiredError(kr.attempts, kr.lastErr))
		}
		p.putKR(kr)
	}
	if len(fails) > 0 {
		next = now // look again: removing them may have made others sendable
	}
	return next
}

// holdForTokens decides whether the next request waits for rate limits to let more records
// through. While limits bind, a shard earns a token every few milliseconds, and a request
// built whenever one is earned carries a handful of Kinesis records while costing the CPU of
// a full one (signing, the HTTP exchange, the response). So when the records sendable now fall
// short of a full request, and some shard holds back records only for its rate limit, the
// request waits until the limits should have let a full request through, for at most Linger
// from when the holding began: the limiters' buckets hold a second of throughput, so waiting
// less than that loses no tokens and the shards' throughput is unchanged. It returns when to
// look again, or 0 to build the request now. Under StrictOrdering a request carries a
// shard's Kinesis records only while their keys differ (disjoint), so tokens piling up need
// not fill it: it is never held. p.mu is held.
func (p *Producer) holdForTokens(now int64) int64 {
	if p.cfg.StrictOrdering {
		return 0
	}
	recs, bytes := 0, 0           // sendable now
	queued, qBytes := 0, 0        // sendable once the limits allow, up to a full request
	var recRate, byteRate float64 // of the shards held back by their limits
	for _, sh := range p.readyShards {
		if sh.retryAt > now || sh.inflight > 0 || p.blockedLocked(sh) {
			continue
		}
		rt, bt := sh.lim.tokens(now)
		limited := false
		for i := range sh.ready.len() {
			kr := sh.ready.at(i)
			if !kr.encoded || queued >= p.cfg.MaxBatchRecords || qBytes >= p.cfg.MaxBatchBytes {
				break
			}
			if kr.failErr != nil || kr.expires <= now || kr.isolate {
				return 0 // buildBatch settles these at once
			}
			queued++
			qBytes += kr.size
			if rt < 0 || bt < 0 {
				if !limited {
					limited = true
					r, b := sh.lim.rates()
					recRate += r
					byteRate += b
				}
				continue
			}
			rt--
			bt -= float64(kr.size)
			recs++
			bytes += kr.size
			if recs >= p.cfg.MaxBatchRecords || bytes >= p.cfg.MaxBatchBytes {
				return 0
			}
		}
	}
	if recRate == 0 || recs == 0 {
		// Nothing is held back by a limit (the queues are short), or nothing can go yet
		// (buildBatch reports when the first token comes).
		p.holdSince = 0
		return 0
	}
	if p.holdSince == 0 {
		p.holdSince = now
	}
	// At most Linger, and at most the second of throughput the buckets hold: waiting longer
	// only loses tokens, and a hold that the tokens can never end (a record larger than its
	// shard's bucket leaves the records behind it short of tokens whenever it goes) must
	// end anyway.
	until := p.holdSince + min(int64(p.cfg.Linger), int64(limiterBucketSpan))
	if now >= until {
		return 0
	}
	// When the limited shards should have earned the rest of what is queued, up to a full
	// request: a short backlog (a retry after a throttle dropped the shard's burst) waits
	// only for its own tokens, as it would without holding.
	needRecs := float64(queued - recs)
	needBytes := float64(qBytes - bytes)
	secs := max(needRecs/recRate, needBytes/byteRate)
	return min(until, now+max(minWait, int64(secs*1e9)))
}

// adaptive reports whether shards' rates adapt to throttling.
func (p *Producer) adaptive() bool { return !p.cfg.DisableAdaptiveRate }

// fullLocked reports whether enough is ready to fill a request, which makes everything ready
// due at once. p.mu is held.
func (p *Producer) fullLocked() bool {
	return p.readyCount >= p.cfg.MaxBatchRecords || p.readyBytes >= p.cfg.MaxBatchBytes
}

// wakeForLocked reports whether the dispatcher must be woken for kr, which just became
// sendable in sh's queue; wasFull is fullLocked from before kr counted. p.mu is held.
//
// The dispatcher publishes in readyWake, under p.mu, when it will next look at the queues by
// itself, so a record that cannot go before then wakes nobody: its shard has a request in
// flight (whose completion wakes the dispatcher), backs off or is rate limited, or its Linger
// runs out later. Without this, every put into a held-back shard would wake the dispatcher
// to find nothing sendable, and a stream of puts would keep it spinning.
func (p *Producer) wakeForLocked(sh *shard, kr *kRecord, wasFull bool) bool {
	full := p.fullLocked()
	if full && !wasFull {
		return true // everything ready is due now
	}
	if p.inflightReqs >= p.cfg.MaxConcurrentRequests || sh.inflight > 0 || p.blockedLocked(sh) {
		return false
	}
	now := p.now()
	at := max(now, sh.retryAt)
	if !full && !p.eager() {
		at = max(at, kr.deadline)
	}
	if d := sh.lim.delay(now); d > 0 {
		at = max(at, now+d)
	}
	return at < p.readyWake
}

// earliestReady returns when the first queue head becomes due: its Linger deadline, or the
// end of its shard's backoff if later. Shards with a request in flight are left out (its
// completion wakes the dispatcher), and a backing-off shard's overdue retries do not count
// as due, or they would make every other shard send without lingering.
func (p *Producer) earliestReady(now int64) int64 {
	d := int64(math.MaxInt64)
	for _, sh := range p.readyShards {
		if sh.ready.len() == 0 || sh.inflight > 0 || p.blockedLocked(sh) {
			continue
		}
		if kr := sh.ready.front(); kr.encoded {
			d = min(d, max(kr.deadline, sh.retryAt))
		}
	}
	return d
}

// buildBatch takes sendable Kinesis records, shard by shard in rotating order, into one
// request. A shard is skipped while it backs off or has a request in flight (which keeps
// its records in order); within a shard the rate limiter decides how many go. Records found
// expired or unsendable go to fails. It returns nil when nothing could be taken.
func (p *Producer) buildBatch(now int64, next *int64, fails *[]*kRecord) *batch {
	n := len(p.readyShards)
	if n == 0 {
		return nil
	}
	b := p.newBatchLocked()
	start := p.rr % n
	p.rr++
	full := false
	for i := 0; i < n && !full; i++ {
		sh := p.readyShards[(start+i)%n]
		if sh.retryAt > now {
			*next = min(*next, sh.retryAt)
			continue
		}
		if sh.inflight > 0 || p.blockedLocked(sh) {
			continue // its (or its blocker's) completion wakes the dispatcher
		}
		took := false
		if p.cfg.StrictOrdering {
			clear(b.keys)
		}
		for sh.ready.len() > 0 {
			kr := sh.ready.front()
			if !kr.encoded {
				break // its encoder wakes the dispatcher
			}
			if kr.failErr != nil || kr.expires <= now {
				sh.ready.popFront()
				p.readyCount--
				p.readyBytes -= kr.size
				*fails = append(*fails, kr)
				continue
			}
			if len(b.krs) >= p.cfg.MaxBatchRecords || len(b.krs) > 0 && (b.bytes+kr.size > p.cfg.MaxBatchBytes || kr.isolate || b.isolated) {
				full = true
				break
			}
			if p.cfg.StrictOrdering && !b.disjoint(kr) {
				break // shares a key with a record before it in this request
			}
			ok, wait := sh.lim.take(now, kr.size)
			sh.m.rate.Set(sh.lim.recordsPerSecond())
			if !ok {
				*next = min(*next, now+wait)
				break
			}
			sh.ready.popFront()
			p.readyCount--
			p.readyBytes -= kr.size
			if kr.attempts > 0 {
				p.stats.retries.Add(1)
			} else {
				kr.sentAt = now // first send: the end of buffering
			}
			kr.attempts++
			b.krs = append(b.krs, kr)
			b.bytes += kr.size
			b.users += len(kr.users)
			b.isolated = kr.isolate
			took = true
			if kr.isolate {
				full = true
				break
			}
			if p.cfg.StrictOrdering {
				b.addKeys()
			}
		}
		if took {
			sh.inflight++
			b.shards = append(b.shards, sh)
		}
	}
	// Drop shards whose queues emptied.
	kept := p.readyShards[:0]
	for _, sh := range p.readyShards {
		if sh.ready.len() > 0 {
			kept = append(kept, sh)
		} else {
			sh.inReady = false
		}
	}
	clear(p.readyShards[len(kept):])
	p.readyShards = kept
	if len(b.krs) == 0 {
		p.freeBatches = append(p.freeBatches, b)
		return nil
	}
	b.sentAt = now
	return b
}

// strictKeysPerShard bounds the user records of one shard that disjoint compares in one
// request, so that building a request under the producer's lock stays cheap.
const strictKeysPerShard = 2048

// disjoint reports whether no user record of kr has the key hash of a record taken before
// it from the same shard for this request. Under StrictOrdering a shard's Kinesis records
// share a request only then: if an earlier one fails and a later one is written, no key has
// a record written ahead of an earlier record of its own, and the failed one is retried
// before any later Kinesis record that does share a key with it, which waits for the next
// request. Keys are the partition keys, whatever the explicit hash keys. The first record
// of a shard is always disjoint. It keeps kr's key hashes for addKeys. p.mu is held.
func (b *batch) disjoint(kr *kRecord) bool {
	if len(b.keys) > 0 && len(b.keys)+len(kr.users) > strictKeysPerShard {
		return false
	}
	b.krKeys = b.krKeys[:0]
	for i := range kr.users {
		h := keyOf(&kr.users[i])
		if _, ok := b.keys[h]; ok {
			return false
		}
		b.krKeys = append(b.krKeys, h)
	}
	return true
}

// addKeys records the key hashes disjoint found in kr, which was taken.
func (b *batch) addKeys() {
	if b.keys == nil {
		b.keys = make(map[uint64]struct{})
	}
	for _, h := range b.krKeys {
		b.keys[h] = struct{}{}
	}
}

// keyOf is the hash of a user record's partition key that disjoint compares: equal keys
// give equal values, and a collision of unequal ones only keeps apart two records that
// could have shared a request.
func keyOf(u *pending) uint64 { return aggregation.KeyHash(u.rec.PartitionKey) }

// sendLoop is one sender: it performs the requests the dispatcher hands out.
func (p *Producer) sendLoop() {
	defer p.wg.Done()
	for {
		select {
		case b := <-p.batches:
			p.send(b)
		case <-p.stop:
			return
		}
	}
}

func (p *Producer) send(b *batch) {
	p.makeAggregates(b)
	b.checksum()
	b.entries = b.entries[:0]
	for _, kr := range b.krs {
		e := types.PutRecordsRequestEntry{Data: kr.data, PartitionKey: &kr.pk}
		if e.Data == nil {
			e.Data = noData // nil Data is empty data, as in the KPL; the SDK refuses nil
		}
		if kr.ehk != "" {
			e.ExplicitHashKey = &kr.ehk
		}
		b.entries = append(b.entries, e)
	}
	b.in = kinesis.PutRecordsInput{Records: b.entries}
	if p.cfg.StreamName != "" {
		b.in.StreamName = &p.cfg.StreamName
	}
	if p.cfg.StreamARN != "" {
		b.in.StreamARN = &p.cfg.StreamARN
	}
	ctx, cancel := context.WithTimeout(p.callCtx, p.cfg.RequestTimeout)
	start := time.Now()
	out, err := p.client.PutRecords(ctx, &b.in, b.opts...)
	cancel()
	b.wire.release()
	p.releaseAggregates(b)
	p.m.requestTime.ObserveDuration(time.Since(start))
	p.m.kinesisPerRequest.Observe(float64(len(b.krs)))
	p.m.userPerRequest.Observe(float64(b.users))
	p.handle(b, out, err)
}

// makeAggregates makes the bytes of the batch's deferred aggregates, all into one buffer
// lent for the call: the producer holds a copy of a record's data only while a request
// carrying it is in flight. Their checksums are left to checksum.
func (p *Producer) makeAggregates(b *batch) {
	need := 0
	for _, kr := range b.krs {
		if kr.deferred {
			need += kr.tmpl.Size
		}
	}
	if need == 0 {
		return
	}
	buf := p.madeAggs.get()
	if cap(buf) < need {
		buf = make([]byte, 0, need)
	}
	for _, kr := range b.krs {
		if !kr.deferred {
			continue
		}
		start := len(buf)
		var err error
		buf, err = kr.tmpl.AppendTo(buf, kr.userData, false)
		if err != nil {
			// The Record contract (Data unchanged until the callback) was broken; the
			// aggregate stays well formed, with that record's data cut or padded.
			p.log.Error("a record's Data changed length while the producer held it", "partition_key", kr.pk, "error", err)
		}
		kr.data, kr.unsummed = buf[start:len(buf):len(buf)], true
	}
	b.made = buf
}

// releaseAggregates gives back the memory makeAggregates lent, once the request's body is
// built or else once the call has returned: an aggregate sent again is made again.
func (p *Producer) releaseAggregates(b *batch) {
	if b.made == nil {
		return
	}
	for _, kr := range b.krs {
		if kr.deferred {
			kr.data = nil
		}
	}
	clear(b.entries) // they point into b.made
	p.madeAggs.put(b.made)
	b.made = nil
}

// checksum writes the checksums of the batch's aggregates that have none yet, all in one
// go. A retried aggregate that is not deferred has kept its checksum from its first send.
func (b *batch) checksum() {
	b.aggs = b.aggs[:0]
	for _, kr := range b.krs {
		if kr.unsummed {
			b.aggs = append(b.aggs, kr.data)
			kr.unsummed = false
		}
	}
	if len(b.aggs) > 0 {
		b.sums.Fill(b.aggs)
		clear(b.aggs)
	}
}

// handle settles a finished request: successes get their results, retryable failures go
// back to the front of their shard's queue (in order) behind a backoff, throttles slow their
// shard down, and everything else fails.
func (p *Producer) handle(b *batch, out *kinesis.PutRecordsOutput, callErr error) {
	now := p.now()
	p.stats.requests.Add(1)
	var callCls errClass
	var callCode string
	var callFail error
	if callErr == nil && (out == nil || len(out.Records) != len(b.krs)) {
		n := 0
		if out != nil {
			n = len(out.Records)
		}
		callErr = fmt.Errorf("producer: PutRecords answered %d entries for %d", n, len(b.krs))
		callCls, callCode = classRetry, "InvalidResponse"
	} else if callErr != nil {
		callCls, callCode = classifyError(callErr)
	}
	if callErr != nil {
		callFail = &PutError{Code: callCode, Retryable: callCls != classFatal, Err: callErr}
		p.log.Debug("PutRecords failed", "code", callCode, "records", len(b.krs), "error", callErr)
	}
	aborted := p.aborted.Load()
	// A request the service (or the SDK, before sending) refused as a whole for its
	// content is sent again one Kinesis record per request, so that only the records at
	// fault fail.
	// A request of one aggregate is split into its user records, each sent alone.
	narrow := callErr != nil && callCls == classFatal && narrowable(callCode) && (len(b.krs) > 1 || len(b.krs[0].users) > 1)

	b.res = b.res[:0]
	for i := range b.krs {
		var r entryResult
		switch {
		case callErr != nil:
			r = entryResult{err: callFail, cls: callCls, code: callCode}
			switch {
			case narrow && len(b.krs) > 1:
				r.action = actIsolate
			case narrow:
				r.action, r.split = actResend, true
			}
		case out.Records[i].ErrorCode != nil && *out.Records[i].ErrorCode != "":
			e := &out.Records[i]
			r.code = *e.ErrorCode
			r.cls = classifyCode(r.code)
			if p.cfg.FailIfThrottled && r.code == "ProvisionedThroughputExceededException" {
				// As the KPL's Retrier does with FailIfThrottled: the entry fails at once
				// (and still counts as a throttle for the shard's rate).
				r.action = actFail
			}
			r.err = &PutError{Code: r.code, Message: aws.ToString(e.ErrorMessage), Retryable: r.cls != classFatal && r.action != actFail}
		default:
			e := &out.Records[i]
			r.shardID, r.seq = aws.ToString(e.ShardId), aws.ToString(e.SequenceNumber)
			if kr := b.krs[i]; r.shardID != "" && r.shardID != kr.sh.id {
				// Landed on a shard other than the predicted one: the map is stale.
				p.misrouted.Store(true)
				p.requestRefresh()
				if !p.visible(kr, r.shardID, p.table.Load()) {
					r.action = actResend
				}
			}
		}
		b.res = append(b.res, r)
	}

	var throttled int64
	resend := false
	p.mu.Lock()
	// A shard whose records must be written again under a new map (some landed where a KCL
	// reader drops them, or its shard was retired meanwhile) keeps counting this request as
	// in flight until they are queued again: that holds back the shard and the shards that
	// took over its range, so that nothing overtakes them.
	for _, sh := range b.shards {
		sh.resend = sh.retired
	}
	for i := range b.res {
		if b.res[i].action == actResend {
			b.krs[i].sh.resend = true
		}
	}
	for _, sh := range b.shards {
		if sh.resend {
			resend = true
			b.held = append(b.held, sh)
		} else {
			sh.inflight--
		}
	}
	// Backwards, so that pushing each retry to the front keeps a shard's retries in order.
	for i := len(b.krs) - 1; i >= 0; i-- {
		kr, r := b.krs[i], &b.res[i]
		sh := kr.sh
		if r.err == nil {
			sh.nAccepted++
			sh.nextTaken = kr.size
			if r.action != actResend {
				sh.ok = true
			}
			continue
		}
		kr.lastErr = r.err
		if r.cls == classThrottle {
			sh.throttle = true
			sh.nThrottled++
			sh.thrBytes += int64(kr.size)
			// Kinesis processes a request's records one after the other, a failure not
			// stopping the later ones (PutRecords API reference), and a shard's budget
			// only shrinks meanwhile, but for what refills in the microseconds between
			// two entries or a one-second window that turns over mid-request: a refused
			// entry followed by a taken one at least as large hardly ever happens more
			// than once in a request to a shard over its capacity. Twice says the
			// refusals were not about the shard's throughput.
			if sh.nextTaken >= kr.size {
				sh.turns++
			}
			throttled++
		} else {
			sh.hard = true
		}
		sh.nextTaken = 0
		switch {
		case aborted && callErr != nil:
			// The call was cut short (Close cancelled it) or failed as a whole: whether
			// the service wrote the records is not known.
			r.action, r.err = actFail, outcomeUnknownError(p.abortCause())
		case aborted:
			r.action, r.err = actFail, closedError(p.abortCause())
		case r.split:
			// In its group.
		case r.action == actIsolate && sh.resend:
			r.action = actResend // its new shard isolates it again if need be
		case r.action == actIsolate:
			kr.isolate = true
			sh.ready.pushFront(kr)
			p.readyCount++
			p.readyBytes += kr.size
			if !sh.inReady {
				sh.inReady = true
				p.readyShards = append(p.readyShards, sh)
			}
		case r.cls == classFatal, r.action == actFail:
			r.action = actFail
		case now >= kr.expires:
			r.action = actExpire
		case sh.resend:
			r.action = actResend
		default:
			sh.failed = true
			r.action = actRequeue
			sh.ready.pushFront(kr)
			p.readyCount++
			p.readyBytes += kr.size
			if !sh.inReady {
				sh.inReady = true
				p.readyShards = append(p.readyShards, sh)
			}
		}
	}
	for _, sh := range b.shards {
		sh.lim.observe(now, b.sentAt, sh.nAccepted)
		if sh.throttle {
			sh.m.throttled.Add(sh.nThrottled)
			switch {
			case sh.turns >= 2:
				// Refused whatever the rate (a storm on the service's side): slowing down
				// would not help, and the service did not count the refused entries
				// against the shard, so their tokens come back for the retries.
				sh.lim.refund(now, sh.nThrottled, sh.thrBytes)
			case sh.lim.stormy(now):
				// Too few entries to tell, in a storm seen within the last second: likely
				// the same storm, so no decrease; the burst goes all the same.
				sh.lim.dropBurst(now)
			default:
				if sh.lim.throttled(now, b.sentAt) {
					sh.m.rate.Set(sh.lim.recordsPerSecond())
				}
				sh.lim.dropBurst(now)
			}
		}
		switch {
		case sh.failed && !sh.hard && p.adaptive() && callErr == nil:
			// The only failures were throttled entries of a request the service
			// answered: their pace is the adaptive rate's to set, so the retries go as
			// the shard's rate allows, without a backoff that a storm refusing a share of
			// entries would pin at RetryMaxDelay. (A request throttled whole backs off as
			// before.)
			sh.bo.Reset()
			sh.retryAt = 0
		case sh.failed && sh.ok:
			// Some of the shard's entries went through, so the shard is not down: its
			// retries wait the base delay, not a longer one each time.
			sh.bo.Reset()
			sh.retryAt = now + int64(sh.bo.NextBackOff())
		case sh.failed:
			sh.retryAt = now + int64(sh.bo.NextBackOff())
		case sh.ok:
			sh.bo.Reset()
			sh.retryAt = 0
		}
		sh.ok, sh.failed, sh.throttle, sh.hard, sh.nThrottled, sh.nAccepted, sh.resend = false, false, false, false, 0, 0, false
		sh.turns, sh.nextTaken, sh.thrBytes = 0, 0, 0
	}
	p.inflightReqs--
	p.mu.Unlock()
	p.signal()

	if throttled > 0 {
		p.stats.throttled.Add(throttled)
	}
	var groups []*resendGroup
	if resend {
		groups = p.resendGroups(b)
	}
	for i, kr := range b.krs {
		r := &b.res[i]
		if r.err != nil && r.code != "" {
			p.stats.code(r.code, 1)
			p.m.errorCode(r.code, 1)
		}
		switch {
		case r.action == actResend:
			// In its group.
		case r.err == nil:
			p.complete(kr, r.shardID, r.seq)
		case r.action == actFail:
			p.fail(kr, r.err)
			p.putKR(kr)
		case r.action == actExpire:
			p.stats.expired.Add(int64(len(kr.users)))
			p.m.expired.Add(int64(len(kr.users)))
			p.fail(kr, p.expiredError(kr.attempts, r.err))
			p.putKR(kr)
		}
	}
	for _, g := range groups {
		p.resolve(g)
	}
	clear(b.krs)
	clear(b.shards)
	clear(b.held)
	b.held = b.held[:0]
	clear(b.res)
	clear(b.entries)
	b.krs, b.shards, b.res, b.entries = b.krs[:0], b.shards[:0], b.res[:0], b.entries[:0]
	b.in = kinesis.PutRecordsInput{}
	b.bytes, b.users, b.isolated = 0, 0, false
	p.mu.Lock()
	p.freeBatches = append(p.freeBatches, b)
	p.mu.Unlock()
}

// newBatchLocked takes a batch from the free list, or makes one. p.mu is held.
//
// The list stays short: a batch exists only while it is built under p.mu, in flight, or
// settled after its call, so there are never many more than MaxConcurrentRequests. Unlike a
// sync.Pool it keeps the batches' slices across garbage collections.
func (p *Producer) newBatchLocked() *batch {
	if n := len(p.freeBatches); n > 0 {
		b := p.freeBatches[n-1]
		p.freeBatches[n-1] = nil
		p.freeBatches = p.freeBatches[:n-1]
		return b
	}
	b := new(batch)
	b.wire.in, b.wire.bufs = &b.in, &p.bodies
	// A body holds what it needs of the aggregates made for it, so they go back as soon
	// as it is built: in flight, a request then holds one copy of its data, not two.
	b.wire.serialized = func() { p.releaseAggregates(b) }
	b.opts = append(b.opts, p.callOpts...)
	if !p.cfg.DisableFastSerializer {
		b.opts = append(b.opts, b.wire.useFastBody)
	}
	return b
}

// complete delivers success to every user record of kr and recycles it.
func (p *Producer) complete(kr *kRecord, shardID, seq string) {
	for i := range kr.users {
		u := &kr.users[i]
		res := Result{ShardID: shardID, SequenceNumber: seq, Attempts: u.tries + kr.attempts}
		if kr.aggregated {
			res.SubSequenceNumber = int64(i)
		}
		p.deliver(u, res)
	}
	n := int64(len(kr.users))
	c, m := &p.stats, kr.sh.m
	c.userPut.Add(n)
	c.userBytes.Add(kr.userBytes)
	c.kinesisPut.Add(1)
	c.kinesisBytes.Add(int64(kr.size))
	m.userPut.Add(n)
	m.userBytes.Add(kr.userBytes)
	m.kinesisPut.Add(1)
	m.kinesisBytes.Add(int64(kr.size))
	p.m.userPerKinesis.Observe(float64(n))
	p.m.retries.Observe(float64(kr.attempts - 1))
	if first := kr.deadline - int64(p.cfg.Linger); kr.sentAt > first {
		p.m.bufferingTime.ObserveDuration(time.Duration(kr.sentAt - first))
	} else {
		p.m.bufferingTime.Observe(0)
	}
	p.release(kr.users)
	p.putKR(kr)
}
