package aggregation

import (
	"crypto/md5"
	"fmt"
)

// Template is an aggregate flushed from an Aggregator with DeferData set: the magic, the
// key tables and every record's framing, without the records' data. AppendTo makes the
// aggregate from it and the same records' data. A producer that holds sealed aggregates
// for a while (waiting for a shard's rate limit, or for room in a request) holds this
// instead of a second copy of every payload.
type Template struct {
	// PartitionKey and ExplicitHashKey are what the aggregate is put under, as in
	// KinesisRecord.
	PartitionKey    string
	ExplicitHashKey string
	// Records is the number of user records it carries.
	Records int
	// Size is the exact length of what AppendTo appends.
	Size int
	// Single reports that the Kinesis record is the one user record's data as it is
	// (UnwrapSingle): AppendTo appends that data alone.
	Single bool

	head   []byte // magic and key tables
	frames []byte // each record's encoding with its data left out
	buffer []byte
}

// Buffer returns the buffer the template is kept in, emptied, to give back to
// FlushTemplate once the aggregate has been made for the last time.
func (t *Template) Buffer() []byte { return t.buffer }

// FlushTemplate returns the aggregate being built as a Template and resets the
// Aggregator, which starts its next aggregate in spare (when not nil). It returns false
// when the aggregate is empty. The Aggregator must have DeferData set.
func (a *Aggregator) FlushTemplate(spare []byte) (Template, bool) {
	if !a.DeferData {
		panic("aggregation: FlushTemplate of an Aggregator without DeferData")
	}
	if a.n == 0 {
		return Template{}, false
	}
	t := Template{PartitionKey: a.firstPK, ExplicitHashKey: a.firstEHK, Records: a.n, Size: a.Size()}
	a.lastSize, a.lastBuf = t.Size, len(a.buf)-a.gap
	if a.UnwrapSingle && a.n == 1 && a.singleFrame() {
		t.Single = true
		t.Size = a.deferred
		t.buffer = a.buf[:0]
	} else {
		start := a.writeHead()
		b := a.buf
		t.head, t.frames, t.buffer = b[start:a.gap], b[a.gap:], b[:0]
	}
	a.handOver(spare)
	return t, true
}

// singleFrame reports whether the only record's frame has nothing after its data (no
// tags), so that its data alone can stand for the aggregate.
func (a *Aggregator) singleFrame() bool {
	f := a.buf[a.gap:]
	_, n := consumeVarint(f[1:])
	cut, _ := frameSplit(f[1+n:])
	return 1+n+cut == len(f)
}

// frameSplit reads the body of a record frame, from its partition key index field on, with
// its data left out: it returns the length of the fields before the data (through the data
// field's length varint) and the data's length.
func frameSplit(body []byte) (beforeData, dataLen int) {
	_, m := consumeVarint(body[1:])
	j := 1 + m
	if body[j] == tagExplicitHashKeyIndex {
		_, k := consumeVarint(body[j+1:])
		j += 1 + k
	}
	l, k := consumeVarint(body[j+1:])
	return j + 1 + k, int(l)
}

// deferredDataLen returns the length of the data field of a record frame whose body starts
// rec.
func deferredDataLen(rec []byte) int {
	_, l := frameSplit(rec)
	return l
}

// DataChangedError reports that a record's data changed length between Add and
// Template.AppendTo, which the aggregate's framing cannot follow.
type DataChangedError struct {
	Record     int // position in the aggregate, from zero
	Added, Now int // data lengths at Add and at AppendTo
}

func (e *DataChangedError) Error() string {
	return fmt.Sprintf("aggregation: record %d's data changed from %d to %d bytes after it was added", e.Record, e.Added, e.Now)
}

// AppendTo appends the aggregate to dst: Size bytes, taking record i's data from data(i),
// with the MD5 checksum written when checksum is true and left zero (for a Checksummer)
// otherwise. A record whose data changed length since it was added gets a
// *DataChangedError; the aggregate appended is then still well formed, with that record's
// data cut or padded with zeros to its length at Add.
func (t *Template) AppendTo(dst []byte, data func(i int) []byte, checksum bool) ([]byte, error) {
	if t.Single {
		d := data(0)
		if len(d) != t.Size {
			return appendFitted(dst, d, t.Size), &DataChangedError{Added: t.Size, Now: len(d)}
		}
		return append(dst, d...), nil
	}
	var err error
	base := len(dst)
	dst = append(dst, t.head...)
	f := t.frames
	for i := 0; len(f) > 0; i++ {
		l, n := consumeVarint(f[1:])
		before, dl := frameSplit(f[1+n:])
		cut := 1 + n + before      // frame bytes up to the data
		end := 1 + n + int(l) - dl // the frame's bytes, tags included
		dst = append(dst, f[:cut]...)
		d := data(i)
		if len(d) != dl {
			if err == nil {
				err = &DataChangedError{Record: i, Added: dl, Now: len(d)}
			}
			dst = appendFitted(dst, d, dl)
		} else {
			dst = append(dst, d...)
		}
		dst = append(dst, f[cut:end]...) // tags
		f = f[end:]
	}
	var sum [ChecksumSize]byte
	if checksum {
		sum = md5.Sum(dst[base+len(Magic):])
	}
	return append(dst, sum[:]...), err
}

// appendFitted appends d cut or zero-padded to n bytes.
func appendFitted(dst, d []byte, n int) []byte {
	if len(d) >= n {
		return append(dst, d[:n]...)
	}
	dst = append(dst, d...)
	return append(dst, make([]byte, n-len(d))...)
}
