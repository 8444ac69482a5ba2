package agent

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Entry states in a file's window of records.
const (
	entryInFlight uint8 = iota
	entryDone
	entryFailed // waiting for a re-send
)

// entry is one record between being read and being acknowledged, or a stretch of the file
// that produced no record (a header line, a line a parser rejected), which is born done.
type entry struct {
	end     int64  // file offset just past the record's bytes
	rec     Record // kept for a re-send
	ch      *chunk // read buffer the record points into, or nil
	charge  int64  // bytes charged to the budget for records that own their data
	record  bool   // false for a stretch without a record
	attempt uint32
	state   uint8
}

// hooks are what a file's window needs from the agent: the budget it returns memory to and
// the queue of re-sends. They are the agent's, not a flow's, so a window outlives a reload.
type hooks struct {
	budget      *budget
	retry       func(st *fileState, seq uint64, attempt uint32, rec Record, delay time.Duration)
	outstanding func(delta int64)
	acked       func(st *fileState, rec *Record)
	failed      func(st *fileState, rec *Record, err error)
}

// fileState is everything the agent knows about one file of one flow: where it is, what it
// looks like, and how far it has been read and acknowledged. The window tracks records in
// the order they were read; acknowledgements arrive in any order, and the checkpoint
// (committed) advances only over the contiguous prefix that is done.
type fileState struct {
	h       *hooks
	m       *flowMetrics
	flowKey string
	id      FileID

	// active is when the file last grew (unix nanoseconds), for choosing the file to close
	// at MaxOpenFiles.
	active atomic.Int64

	mu   sync.Mutex
	cond *sync.Cond // signalled when the window empties

	path string
	fp   fingerprint
	// prev are the contents the file had before its last truncations, newest first, with the
	// position reading stopped at, to resume a copy of them (copytruncate). A few are kept
	// because a copy may be found only after the file was truncated again.
	prev []prevContent
	// switches are the truncations whose old content still has records in the window, oldest
	// first. The reader goes on with the new content at once; the checkpoint stays with the
	// oldest content that has records in flight until they are all acknowledged.
	switches []contentSwitch
	// draining is set while switches is not empty: a copy of truncated content must wait,
	// since where it starts depends on what of that content turns out delivered.
	draining bool
	inGlob   bool
	open     bool // a reader holds the file
	lastSeen time.Time

	committed int64 // everything before this offset was delivered
	next      int64 // where reading resumes: the end of the last record handed out

	ring []entry
	head int
	n    int
	base uint64 // sequence number of ring[head]

	backoff    time.Duration
	minBackoff time.Duration
	maxBackoff time.Duration

	wake chan struct{} // pokes the reader: new data, or the file moved
}

func newFileState(h *hooks, flowKey string, id FileID, path string) *fileState {
	st := &fileState{h: h, flowKey: flowKey, id: id, path: path, wake: make(chan struct{}, 1),
		minBackoff: DefaultRetryInitialBackoff, maxBackoff: DefaultRetryMaxBackoff}
	st.cond = sync.NewCond(&st.mu)
	return st
}

func (st *fileState) poke() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

func (st *fileState) at(seq uint64) *entry {
	return &st.ring[(st.head+int(seq-st.base))%len(st.ring)]
}

func (st *fileState) grow() {
	size := 2 * len(st.ring)
	if size == 0 {
		size = 64
	}
	nr := make([]entry, size)
	for i := 0; i < st.n; i++ {
		nr[i] = st.ring[(st.head+i)%len(st.ring)]
	}
	st.ring, st.head = nr, 0
}

// push adds a record about to be sent and returns the sequence number and attempt its Ack
// carries.
func (st *fileState) push(rec Record, end int64, ch *chunk, charge int64) (uint64, uint32) {
	st.mu.Lock()
	if st.n == len(st.ring) {
		st.grow()
	}
	seq := st.base + uint64(st.n)
	st.n++
	*st.at(seq) = entry{end: end, rec: rec, ch: ch, charge: charge, record: true}
	st.next = end
	st.mu.Unlock()
	return seq, 0
}

// unpush takes back the last record when the sink did not accept it, so reading resumes at
// that record.
func (st *fileState) unpush(seq uint64) {
	st.mu.Lock()
	e := *st.at(seq)
	*st.at(seq) = entry{}
	st.n--
	st.next = e.rec.Offset
	empty := st.n == 0
	st.mu.Unlock()
	st.releaseEntry(&e)
	if empty {
		st.cond.Broadcast()
	}
}

// skip moves past a stretch that produced no record. With nothing in flight the checkpoint
// moves at once; otherwise a done entry keeps the stretch in order behind the records before it.
func (st *fileState) skip(end int64) {
	st.mu.Lock()
	st.next = end
	if st.n == 0 {
		st.committed = end
		st.mu.Unlock()
		return
	}
	last := st.at(st.base + uint64(st.n) - 1)
	if !last.record && last.state == entryDone {
		last.end = end // merge runs of skipped lines
		st.mu.Unlock()
		return
	}
	if st.n == len(st.ring) {
		st.grow()
	}
	seq := st.base + uint64(st.n)
	st.n++
	*st.at(seq) = entry{end: end, state: entryDone}
	st.mu.Unlock()
}

