package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"regexp"
	"time"
)

const (
	minChunk = 4 << 10
	maxChunk = 64 << 10
	// maxOrphanGrace is the longest a file that left the pattern (deleted, or renamed to a name
	// the pattern does not match) stays open after its last growth. Writers that still hold the
	// old file usually stop within moments of a rotation.
	maxOrphanGrace = 5 * time.Second
	// fpRecheck is how often an idle file's start is compared with its fingerprint, to notice a
	// copytruncate that left the size unchanged.
	fpRecheck = time.Second
	// maxIdlePoll is the longest wait between two checks of an open file that does not grow,
	// when file system events report its writes: it bounds how late a missed event, a
	// truncation that kept the size, or an inactivity deadline is noticed.
	maxIdlePoll = time.Second
)

// tailer reads one open file from its state's resume point: it cuts lines, hands them to the
// flow's framing (header lines, multi-line records) and processing, and sends the records. It
// notices truncation, the file leaving the pattern, and inactivity, and returns when the file
// should be closed or its context ends.
type tailer struct {
	ctx  context.Context
	a    *Agent
	fr   *flowRunner
	st   *fileState
	f    *os.File
	log  *slog.Logger
	flow *Flow

	proc    *processor
	pk      partitioner
	multi   *regexp.Regexp
	maxLine int
	path    string
	fp      fingerprint
	scratch []byte

	cur       *chunk
	used      int
	lineStart int
	scanFrom  int
	lineOff   int64 // file offset of cur.buf[lineStart]

	headerLeft int
	discarding bool   // inside a line longer than a record; its start is in long
	long       []byte // the kept start of that line
	longStart  int64

	pend      []byte // multi-line record being gathered
	pendStart int64
	pendEnd   int64
	pendAt    time.Time

	lastGrowth  time.Time
	lastSize    int64
	lastFPCheck time.Time

	nLines, nRecords, nTruncated, nParseErrors int64
	warnedParse                                bool
}

func (fr *flowRunner) newTailer(ctx context.Context, st *fileState, f *os.File) *tailer {
	t := &tailer{
		ctx: ctx, a: fr.a, fr: fr, st: st, f: f, flow: &fr.flow,
		pk:      partitioner{opt: fr.flow.PartitionKeyOption, field: fr.flow.PartitionKeyField},
		multi:   fr.multi,
		maxLine: fr.flow.MaxRecordSizeBytes,
		scratch: make([]byte, FingerprintSize),
	}
	if len(fr.flow.DataProcessingOptions) > 0 {
		t.proc, _ = newProcessorWith(fr.flow.DataProcessingOptions, fr.a.ec2) // validated with the configuration
	}
	st.mu.Lock()
	t.path, t.fp = st.path, st.fp
	start := st.next
	st.mu.Unlock()
	t.log = fr.log.With("path", t.path)
	t.reset(start)
	return t
}

func (t *tailer) reset(pos int64) {
	if t.cur != nil {
		t.cur.release()
		t.cur = nil
	}
	t.used, t.lineStart, t.scanFrom = 0, 0, 0
	t.lineOff = pos
	t.discarding, t.long = false, nil
	t.pend = nil
	t.headerLeft = 0
	if pos == 0 {
		t.headerLeft = t.flow.SkipHeaderLines
	}
	t.lastGrowth = time.Now()
}

func (t *tailer) readPos() int64 { return t.lineOff + int64(t.used-t.lineStart) }

// run is the reader's loop. It returns when the file should be closed; the state keeps what
// was read, so a later reader resumes where this one stopped.
func (t *tailer) run() {
	defer func() {
		if t.cur != nil {
			t.cur.release()
			t.cur = nil
		}
		t.flushStats()
	}()
	if _, err := t.f.Seek(t.lineOff, io.SeekStart); err != nil {
		t.log.Error("cannot seek in file", "offset", t.lineOff, "err", err)
		return
	}
	if !t.verify() && !t.truncated("its start no longer matches its fingerprint") {
		return
	}
	timer := time.NewTimer(t.flow.MinTimeBetweenFilePolls)
	defer timer.Stop()
	// An idle file is checked less and less often, up to maxIdlePoll, where file system
	// events wake its reader on a write (Filebeat's and Vector's readers back off the same
	// way); without them, polling is the only way to see growth and stays at
	// minTimeBetweenFilePollsMillis.
	poll := t.flow.MinTimeBetweenFilePolls
	maxPoll := poll
	if t.fr.watcher != nil {
		maxPoll = max(poll, maxIdlePoll)
	}
	for {
		if t.ctx.Err() != nil {
			return
		}
		n, err := t.readOnce()
		if err != nil && !errors.Is(err, io.EOF) {
			if t.ctx.Err() == nil {
				t.log.Error("cannot read file; it will be opened again at the next scan", "err", err)
			}
			return
		}
		if n > 0 {
			poll = t.flow.MinTimeBetweenFilePolls
			continue
		}
		t.flushStats()
		t.a.stats.idlePolls.Add(1)
		if stop := t.atEOF(); stop {
			return
		}
		timer.Reset(poll)
		select {
		case <-t.ctx.Done():
			return
		case <-t.st.wake:
			poll = t.flow.MinTimeBetweenFilePolls
		case <-timer.C:
			poll = min(2*poll, maxPoll)
		}
	}
}

