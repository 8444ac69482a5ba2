package producer

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cenkalti/backoff/v4"
	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/compression"
)

// pending is one accepted user record on its way through the pipeline.
type pending struct {
	rec  *Record
	done Callback
	// data is rec.Data, kept here too: a deferred aggregate is made from its records' data
	// long after they were put, and reading it through rec would touch every Record's
	// memory again, by then out of the cache.
	data    []byte
	ep      *epoch
	hash    aggregation.HashKey
	arrival int64 // producer clock at acceptance; 0 until stamp sets it
	size    int64 // data plus partition key, as counted against the buffer bounds
	tries   int   // attempts made by Kinesis records the record left (after a reshard)
}

// kRecord is one Kinesis record: an aggregate, or a single user record, with the user
// records it carries. kRecords and their buffers are reused (see freeList), so a steady
// stream of puts allocates nothing per record.
type kRecord struct {
	sh    *shard
	agg   *aggregation.Aggregator // set while the aggregate is open or awaiting encoding
	users []pending

	pk, ehk string
	data    []byte // what is sent: aggregate, single record data or a compressed frame
	buf     []byte // storage owned by the kRecord for an aggregate (or its template)
	// deferred marks an aggregate kept as tmpl, without copies of its records' data, until
	// a sender makes its bytes into the request's memory (see makeAggregates); data is set
	// only while a request carrying it is being sent.
	deferred   bool
	tmpl       aggregation.Template
	cbuf       []byte // storage owned by the kRecord for a compressed frame
	size       int    // len(data) + len(pk): what Kinesis counts
	userBytes  int64
	lo, hi     aggregation.HashKey // range of the users' hash keys
	deadline   int64               // when Linger runs out for its oldest record
	expires    int64               // when RecordTTL runs out for its oldest record
	aggregated bool
	// unsummed marks an aggregate whose MD5 checksum is still to be written: the sender
	// checksums all of a request's aggregates at once, just before it sends them.
	unsummed bool

	// Guarded by Producer.mu.
	encoded  bool  // data is final and size known
	dropped  bool  // its users were moved to other kRecords while it was being encoded
	failErr  error // set when encoding found it unsendable; the dispatcher fails it
	attempts int
	isolate  bool // travels in a request of its own (see narrowable)
	sentAt   int64
	lastErr  error
}

// userData is the data of kr's user record i, for making a deferred aggregate.
func (kr *kRecord) userData(i int) []byte { return kr.users[i].data }

func (kr *kRecord) addUser(u *pending, ttl, linger int64) {
	if len(kr.users) == 0 {
		kr.lo, kr.hi = u.hash, u.hash
		kr.deadline, kr.expires = u.arrival+linger, u.arrival+ttl
	} else {
		if u.hash.Cmp(kr.lo) < 0 {
			kr.lo = u.hash
		}
		if u.hash.Cmp(kr.hi) > 0 {
			kr.hi = u.hash
		}
		kr.deadline = min(kr.deadline, u.arrival+linger)
		kr.expires = min(kr.expires, u.arrival+ttl)
	}
	kr.users = append(kr.users, *u)
	kr.userBytes += int64(len(u.rec.Data))
}

// shard is the producer's state for one open shard (or the unrouted holding area).
type shard struct {
	id       string
	rng      aggregation.ShardRange
	unrouted bool

	mu        sync.Mutex // guards open, lastUsers and held; retired is written under mu and Producer.mu
	open      *kRecord   // the aggregate being filled
	lastUsers int        // user records in the last aggregate sealed
	held      []pending  // unrouted only: records waiting for a shard map that covers them
	retired   bool       // no longer open: records are re-routed instead of sent here

	// Guarded by Producer.mu.
	ready    deque
	inReady  bool
	inflight int // PutRecords calls in flight carrying this shard's records
	retryAt  int64
	bo       *backoff.ExponentialBackOff
	lim      limiter
	// waitFor lists retired shards whose range this shard took over and whose requests were
	// in flight when they were retired: the shard sends nothing while one of them still has
	// a request in flight, since records of that request may have to be written here first.
	waitFor []*shard
	// Scratch used while handling one response.
	failed, throttle, ok, resend, hard bool
	nThrottled, nAccepted              int64
	// turns counts the throttled entries that the next entry of the shard, at least as
	// large, got past (see handle); nextTaken is the size of that next entry when it was
	// taken, 0 otherwise, and thrBytes what the throttled entries weigh.
	turns     int
	nextTaken int
	thrBytes  int64

	m *shardMetrics
}

