package aggregation

import (
	"crypto/md5"
	"fmt"
	"hash/maphash"
	"unsafe"
)

// Aggregator packs user records into KPL aggregates. The zero value is ready
// to use with DefaultMaxAggregateSize and single records emitted wrapped; set
// the exported fields before the first Add to change them. An Aggregator is
// not safe for concurrent use.
//
// Records are encoded straight into the buffer that Flush hands over, behind
// a gap that receives the magic and the key tables at flush time, so the
// aggregate is never copied. A producer that gives each completed put's Data
// back through FlushInto allocates nothing in steady state.
type Aggregator struct {
	// MaxSize bounds the encoded size of an aggregate (magic, protobuf and
	// checksum). Zero means DefaultMaxAggregateSize; values above
	// MaxRecordSize act as MaxRecordSize. The Kinesis limit is enforced too:
	// the aggregate plus the partition key it is put under never exceeds
	// MaxRecordSize.
	MaxSize int

	// UnwrapSingle makes Flush emit an aggregate that holds one user record
	// as that record's plain data, as the KPL does. Consumers see the same
	// user record either way (with Aggregated false and subsequence number
	// 0), and the put saves the framing. A record with tags stays wrapped.
	UnwrapSingle bool

	// DeferData makes Add record where each user record's data goes in the
	// aggregate without copying the data: the aggregate is then flushed with
	// FlushTemplate, and its bytes are made when it is sent, from the same
	// records' data (Template.AppendTo). An aggregate waiting to be sent then
	// holds its keys and framing, a few bytes per record, rather than a copy
	// of every payload. The records' Data must not change until AppendTo has
	// run. Flush, FlushInto and FlushWithoutChecksum panic in this mode. It may be changed
	// between aggregates, while the Aggregator is empty.
	DeferData bool

	// The key tables are kept apart because they precede the records in the
	// canonical field order but grow as records arrive.
	pkTable  []byte
	ehkTable []byte

	// buf is gap bytes reserved for the magic and the tables, then the
	// encoded records. shiftBuf is a second buffer for re-indexing.
	buf      []byte
	gap      int
	shiftBuf []byte
	lastSize int // size of the previous aggregate, to size the next buffer
	lastBuf  int // bytes of buf the previous aggregate used (less than lastSize with DeferData)
	deferred int // data bytes of the records added but not copied (DeferData)

	// The partition key table's index is a small open-addressing hash table rather than a
	// map: a caller that already hashed the key (a producer routes by its MD5) saves hashing
	// it again, and a probe touches one 8-byte slot instead of a map group. A slot holds the
	// upper half of the key's hash and its table index plus one; 0 is empty.
	pkSlots  []uint64
	pkKeys   []string          // table index -> key
	pkHashes []uint64          // table index -> the key's hash, for growing pkSlots
	ehkIndex map[string]uint32 // explicit hash key -> position, excluding the placeholder
	lastPK   string            // most recent partition key, checked before the index
	lastPKAt uint32
	nPK      int
	nEHK     int // explicit hash keys in the table, excluding the placeholder

	n           int // user records
	nNoEHK      int // user records without an explicit hash key
	placeholder bool
	shiftGrowth int // bytes the records would grow if every EHK index rose by one

	firstPK  string
	firstEHK string
}

// initialGap is the room reserved for the magic and the key tables before
// the first aggregate shows how much they need.
const initialGap = 512

// NewAggregator returns an Aggregator whose aggregates stay within maxSize
// bytes (see Aggregator.MaxSize).
func NewAggregator(maxSize int) *Aggregator {
	return &Aggregator{MaxSize: maxSize}
}

// Len returns the number of user records in the aggregate being built.
func (a *Aggregator) Len() int { return a.n }

// Size returns the exact encoded size of the aggregate being built: magic,
// protobuf and checksum. It is 0 when the aggregate is empty.
func (a *Aggregator) Size() int {
	if a.n == 0 {
		return 0
	}
	return Overhead + len(a.pkTable) + len(a.ehkTable) + a.recsLen()
}

func (a *Aggregator) recsLen() int {
	if a.buf == nil { // handed over by Flush; the next Add starts a buffer
		return 0
	}
	return len(a.buf) - a.gap + a.deferred
}