// readOnce reads what fits in the current buffer and sends the complete lines in it.
func (t *tailer) readOnce() (int, error) {
	if t.cur == nil || t.used == len(t.cur.buf) {
		if err := t.nextChunk(); err != nil {
			return 0, err
		}
	}
	n, err := t.f.Read(t.cur.buf[t.used:])
	if n <= 0 {
		return n, err
	}
	if !t.verify() {
		// The bytes just read may belong to new content written after a truncation; they are
		// read again from the start of the new content.
		if !t.truncated("its start changed while it was read") {
			return 0, t.ctx.Err()
		}
		return n, nil
	}
	t.used += n
	t.lastGrowth = time.Now()
	t.st.active.Store(t.lastGrowth.UnixNano())
	if err := t.scan(); err != nil {
		return 0, err
	}
	return n, nil
}

// nextChunk replaces a full (or missing) buffer, carrying over the partial line at its end.
func (t *tailer) nextChunk() error {
	keep := 0
	if t.cur != nil {
		keep = t.used - t.lineStart
	}
	if keep >= t.maxLine && !t.discarding {
		// The line cannot fit in a record: keep its start, drop the rest up to its newline.
		t.long = append([]byte(nil), t.cur.buf[t.lineStart:t.lineStart+t.maxLine]...)
		t.longStart = t.lineOff
		t.discarding = true
	}
	if t.discarding {
		t.lineOff += int64(keep)
		keep = 0
	}
	size := maxChunk
	if rem := t.lastSize - t.readPos(); rem >= 0 && rem < maxChunk {
		size = max(int(rem)+keep+1, minChunk)
	}
	if keep > 0 && size < 2*keep {
		size = min(2*keep, t.maxLine+1)
	}
	size = max(size, keep+minChunk/4)
	size = min(size, max(maxChunk, t.maxLine+1))
	if !t.a.budget.tryAcquire(int64(size), 0) {
		t.a.underPressure()
		if err := t.a.budget.acquire(t.ctx, int64(size), 0); err != nil {
			return err
		}
	}
	// A buffer is reused only when nothing but the sink's records points into it: processing
	// steps may return their input, and the records they make do not keep the buffer.
	c := newChunk(t.a.budget, size, t.a.reuseChunks && t.proc == nil)
	if keep > 0 {
		copy(c.buf, t.cur.buf[t.lineStart:t.used])
	}
	if t.cur != nil {
		t.cur.release()
	}
	t.cur, t.used, t.lineStart, t.scanFrom = c, keep, 0, keep
	return nil
}

// scan hands every complete line of the buffer on.
func (t *tailer) scan() error {
	buf := t.cur.buf
	for {
		i := bytes.IndexByte(buf[t.scanFrom:t.used], '\n')
		if i < 0 {
			t.scanFrom = t.used
			break
		}
		nl := t.scanFrom + i
		end := t.lineOff + int64(nl+1-t.lineStart)
		var err error
		if t.discarding {
			long := t.long
			t.long, t.discarding = nil, false
			err = t.line(long, t.longStart, end, nil)
		} else {
			err = t.line(buf[t.lineStart:nl+1:nl+1], t.lineOff, end, t.cur)
		}
		t.lineOff, t.lineStart, t.scanFrom = end, nl+1, nl+1
		if err != nil {
			return err
		}
	}
	if t.discarding {
		t.lineOff += int64(t.used - t.lineStart)
		t.lineStart = t.used
	}
	return nil
}