// deque is a FIFO of kRecords that also takes retries at the front.
type deque struct {
	buf  []*kRecord
	head int
}

func (d *deque) len() int            { return len(d.buf) - d.head }
func (d *deque) front() *kRecord     { return d.buf[d.head] }
func (d *deque) at(i int) *kRecord   { return d.buf[d.head+i] }
func (d *deque) pushBack(k *kRecord) { d.buf = append(d.buf, k) }

func (d *deque) popFront() *kRecord {
	k := d.buf[d.head]
	d.buf[d.head] = nil
	d.head++
	if d.head == len(d.buf) {
		d.buf, d.head = d.buf[:0], 0
	}
	return k
}

func (d *deque) pushFront(k *kRecord) {
	if d.head > 0 {
		d.head--
		d.buf[d.head] = k
		return
	}
	d.buf = append(d.buf, nil)
	copy(d.buf[1:], d.buf)
	d.buf[0] = k
}

// takeAll empties the deque, returning its records in order.
func (d *deque) takeAll() []*kRecord {
	out := append([]*kRecord(nil), d.buf[d.head:]...)
	clear(d.buf)
	d.buf, d.head = d.buf[:0], 0
	return out
}

func (p *Producer) getKR(sh *shard) *kRecord {
	kr := p.freeKRecords.get()
	kr.sh = sh
	return kr
}

// putKR returns a finished kRecord to the free list, keeping its buffers.
func (p *Producer) putKR(kr *kRecord) {
	if kr.agg != nil {
		kr.agg.Reset()
		p.freeAggregators.put(kr.agg)
	}
	clear(kr.users)
	*kr = kRecord{users: kr.users[:0], buf: kr.buf[:0], cbuf: kr.cbuf[:0]}
	p.freeKRecords.put(kr)
}

// route puts an accepted record into the aggregate (or queue) of the shard its hash key
// belongs to.
func (p *Producer) route(u *pending) {
	for {
		t := p.table.Load()
		sh := t.lookup(u.hash)
		if sh == nil {
			sh = p.unrouted
		}
		sh.mu.Lock()
		// A refresh retires shards and swaps the table while holding the locks of the
		// retired shards and of the unrouted area; whoever gets such a lock afterwards must
		// route again with the new table, so that records moved by the refresh stay ahead
		// of later records of the same key.
		if sh.retired || sh.unrouted && p.table.Load() != t {
			sh.mu.Unlock()
			continue
		}
		if sh.unrouted {
			p.stamp(u)
			sh.held = append(sh.held, *u)
			sh.mu.Unlock()
			p.requestRefresh()
			p.signalIfBefore(u.arrival + int64(p.cfg.RecordTTL))
			return
		}
		sealed, extra, deadline := p.addLocked(sh, u)
		sh.mu.Unlock()
		if sealed != nil {
			p.finishSeal(sealed)
		}
		if extra != nil {
			p.finishSeal(extra)
		}
		if deadline != 0 {
			p.signalIfBefore(deadline)
		}
		return
	}
}

// signalIfBefore wakes the dispatcher when it plans to sleep past t (or is flushing, when it
// must not wait for deadlines at all).
func (p *Producer) signalIfBefore(t int64) {
	if t < p.nextWake.Load() || p.flushing.Load() > 0 || p.closed.Load() {
		p.signal()
	}
}