func (a *Aggregator) maxSize() int {
	switch {
	case a.MaxSize <= 0:
		return DefaultMaxAggregateSize
	case a.MaxSize > MaxRecordSize:
		return MaxRecordSize
	default:
		return a.MaxSize
	}
}

// plan describes how one more record would be encoded.
type plan struct {
	pkAt, ehkAt    uint32
	pkNew, ehkNew  bool
	hasEHK         bool
	addPlaceholder bool // put an empty EHK table entry at index 0 first
	shift          bool // existing EHK indexes must rise by one
	body           int  // length of the Record message
	size           int  // aggregate size after the record, with framing
}

// The explicit hash key table gets an unreferenced empty entry at index 0
// whenever an aggregate mixes records with and without an explicit hash key.
// The format itself does not need it: the KCL and this package only look up
// explicit_hash_key_index when present. But the widely used aws-kinesis-agg
// decoder (Node.js, common in AWS Lambda) reads the index even when it is
// absent, gets the proto2 default 0 and reports table[0] as the record's
// explicit hash key; with the placeholder it reports an empty key instead.
// Aggregates that do not mix stay byte-identical to the KPL's.

func (a *Aggregator) plan(p *plan, pk string, pkHash uint64, ehk string, dataLen int, tags []Tag) {
	*p = plan{}
	grow := 0

	// Producers often pass the same string for the same key; comparing
	// pointers first keeps a miss from paying for a byte compare that the
	// index repeats anyway.
	if a.n > 0 && len(pk) == len(a.lastPK) && unsafe.StringData(pk) == unsafe.StringData(a.lastPK) {
		p.pkAt = a.lastPKAt
	} else if at, ok := a.findPK(pk, pkHash); ok {
		p.pkAt = at
	} else {
		p.pkAt, p.pkNew = uint32(a.nPK), true
		grow += bytesFieldLen(len(pk))
	}
	body := 1 + varintLen(uint64(p.pkAt)) + bytesFieldLen(dataLen)

	if ehk != "" {
		p.hasEHK = true
		base := uint32(0)
		if a.placeholder {
			base = 1
		}
		pos, ok := a.ehkIndex[ehk]
		if !ok {
			pos, p.ehkNew = uint32(a.nEHK), true
			grow += bytesFieldLen(len(ehk))
			if a.nEHK == 0 && a.nNoEHK > 0 {
				p.addPlaceholder, base = true, 1
				grow += bytesFieldLen(0)
			}
		}
		p.ehkAt = base + pos
		body += 1 + varintLen(uint64(p.ehkAt))
	} else if a.nEHK > 0 && !a.placeholder {
		p.shift = true
		grow += bytesFieldLen(0) + a.shiftGrowth
	}

	for i := range tags {
		body += bytesFieldLen(tagLen(&tags[i]))
	}
	p.body = body
	grow += bytesFieldLen(body)
	p.size = Overhead + len(a.pkTable) + len(a.ehkTable) + a.recsLen() + grow
}

func tagLen(t *Tag) int {
	n := bytesFieldLen(len(t.Key))
	if t.Value != "" {
		n += bytesFieldLen(len(t.Value))
	}
	return n
}

// SizeWith returns the exact encoded size the aggregate would have (magic,
// protobuf and checksum) after adding a record without tags with partition
// key pk, explicit hash key ehk (empty for none) and dataLen bytes of data.
// It accounts for keys already in the tables.
func (a *Aggregator) SizeWith(pk, ehk string, dataLen int) int {
	var p plan
	a.plan(&p, pk, KeyHash(pk), ehk, dataLen, nil)
	return p.size
}

// SizeWithRecord is SizeWith for a record that may carry tags.
func (a *Aggregator) SizeWithRecord(r *UserRecord) int {
	var p plan
	a.plan(&p, r.PartitionKey, KeyHash(r.PartitionKey), r.ExplicitHashKey, len(r.Data), r.Tags)
	return p.size
}

// Fits reports whether a record without tags of that shape can join the
// aggregate within MaxSize and the Kinesis record limit.
func (a *Aggregator) Fits(pk, ehk string, dataLen int) bool {
	var p plan
	a.plan(&p, pk, KeyHash(pk), ehk, dataLen, nil)
	return a.fits(p.size, pk)
}