// line takes one complete line (or a line cut at the record size) through header skipping
// and multi-line gathering.
func (t *tailer) line(data []byte, start, end int64, ch *chunk) error {
	t.nLines++
	if t.headerLeft > 0 {
		t.headerLeft--
		t.st.skip(end)
		return nil
	}
	if t.multi == nil {
		return t.emit(data, start, end, ch)
	}
	if t.pend == nil || t.multi.Match(stripNewline(data)) {
		if t.pend != nil {
			if err := t.flushPending(); err != nil {
				return err
			}
		}
		t.pend = append(make([]byte, 0, len(data)), data...)
		t.pendStart = start
	} else {
		room := t.maxLine + 1 - len(t.pend) // one byte over the limit marks it for truncation
		if room > 0 {
			t.pend = append(t.pend, data[:min(len(data), room)]...)
		}
	}
	t.pendEnd, t.pendAt = end, time.Now()
	return nil
}

func (t *tailer) flushPending() error {
	data := t.pend
	t.pend = nil
	return t.emit(data, t.pendStart, t.pendEnd, nil)
}

// emit processes one record and sends it. ch is the read buffer data points into, or nil when
// data is the record's own.
func (t *tailer) emit(data []byte, start, end int64, ch *chunk) error {
	var fields []field
	if t.proc != nil {
		out, ok := t.proc.run(data)
		if !ok {
			t.nParseErrors++
			t.st.skip(end)
			if !t.warnedParse {
				t.warnedParse = true
				t.log.Warn("a line does not have the flow's log format and is not sent (further ones are only counted)", "offset", start)
			}
			return nil
		}
		data, ch, fields = out, nil, t.proc.fields
	}
	var key string
	if t.flow.DeliveryStream == "" { // Firehose records have no partition key
		key = t.pk.key(data, fields)
	}
	if limit := t.maxLine - len(key); len(data) > limit {
		data = truncateRecord(data, limit, t.flow.TruncatedRecordTerminator)
		t.nTruncated++
	}
	var charge int64
	if ch == nil {
		charge = int64(len(data))
	}
	rec := Record{Stream: t.flow.KinesisStream, DeliveryStream: t.flow.DeliveryStream, PartitionKey: key, Data: data, Path: t.path, File: t.st.id, Offset: start}
	if !t.a.budget.tryAcquire(charge, 1) {
		t.flushStats() // the wait may be long; counters should not lag behind it
		t.a.underPressure()
		if err := t.a.budget.acquire(t.ctx, charge, 1); err != nil {
			return err
		}
	}
	if ch != nil {
		ch.retain()
	}
	seq, att := t.st.push(rec, end, ch, charge)
	t.a.outstanding.Add(1)
	if err := t.a.sink.Send(t.ctx, rec, Ack{st: t.st, seq: seq, attempt: att}); err != nil {
		t.a.outstanding.Add(-1)
		t.st.unpush(seq)
		if t.ctx.Err() == nil {
			t.log.Error("the sink refused a record; the file will be read again from it", "err", err)
		}
		return err
	}
	t.nRecords++
	return nil
}

// verify compares the file's start with its fingerprint, extending the fingerprint while the
// file is shorter than FingerprintSize.
func (t *tailer) verify() bool {
	same, grown, err := fpCheck(t.f, t.fp, t.scratch)
	if err != nil {
		return true // a read error shows up on the next read, with a better message
	}
	if !same {
		return false
	}
	if grown.len() > t.fp.len() {
		t.fp = grown
		t.st.mu.Lock()
		t.st.fp = grown
		t.st.mu.Unlock()
	}
	t.lastFPCheck = time.Now()
	return true
}

// truncated restarts reading at the start of new content, at once: the records of the old
// content stay in the file's window until they are acknowledged (or re-sent), and the
// checkpoint stays with the old content until then (see switchContentLocked). Waiting for them
// instead would leave the new content unread for as long as delivery takes, up to the sink's
// buffer age, and a further truncation meanwhile would destroy it unread. A multi-line record
// being gathered is complete, since the old content cannot grow any more, and is sent first;
// a last line without a newline is not: a copy of the old content (copytruncate) resumes at
// it.
func (t *tailer) truncated(why string) bool {
	t.log.Info("file truncated or replaced; reading it again from its start", "reason", why, "offset", t.readPos())
	t.a.stats.truncations.Add(1)
	if t.pend != nil {
		if err := t.flushPending(); err != nil {
			return false
		}
	}
	t.reset(0)
	fp, err := readFingerprint(t.f)
	if err != nil {
		t.log.Error("cannot read file", "err", err)
		return false
	}
	if _, err := t.f.Seek(0, io.SeekStart); err != nil {
		t.log.Error("cannot seek in file", "err", err)
		return false
	}
	t.st.mu.Lock()
	t.st.switchContentLocked(fp)
	t.st.mu.Unlock()
	t.fp = fp
	t.lastSize = 0
	return true
}