// addLocked adds u to sh's open aggregate, opening one if needed. It returns the kRecords it
// sealed (queued but not yet encoded; the caller encodes them after unlocking) and, when it
// opened an aggregate or queued a record, the deadline for the dispatcher. sh.mu is held.
func (p *Producer) addLocked(sh *shard, u *pending) (sealed, extra *kRecord, deadline int64) {
	rec := u.rec
	if p.cfg.DisableAggregation || len(rec.Data)+len(rec.PartitionKey) > aggregation.MaxRecordSize {
		// Alone: without aggregation, or too large to aggregate (possible only with
		// compression, which may still bring it under the limit).
		return p.alone(sh, u)
	}
	linger := int64(p.cfg.Linger)
	kr := sh.open
	if kr == nil {
		p.stamp(u)
		kr = p.openAggregate(sh)
		deadline = u.arrival + linger
	}
	ur := aggregation.UserRecord{PartitionKey: rec.PartitionKey, ExplicitHashKey: rec.ExplicitHashKey, Data: rec.Data}
	// Without an explicit hash key, u.hash is the MD5 of the partition key: the aggregator
	// may index its key table by it instead of hashing the key again.
	keyHash := u.hash.Lo
	if rec.ExplicitHashKey != "" {
		keyHash = aggregation.KeyHash(rec.PartitionKey)
	}
	err := kr.agg.AddHashed(ur, keyHash)
	if errors.Is(err, aggregation.ErrFull) {
		sealed = kr
		p.enqueue(sh, kr)
		p.stamp(u)
		kr = p.openAggregate(sh)
		deadline = u.arrival + linger
		err = kr.agg.AddHashed(ur, keyHash)
	}
	if err != nil {
		// Admission validated the record, so the aggregator has no reason to refuse it;
		// should it anyway, the record travels alone rather than vanishing.
		p.log.Error("aggregator refused a validated record; sending it alone", "error", err)
		if kr.agg.Len() == 0 {
			sh.open = nil
			p.putKR(kr)
		}
		s1, s2, d := p.alone(sh, u)
		if sealed == nil {
			return s1, s2, d
		}
		return sealed, s1, d
	}
	if u.arrival == 0 {
		// A record that joins an aggregate goes by the aggregate's oldest record for its
		// Linger and TTL anyway, so it takes that record's time rather than reading the
		// clock once per record.
		u.arrival = kr.expires - int64(p.cfg.RecordTTL)
	}
	kr.addUser(u, int64(p.cfg.RecordTTL), linger)
	if n := p.cfg.AggregationMaxCount; n > 0 && len(kr.users) >= n {
		// Full by count (AggregationMaxCount): seal it now rather than at the next add.
		p.enqueue(sh, kr)
		if sealed == nil {
			return kr, nil, deadline
		}
		return sealed, kr, deadline
	}
	return sealed, nil, deadline
}

// stamp sets u's arrival time unless it has one.
func (p *Producer) stamp(u *pending) {
	if u.arrival == 0 {
		u.arrival = max(p.now(), 1)
	}
}

// alone queues u as a Kinesis record of its own. Whatever is open goes first, to keep the
// shard's order.
func (p *Producer) alone(sh *shard, u *pending) (sealed, extra *kRecord, deadline int64) {
	if sh.open != nil {
		sealed = sh.open
		p.enqueue(sh, sealed)
	}
	rec := u.rec
	p.stamp(u)
	kr := p.getKR(sh)
	kr.addUser(u, int64(p.cfg.RecordTTL), int64(p.cfg.Linger))
	kr.pk, kr.ehk, kr.data = rec.PartitionKey, rec.ExplicitHashKey, rec.Data
	if p.cfg.Compression == compression.None {
		// Nothing to encode: the record is sendable as it is queued, which saves the
		// second trip through the producer's lock that encoding takes. One over the
		// stream's limit, taken before the limit was known (admitLimit), goes through
		// encode, which fails it.
		kr.size = len(kr.data) + len(kr.pk)
		if kr.size <= aggregation.MaxRecordSize || kr.size <= p.maxRecord() {
			p.enqueueEncoded(sh, kr)
			return sealed, nil, 0
		}
	}
	p.enqueue(sh, kr)
	if sealed == nil {
		return kr, nil, 0
	}
	return sealed, kr, 0
}