func (a *Aggregator) fits(size int, pk string) bool {
	putKey := pk
	if a.n > 0 {
		putKey = a.firstPK
	}
	return size <= a.maxSize() && size+len(putKey) <= MaxRecordSize
}

// Add appends a copy of r to the aggregate. It returns a *ValidationError
// when r breaks a Kinesis limit, and ErrFull when the aggregate is not empty
// and r does not fit; flush and add r again. An empty Aggregator takes any
// valid record even beyond MaxSize, so an oversized record travels alone; when
// its aggregated form would exceed the Kinesis limit it is accepted only with
// UnwrapSingle set.
func (a *Aggregator) Add(r UserRecord) error {
	return a.AddHashed(r, KeyHash(r.PartitionKey))
}

// KeyHash is a hash of a partition key for AddHashed: any 64 well-mixed bits
// that depend on the key alone do, and this is a fast one.
func KeyHash(partitionKey string) uint64 {
	return maphash.String(keyHashSeed, partitionKey)
}

var keyHashSeed = maphash.MakeSeed()

// AddHashed is Add for a caller that already holds a hash of r's partition
// key: pkHash must be a well-mixed 64-bit hash of the key alone (KeyHash, or
// bits of its MD5, HashKey.Lo of PartitionKeyHash), the same for the same key
// as long as the aggregate is open. A hash that breaks this rule costs only
// size: the key would enter the table twice, which the format allows.
func (a *Aggregator) AddHashed(r UserRecord, pkHash uint64) error {
	if a.addKnownKey(&r, pkHash) {
		return nil
	}
	if err := ValidateRecordSize(r.PartitionKey, len(r.Data)); err != nil {
		return err
	}
	var p plan
	a.plan(&p, r.PartitionKey, pkHash, r.ExplicitHashKey, len(r.Data), r.Tags)
	// Keys already in a table were validated when they entered it.
	if p.pkNew {
		if err := ValidatePartitionKey(r.PartitionKey); err != nil {
			return err
		}
	}
	if p.ehkNew {
		if err := ValidateExplicitHashKey(r.ExplicitHashKey); err != nil {
			return err
		}
	}
	if !a.fits(p.size, r.PartitionKey) {
		if a.n > 0 {
			return ErrFull
		}
		if (!a.UnwrapSingle || len(r.Tags) > 0) && p.size+len(r.PartitionKey) > MaxRecordSize {
			return &ValidationError{Field: "Data", Limit: "aggregated record plus partition key of at most 1048576 bytes (set UnwrapSingle to send it alone)",
				Actual: fmt.Sprintf("%d bytes", p.size+len(r.PartitionKey))}
		}
	}
	a.add(&r, &p, pkHash)
	return nil
}

// addKnownKey adds r and reports true when it has the most common shape: a
// partition key already in the table, no explicit hash key in the aggregate,
// no tags, and room to spare. It skips the planning that the general path
// needs for new keys, explicit hash keys and re-indexing.
func (a *Aggregator) addKnownKey(r *UserRecord, pkHash uint64) bool {
	if a.n == 0 || a.nEHK != 0 || r.ExplicitHashKey != "" || len(r.Tags) != 0 {
		return false
	}
	pk := r.PartitionKey
	var at uint32
	if len(pk) == len(a.lastPK) && unsafe.StringData(pk) == unsafe.StringData(a.lastPK) {
		at = a.lastPKAt
	} else {
		var ok bool
		if at, ok = a.findPK(pk, pkHash); !ok {
			return false
		}
	}
	n := len(r.Data)
	body := 1 + varintLen(uint64(at)) + bytesFieldLen(n)
	size := Overhead + len(a.pkTable) + len(a.ehkTable) + a.recsLen() + bytesFieldLen(body)
	// The first record's key is what the aggregate is put under.
	if size > a.maxSize() || size+len(a.firstPK) > MaxRecordSize || n+len(pk) > MaxRecordSize {
		return false
	}
	b := a.buf
	b = append(b, tagRecord)
	b = appendVarint(b, uint64(body))
	b = append(b, tagPartitionKeyIndex)
	b = appendVarint(b, uint64(at))
	b = append(b, tagData)
	b = appendVarint(b, uint64(n))
	if a.DeferData {
		a.buf, a.deferred = b, a.deferred+n
	} else {
		a.buf = append(b, r.Data...)
	}
	a.lastPK, a.lastPKAt = pk, at
	a.nNoEHK++
	a.n++
	return true
}