// atEOF decides what to do when a read found nothing new: notice truncation, send a partial
// line or a pending multi-line record that waited long enough, and close a file that left the
// pattern or went quiet. It returns true when the reader should stop.
func (t *tailer) atEOF() bool {
	now := time.Now()
	fi, err := t.f.Stat()
	if err != nil {
		t.log.Error("cannot stat open file", "err", err)
		return true
	}
	size := fi.Size()
	pos := t.readPos()
	if size < pos {
		return !t.truncated("it is shorter than the position read")
	}
	if size != t.lastSize || now.Sub(t.lastFPCheck) >= fpRecheck {
		if !t.verify() {
			return !t.truncated("its start no longer matches its fingerprint")
		}
	}
	t.lastSize = size
	if size > pos {
		return false // grew since the read
	}
	t.st.mu.Lock()
	inGlob, path := t.st.inGlob, t.st.path
	t.st.mu.Unlock()
	if path != t.path {
		t.path = path
		t.log = t.fr.log.With("path", path)
	}
	idle := now.Sub(t.lastGrowth)
	partial := t.discarding || (t.cur != nil && t.used > t.lineStart)
	// A file that left the pattern is closed soon after its last growth: writers that still
	// hold a rotated file usually stop within moments. One that ends mid-line is given
	// PartialLineTimeout to finish the line first.
	orphan := !inGlob && idle >= min(maxOrphanGrace, t.flow.CloseInactive) &&
		(!partial || idle >= t.flow.PartialLineTimeout)
	inactive := idle >= t.flow.CloseInactive && (!partial || idle >= t.flow.PartialLineTimeout)
	if partial && (orphan || inactive) {
		// The file is being closed: what it ends with is sent as it is rather than held.
		if err := t.flushPartial(); err != nil {
			return true
		}
		partial = false
	}
	if t.pend != nil && (now.Sub(t.pendAt) >= t.flow.MultiLineTimeout || orphan) {
		if err := t.flushPending(); err != nil {
			return true
		}
	}
	if orphan {
		t.log.Debug("closing file that no longer matches the pattern, read to its end")
		return true
	}
	partial = partial || t.pend != nil
	if !partial && t.cur != nil {
		// Nothing waits in the buffer: give it back, so idle files hold no memory.
		t.cur.release()
		t.cur, t.used, t.lineStart, t.scanFrom = nil, 0, 0, 0
	}
	if !partial && inactive {
		t.log.Debug("closing inactive file; it is opened again when it changes")
		return true
	}
	return false
}

// flushPartial sends a last line that has no newline yet, with one added.
func (t *tailer) flushPartial() error {
	if t.discarding {
		long := t.long
		end := t.readPos()
		t.long, t.discarding = nil, false
		t.lineOff, t.lineStart = end, t.used
		return t.line(long, t.longStart, end, nil)
	}
	if t.cur == nil || t.used == t.lineStart {
		return nil
	}
	data := make([]byte, 0, t.used-t.lineStart+1)
	data = append(append(data, t.cur.buf[t.lineStart:t.used]...), '\n')
	start, end := t.lineOff, t.readPos()
	t.lineOff, t.lineStart, t.scanFrom = end, t.used, t.used
	return t.line(data, start, end, nil)
}

func (t *tailer) flushStats() {
	s := &t.a.stats
	m := t.fr.m
	if t.nLines > 0 {
		s.linesRead.Add(t.nLines)
		m.linesRead.Add(t.nLines)
	}
	if t.nRecords > 0 {
		s.recordsSent.Add(t.nRecords)
		m.attempts.Add(t.nRecords)
	}
	if t.nTruncated > 0 {
		s.truncated.Add(t.nTruncated)
	}
	if t.nParseErrors > 0 {
		s.parseErrors.Add(t.nParseErrors)
	}
	t.nLines, t.nRecords, t.nTruncated, t.nParseErrors = 0, 0, 0, 0
}