func (p *Producer) openAggregate(sh *shard) *kRecord {
	kr := p.getKR(sh)
	kr.agg = p.freeAggregators.get()
	if cap(kr.users) < sh.lastUsers {
		// Sized like the shard's last aggregate: growing it record by record would copy
		// the records' state about twice over.
		kr.users = make([]pending, 0, sh.lastUsers+sh.lastUsers/8)
	}
	sh.open = kr
	return kr
}

// enqueue appends a sealed kRecord to its shard's ready queue, before it is encoded, so that
// the queue keeps the order in which aggregates were sealed. If sh.open is kr it is detached.
func (p *Producer) enqueue(sh *shard, kr *kRecord) {
	if sh.open == kr {
		sh.open = nil
		sh.lastUsers = len(kr.users)
	}
	p.mu.Lock()
	wasFull := p.fullLocked()
	sh.ready.pushBack(kr)
	p.readyCount++
	if !sh.inReady {
		sh.inReady = true
		p.readyShards = append(p.readyShards, sh)
	}
	// kr itself is not sendable before it is encoded, but it may make the queues full,
	// which makes the records of every shard due.
	wake := !wasFull && p.fullLocked()
	p.mu.Unlock()
	if wake {
		p.signal()
	}
}

// enqueueEncoded is enqueue for a kRecord that needs no encoding.
func (p *Producer) enqueueEncoded(sh *shard, kr *kRecord) {
	p.mu.Lock()
	wasFull := p.fullLocked()
	kr.encoded = true
	sh.ready.pushBack(kr)
	p.readyCount++
	p.readyBytes += kr.size
	if !sh.inReady {
		sh.inReady = true
		p.readyShards = append(p.readyShards, sh)
	}
	wake := p.wakeForLocked(sh, kr, wasFull)
	p.mu.Unlock()
	if wake {
		p.signal()
	}
}

// finishSeal encodes a sealed kRecord outside any lock (compression is the expensive step
// of the pipeline) and marks it sendable. An aggregate's checksum waits for the sender,
// which computes those of a whole request together, unless the aggregate is compressed
// here first.
func (p *Producer) finishSeal(kr *kRecord) {
	failErr := p.encode(kr)
	p.mu.Lock()
	if kr.dropped {
		p.mu.Unlock()
		p.putKR(kr)
		return
	}
	wasFull := p.fullLocked()
	kr.encoded = true
	kr.failErr = failErr
	p.readyBytes += kr.size
	wake := failErr != nil || p.wakeForLocked(kr.sh, kr, wasFull)
	p.mu.Unlock()
	if wake {
		p.signal()
	}
}