// add encodes a record according to its plan; no validation or size check.
func (a *Aggregator) add(r *UserRecord, p *plan, pkHash uint64) {
	if a.buf == nil {
		a.startBuffer(nil)
	}
	if p.shift {
		a.shiftEHKIndexes()
	}
	if p.pkNew {
		a.insertPK(r.PartitionKey, pkHash)
		a.pkTable = appendBytesField(a.pkTable, tagPartitionKeyTable, r.PartitionKey)
	}
	a.lastPK, a.lastPKAt = r.PartitionKey, p.pkAt

	if p.hasEHK {
		if p.addPlaceholder {
			a.ehkTable = append(a.ehkTable, tagExplicitHashKeyTable, 0)
			a.placeholder = true
		}
		if p.ehkNew {
			if a.ehkIndex == nil {
				a.ehkIndex = make(map[string]uint32)
			}
			a.ehkIndex[r.ExplicitHashKey] = uint32(a.nEHK)
			a.nEHK++
			a.ehkTable = appendBytesField(a.ehkTable, tagExplicitHashKeyTable, r.ExplicitHashKey)
		}
		if !a.placeholder {
			// Cost of a later shift to this record: its index varint and
			// then its length varint may each gain a byte.
			d := varintLen(uint64(p.ehkAt)+1) - varintLen(uint64(p.ehkAt))
			a.shiftGrowth += d + varintLen(uint64(p.body+d)) - varintLen(uint64(p.body))
		}
	} else {
		a.nNoEHK++
	}

	b := a.buf
	b = append(b, tagRecord)
	b = appendVarint(b, uint64(p.body))
	b = append(b, tagPartitionKeyIndex)
	b = appendVarint(b, uint64(p.pkAt))
	if p.hasEHK {
		b = append(b, tagExplicitHashKeyIndex)
		b = appendVarint(b, uint64(p.ehkAt))
	}
	b = append(b, tagData)
	b = appendVarint(b, uint64(len(r.Data)))
	if a.DeferData {
		a.deferred += len(r.Data)
	} else {
		b = append(b, r.Data...)
	}
	for i := range r.Tags {
		t := &r.Tags[i]
		b = append(b, tagTag)
		b = appendVarint(b, uint64(tagLen(t)))
		b = appendBytesField(b, tagTagKey, t.Key)
		if t.Value != "" {
			b = appendBytesField(b, tagTagValue, t.Value)
		}
	}
	a.buf = b

	if a.n == 0 {
		a.firstPK, a.firstEHK = r.PartitionKey, r.ExplicitHashKey
	}
	a.n++
}

// findPK returns the table index of partition key pk, whose hash is h.
func (a *Aggregator) findPK(pk string, h uint64) (uint32, bool) {
	if a.nPK == 0 {
		return 0, false
	}
	mask := uint64(len(a.pkSlots) - 1)
	tag := h >> 32
	for i := h & mask; ; i = (i + 1) & mask {
		s := a.pkSlots[i]
		if s == 0 {
			return 0, false
		}
		if s>>32 == tag {
			at := uint32(s) - 1
			if a.pkKeys[at] == pk {
				return at, true
			}
		}
	}
}

// minPKSlots is the index's smallest size; it doubles whenever it would be more than
// half full, so probes stay short.
const minPKSlots = 64

// insertPK gives pk, whose hash is h, the next table index.
func (a *Aggregator) insertPK(pk string, h uint64) {
	if 2*(a.nPK+1) > len(a.pkSlots) {
		a.growPKSlots()
	}
	a.pkKeys = append(a.pkKeys, pk)
	a.pkHashes = append(a.pkHashes, h)
	a.nPK++
	a.placePK(h, uint32(a.nPK))
}

// placePK puts a key's slot, holding its table index plus one, into the index.
func (a *Aggregator) placePK(h uint64, atPlusOne uint32) {
	mask := uint64(len(a.pkSlots) - 1)
	i := h & mask
	for a.pkSlots[i] != 0 {
		i = (i + 1) & mask
	}
	a.pkSlots[i] = h>>32<<32 | uint64(atPlusOne)
}