// ack records the outcome of one send. Stale calls (a second Done, or one for an attempt that
// was superseded) are ignored.
func (st *fileState) ack(seq uint64, attempt uint32, err error) {
	st.mu.Lock()
	if seq < st.base || seq >= st.base+uint64(st.n) {
		st.mu.Unlock()
		return
	}
	e := st.at(seq)
	if !e.record || e.attempt != attempt || e.state != entryInFlight {
		st.mu.Unlock()
		return
	}
	st.h.outstanding(-1)
	if err != nil {
		e.state = entryFailed
		e.attempt++
		if st.backoff == 0 {
			st.backoff = st.minBackoff
		}
		delay := st.backoff
		st.backoff = min(2*st.backoff, st.maxBackoff)
		rec, att := e.rec, e.attempt
		st.mu.Unlock()
		st.h.failed(st, &rec, err)
		st.h.retry(st, seq, att, rec, delay)
		return
	}
	e.state = entryDone
	st.backoff = 0
	st.h.acked(st, &e.rec)
	for st.n > 0 {
		if len(st.switches) > 0 {
			st.settleSwitchesLocked()
		}
		f := &st.ring[st.head]
		if f.state != entryDone {
			break
		}
		st.committed = f.end
		if f.record {
			st.releaseEntry(f) // takes only the budget's lock, which never waits on a file's
		}
		*f = entry{}
		st.head = (st.head + 1) % len(st.ring)
		st.n--
		st.base++
	}
	if len(st.switches) > 0 {
		st.settleSwitchesLocked()
	}
	empty := st.n == 0
	st.mu.Unlock()
	if empty {
		st.cond.Broadcast()
	}
}

func (st *fileState) releaseEntry(e *entry) {
	if e.ch != nil {
		e.ch.release()
	}
	st.h.budget.release(e.charge, 1)
}

// beginResend marks a failed record in flight again; false means it no longer needs sending.
func (st *fileState) beginResend(seq uint64, attempt uint32) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if seq < st.base || seq >= st.base+uint64(st.n) {
		return false
	}
	e := st.at(seq)
	if e.state != entryFailed || e.attempt != attempt {
		return false
	}
	e.state = entryInFlight
	st.h.outstanding(1)
	return true
}

// abortResend puts a record back to failed when the sink would not take the re-send (the
// agent is stopping); the checkpoint stays before it, so it is sent again after a restart.
func (st *fileState) abortResend(seq uint64, attempt uint32) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if seq < st.base || seq >= st.base+uint64(st.n) {
		return
	}
	e := st.at(seq)
	if e.attempt == attempt && e.state == entryInFlight {
		e.state = entryFailed
		st.h.outstanding(-1)
	}
}

// waitDrained blocks until every record of the window is acknowledged, or ctx ends.
func (st *fileState) waitDrained(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		st.mu.Lock()
		st.cond.Broadcast()
		st.mu.Unlock()
	})
	defer stop()
	st.mu.Lock()
	defer st.mu.Unlock()
	for st.n > 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		st.cond.Wait()
	}
	return nil
}

func (st *fileState) inFlight() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.n
}

// position returns the checkpoint and the resume point.
func (st *fileState) position() (committed, next int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.committed, st.next
}

// entryLocked is the file's checkpoint; st.mu must be held.
func (st *fileState) entryLocked() checkpointEntry {
	fp := st.fp
	if len(st.switches) > 0 {
		// The checkpoint still counts in the content before the oldest pending truncation. A
		// restart finds the file's start changed, reads the new content from its start, and
		// resumes a copy of the old content, if one is found, at this offset.
		fp = st.switches[0].fp
	}
	e := checkpointEntry{
		Flow: st.flowKey, Path: st.path, Dev: st.id.Dev, Ino: st.id.Ino,
		FingerprintLen: fp.len(), Fingerprint: fp.hash(), Offset: st.committed,
		LastSeen: st.lastSeen.UTC().Truncate(time.Second),
	}
	if len(st.prev) > 0 {
		e.PrevFingerprint, e.PrevOffset = st.prev[0].hash, st.prev[0].off
	}
	return e
}

// contentSwitch is a truncation seen while records of the content before it were still in
// flight: the records from sequence number seq on belong to the new content, fp is the old
// content's fingerprint and off the position reading of it stopped at.
type contentSwitch struct {
	seq uint64
	fp  fingerprint
	off int64
}

// switchContentLocked starts new content (after a truncation) without waiting for the records
// of the old one: they stay in the window and are acknowledged or re-sent as before, and the
// checkpoint keeps counting in the old content until they are all done, so it never names an
// offset of one content with the fingerprint of another. The Amazon Kinesis Agent's
// SourceFileTracker (onTruncationWithoutRotation, a tracking anomaly that resets tailing to
// the newest file from its start) does not wait for the old records either.
// st.mu must be held.
func (st *fileState) switchContentLocked(fp fingerprint) {
	st.switches = append(st.switches, contentSwitch{seq: st.base + uint64(st.n), fp: st.fp, off: st.next})
	st.fp, st.next = fp, 0
	st.settleSwitchesLocked()
}

// settleSwitchesLocked moves the checkpoint to the content after each truncation whose older
// records are all acknowledged; st.mu must be held.
func (st *fileState) settleSwitchesLocked() {
	for len(st.switches) > 0 && st.switches[0].seq <= st.base {
		s := st.switches[0]
		st.switches = st.switches[1:]
		st.addPrevLocked(s.fp, "", s.off)
		st.committed = 0
	}
	if len(st.switches) == 0 {
		st.switches = nil
	}
	st.draining = len(st.switches) > 0
}

// prevContent is content a file had before a truncation: the hash of its full fingerprint and
// where reading of it stopped.
type prevContent struct {
	hash string
	off  int64
}

const maxPrevContents = 4

// addPrev remembers replaced content; st.mu must be held. Content whose fingerprint is not
// full cannot be recognised in a copy, so it is not kept.
func (st *fileState) addPrevLocked(fp fingerprint, hash string, off int64) {
	if hash == "" {
		if !fp.full() {
			return
		}
		hash = fp.hash()
	}
	st.prev = append([]prevContent{{hash: hash, off: off}}, st.prev...)
	if len(st.prev) > maxPrevContents {
		st.prev = st.prev[:maxPrevContents]
	}
}