// encode turns a sealed kRecord into what is sent: it flushes the aggregate, compresses
// and sets the size. A non-nil error means the record cannot be sent.
func (p *Producer) encode(kr *kRecord) error {
	if kr.agg != nil && kr.agg.DeferData {
		t, _ := kr.agg.FlushTemplate(kr.buf)
		kr.buf = t.Buffer()
		kr.pk, kr.ehk = t.PartitionKey, t.ExplicitHashKey
		if t.Single {
			kr.data = kr.users[0].rec.Data // sent as it is: nothing to make
		} else {
			kr.tmpl, kr.deferred, kr.aggregated = t, true, true
		}
		p.freeAggregators.put(kr.agg)
		kr.agg = nil
		kr.size = t.Size + len(kr.pk)
		if kr.size > aggregation.MaxRecordSize && kr.size > p.maxRecord() {
			return &ValidationError{Field: "Data", Limit: fmt.Sprintf("Kinesis record plus partition key of at most %d bytes", p.maxRecord()),
				Actual: fmt.Sprintf("%d bytes", kr.size)}
		}
		return nil
	}
	if kr.agg != nil {
		var out aggregation.KinesisRecord
		if p.cfg.Compression == compression.None {
			out, _ = kr.agg.FlushWithoutChecksum(kr.buf)
			kr.unsummed = out.Aggregated
		} else {
			out, _ = kr.agg.FlushInto(kr.buf)
		}
		kr.buf = out.Buffer()
		kr.data, kr.pk, kr.ehk, kr.aggregated = out.Data, out.PartitionKey, out.ExplicitHashKey, out.Aggregated
		p.freeAggregators.put(kr.agg)
		kr.agg = nil
	}
	var failErr error
	if p.cfg.Compression != compression.None {
		failErr = p.compress(kr)
	}
	kr.size = len(kr.data) + len(kr.pk)
	if failErr == nil && kr.size > aggregation.MaxRecordSize && kr.size > p.maxRecord() {
		failErr = &ValidationError{Field: "Data", Limit: fmt.Sprintf("Kinesis record (after compression) plus partition key of at most %d bytes", p.maxRecord()),
			Actual: fmt.Sprintf("%d bytes", kr.size)}
	}
	return failErr
}

// compress replaces kr.data by its compressed frame when that is smaller. A blob that would
// be mistaken for a frame is framed uncompressed, so the consumer's Decode returns it intact.
func (p *Producer) compress(kr *kRecord) error {
	framed, err := compression.Encode(kr.cbuf[:0], kr.data, p.cfg.Compression)
	if err != nil {
		return err
	}
	kr.cbuf = framed
	switch {
	case len(framed) < len(kr.data):
		kr.data = framed
	case compression.IsFramed(kr.data):
		stored, err := compression.Encode(kr.cbuf[:0], kr.data, compression.None)
		if err != nil {
			return err
		}
		kr.cbuf, kr.data = stored, stored
	}
	return nil
}

// deliver hands one result to the record's callback.
func (p *Producer) deliver(u *pending, res Result) {
	done := u.done
	if done == nil {
		done = p.cfg.OnResult
	}
	if done != nil {
		done(u.rec, res)
		return
	}
	if res.Err != nil {
		p.log.Warn("record failed", "partition_key", u.rec.PartitionKey, "attempts", res.Attempts, "error", res.Err)
	}
}

// release returns the buffer room and Flush accounting of finished records. It runs after
// their callbacks, so that Flush and Close return only once every callback has.
func (p *Producer) release(us []pending) {
	if len(us) == 0 {
		return
	}
	var bytes int64
	ep, n := us[0].ep, int64(0)
	for i := range us {
		bytes += us[i].size
		if us[i].ep != ep {
			ep.sub(n)
			ep, n = us[i].ep, 0
		}
		n++
	}
	ep.sub(n)
	p.room.release(int64(len(us)), bytes)
}

// fail delivers err to every user record of kr and releases them.
func (p *Producer) fail(kr *kRecord, err error) {
	for i := range kr.users {
		u := &kr.users[i]
		p.deliver(u, Result{Attempts: u.tries + kr.attempts, Err: err})
	}
	p.stats.failed.Add(int64(len(kr.users)))
	p.release(kr.users)
}

// failUsers is fail for records not (or no longer) in a kRecord.
func (p *Producer) failUsers(us []pending, err error) {
	for i := range us {
		p.deliver(&us[i], Result{Attempts: us[i].tries, Err: err})
	}
	p.stats.failed.Add(int64(len(us)))
	p.release(us)
}

// expiredError builds the result error of records whose TTL passed.
func (p *Producer) expiredError(attempts int, last error) error {
	return &ExpiredError{TTL: p.cfg.RecordTTL, Attempts: attempts, Last: last}
}