func (a *Aggregator) growPKSlots() {
	n := max(2*len(a.pkSlots), minPKSlots)
	a.pkSlots = make([]uint64, n)
	for i, h := range a.pkHashes {
		a.placePK(h, uint32(i+1))
	}
}

func appendBytesField(b []byte, tag byte, s string) []byte {
	b = append(b, tag)
	b = appendVarint(b, uint64(len(s)))
	return append(b, s...)
}

// startBuffer makes spare, or a new allocation when spare is too small, the
// buffer for the next aggregate.
func (a *Aggregator) startBuffer(spare []byte) {
	if a.gap == 0 {
		a.gap = initialGap
	}
	// Size for an aggregate like the previous one, so that appends rarely
	// grow the buffer while a trickle of small aggregates under a large
	// MaxSize does not allocate a megabyte each.
	last, least := a.lastSize, 4096
	if a.DeferData {
		// Frames without data are a few bytes per record.
		last, least = a.lastBuf, 256
	}
	want := a.gap + min(max(last+last/8, least), a.maxSize()+a.maxSize()/8) + ChecksumSize
	if cap(spare) < max(want/2, a.gap+ChecksumSize) {
		spare = make([]byte, 0, want)
	}
	a.buf = spare[:a.gap]
}

// shiftEHKIndexes inserts the placeholder at index 0 of the explicit hash key
// table and raises every explicit_hash_key_index by one. It runs at most once
// per aggregate: when the first record without an explicit hash key joins
// records that have one.
func (a *Aggregator) shiftEHKIndexes() {
	a.ehkTable = append(a.ehkTable, 0, 0)
	copy(a.ehkTable[2:], a.ehkTable)
	a.ehkTable[0], a.ehkTable[1] = tagExplicitHashKeyTable, 0
	a.placeholder = true

	out := append(a.shiftBuf[:0], a.buf[:a.gap]...)
	in := a.buf[a.gap:]
	for len(in) > 0 {
		// Records were written by add, so the layout is known:
		// tag, length, pk index field, optional EHK index field, data
		// field, tags. With DeferData the data field's bytes are absent
		// from buf (its length still counts them).
		l, n := consumeVarint(in[1:])
		inBuf := int(l)
		if a.DeferData {
			inBuf -= deferredDataLen(in[1+n:])
		}
		body := in[1+n : 1+n+inBuf]
		in = in[1+n+inBuf:]

		_, m := consumeVarint(body[1:])
		j := 1 + m
		if body[j] != tagExplicitHashKeyIndex {
			out = append(out, tagRecord)
			out = appendVarint(out, l)
			out = append(out, body...)
			continue
		}
		at, k := consumeVarint(body[j+1:])
		newLen := int(l) - k + varintLen(at+1)
		out = append(out, tagRecord)
		out = appendVarint(out, uint64(newLen))
		out = append(out, body[:j+1]...)
		out = appendVarint(out, at+1)
		out = append(out, body[j+1+k:]...)
	}
	a.shiftBuf, a.buf = a.buf[:0], out
}

// Flush returns the aggregate as a Kinesis record and resets the Aggregator.
// The record's Data is the caller's: the Aggregator hands over the buffer it
// encoded into and starts a new one on the next Add. It returns false when
// the aggregate is empty.
func (a *Aggregator) Flush() (KinesisRecord, bool) {
	return a.FlushInto(nil)
}

// FlushInto is Flush that also gives the Aggregator spare, a buffer the
// caller no longer needs, to encode the next aggregate in. Passing the
// Buffer of a record whose put has completed makes the steady state
// allocation-free.
// The caller must not touch spare afterwards. When the aggregate is empty
// nothing happens and spare stays with the caller.
func (a *Aggregator) FlushInto(spare []byte) (KinesisRecord, bool) {
	return a.flush(spare, true)
}

// FlushWithoutChecksum is FlushInto that leaves an aggregate's MD5 checksum
// unwritten: the last ChecksumSize bytes of its Data are zero until a
// Checksummer fills them in, and it must not be sent before. MD5 is most of
// what encoding an aggregate costs, and a Checksummer computes the checksums
// of many aggregates at once for a fraction of computing them one by one.
// A record whose Aggregated is false is complete as it is.
func (a *Aggregator) FlushWithoutChecksum(spare []byte) (KinesisRecord, bool) {
	return a.flush(spare, false)
}

func (a *Aggregator) flush(spare []byte, checksum bool) (KinesisRecord, bool) {
	if a.DeferData {
		panic("aggregation: Flush of an Aggregator with DeferData set; use FlushTemplate")
	}
	if a.n == 0 {
		return KinesisRecord{}, false
	}
	rec := KinesisRecord{PartitionKey: a.firstPK, ExplicitHashKey: a.firstEHK, Records: a.n}
	a.lastSize = a.Size()
	if data, ok := a.singleData(); ok && a.UnwrapSingle {
		rec.Data, rec.buffer = data, a.buf[:0]
	} else {
		rec.Aggregated = true
		start := a.writeHead()
		b := a.buf
		var sum [ChecksumSize]byte
		if checksum {
			sum = md5.Sum(b[start+len(Magic):])
		}
		b = append(b, sum[:]...)
		rec.Data, rec.buffer = b[start:], b[:0]
	}
	a.handOver(spare)
	return rec, true
}

// handOver lets go of the buffer just flushed (its bytes are the caller's now), resets the
// Aggregator and starts the next aggregate in spare, when given.
func (a *Aggregator) handOver(spare []byte) {
	a.buf = nil
	a.Reset()
	if spare != nil {
		a.startBuffer(spare)
	}
}

// writeHead writes the magic and the key tables into the gap, right before the records,
// widening the gap first when they do not fit, and returns where the aggregate starts.
func (a *Aggregator) writeHead() int {
	head := len(Magic) + len(a.pkTable) + len(a.ehkTable)
	if head > a.gap {
		a.widenGap(head)
	}
	start := a.gap - head
	i := start + copy(a.buf[start:], Magic)
	i += copy(a.buf[i:], a.pkTable)
	copy(a.buf[i:], a.ehkTable)
	return start
}

// widenGap moves the records so that head bytes fit before them, and keeps
// the wider gap, with some slack, for later aggregates.
func (a *Aggregator) widenGap(head int) {
	gap := head + head/16 + 16
	recs := len(a.buf) - a.gap // what buf holds, without deferred data
	need := gap + recs + ChecksumSize
	var b []byte
	if cap(a.buf) >= need {
		b = a.buf[:gap+recs]
	} else {
		b = make([]byte, gap+recs, need+need/8)
	}
	copy(b[gap:], a.buf[a.gap:])
	a.buf, a.gap = b, gap
}

// singleData returns the data of the only record, or false when there are
// several records or the record has tags, which plain data cannot carry.
func (a *Aggregator) singleData() ([]byte, bool) {
	if a.n != 1 {
		return nil, false
	}
	b := a.buf[a.gap:]
	_, n := consumeVarint(b[1:])
	body := b[1+n:]
	_, m := consumeVarint(body[1:])
	j := 1 + m
	if body[j] == tagExplicitHashKeyIndex {
		_, k := consumeVarint(body[j+1:])
		j += 1 + k
	}
	data, k := consumeBytes(body[j+1:])
	if j+1+k != len(body) {
		return nil, false
	}
	return data, true
}

// Reset discards the aggregate being built and keeps the buffers.
func (a *Aggregator) Reset() {
	a.pkTable = a.pkTable[:0]
	a.ehkTable = a.ehkTable[:0]
	if a.buf != nil {
		a.buf = a.buf[:a.gap]
	}
	if a.nPK > 0 {
		if len(a.pkSlots) > 8*max(a.nPK, minPKSlots) {
			// Sized by a far larger aggregate; clearing it for every small one would cost
			// more than growing it again.
			a.pkSlots, a.pkHashes = nil, nil
		} else {
			clear(a.pkSlots)
			a.pkHashes = a.pkHashes[:0]
		}
		clear(a.pkKeys) // let the keys go
		a.pkKeys = a.pkKeys[:0]
	}
	if a.nEHK > 0 {
		clear(a.ehkIndex)
	}
	a.lastPK, a.lastPKAt = "", 0
	a.deferred = 0
	a.nPK, a.nEHK = 0, 0
	a.n, a.nNoEHK = 0, 0
	a.placeholder = false
	a.shiftGrowth = 0
	a.firstPK, a.firstEHK = "", ""
}
