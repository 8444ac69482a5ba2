package agent

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// flowStates is what the agent knows about one flow's files. It belongs to the agent, not to
// the flow's runner, so a reload that restarts the runner keeps every position.
type flowStates struct {
	key string
	m   *flowMetrics

	mu     sync.Mutex
	byID   map[FileID]*fileState
	byPath map[string]*fileState
	// loaded are checkpoints of files not found yet: found again, a file resumes from its
	// checkpoint; never found, the entry expires after the checkpoint time to live.
	loaded []checkpointEntry
	// known says the flow ran before (it is in the checkpoint file), so a file without a
	// checkpoint is new and is read from its start whatever initialPosition says.
	known bool
}

func newFlowStates(key string, m *flowMetrics) *flowStates {
	return &flowStates{key: key, m: m, byID: map[FileID]*fileState{}, byPath: map[string]*fileState{}}
}

// flowRunner runs one flow: the scanner that matches the pattern (on file system events and
// every rescan interval) and a tailer for each open file.
type flowRunner struct {
	a     *Agent
	flow  Flow
	key   string
	g     *glob
	ff    *fileFilter
	multi *regexp.Regexp
	fs    *flowStates
	m     *flowMetrics
	log   *slog.Logger

	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	tailers sync.WaitGroup
	scanNow chan struct{}

	// reported remembers the last problem logged per path, so a file that cannot be read is
	// reported once, not at every rescan.
	reported  map[string]string
	copyWaits map[FileID]time.Time
	watched   map[string]bool
	watcher   *fsnotify.Watcher
	lastN     int
	// emptySince is when the pattern last started matching no file; warnedEmpty says the
	// warning for that stretch was logged.
	emptySince  time.Time
	warnedEmpty bool
}

// noMatchWarning is how long a flow's pattern matches no file before a warning says so: a
// mistyped pattern ships nothing, and without the warning nothing says why. A rotation that
// leaves no file for a moment stays well under it.
var noMatchWarning = time.Minute

func (a *Agent) newFlowRunner(f Flow, fs *flowStates) (*flowRunner, error) {
	g, err := compileGlob(f.FilePattern)
	if err != nil {
		return nil, err
	}
	ff, err := newFileFilter(f.ExcludePatterns)
	if err != nil {
		return nil, err
	}
	fr := &flowRunner{a: a, flow: f, key: f.Key(), g: g, ff: ff, fs: fs, m: fs.m,
		log:     a.log.With("stream", f.KinesisStream, "filePattern", f.FilePattern),
		done:    make(chan struct{}),
		scanNow: make(chan struct{}, 1), reported: map[string]string{}, watched: map[string]bool{},
		copyWaits: map[FileID]time.Time{}}
	if f.MultiLineStartPattern != "" {
		if fr.multi, err = regexp.Compile(`^(?:` + f.MultiLineStartPattern + `)`); err != nil {
			return nil, err
		}
	}
	return fr, nil
}

func (fr *flowRunner) start(parent context.Context) {
	fr.ctx, fr.cancel = context.WithCancel(parent)
	go fr.run()
}

// stop ends the scanner and every tailer of the flow and waits for them.
func (fr *flowRunner) stop() {
	fr.cancel()
	<-fr.done
}

func (fr *flowRunner) requestScan() {
	select {
	case fr.scanNow <- struct{}{}:
	default:
	}
}

func (fr *flowRunner) run() {
	defer close(fr.done)
	defer fr.tailers.Wait()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		fr.log.Warn("file system events unavailable; new files are found by rescanning only", "err", err, "rescanInterval", fr.flow.RescanInterval)
	} else {
		fr.watcher = w
		defer w.Close()
	}
	fr.fs.mu.Lock()
	initial := !fr.fs.known
	fr.fs.mu.Unlock()
	fr.scan(initial)
	fr.fs.mu.Lock()
	fr.fs.known = true
	fr.fs.mu.Unlock()

	ticker := time.NewTicker(fr.flow.RescanInterval)
	defer ticker.Stop()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
		events, errs = w.Events, w.Errors
	}
	for {
		select {
		case <-fr.ctx.Done():
			return
		case <-ticker.C:
			fr.scan(false)
		case <-fr.scanNow:
			fr.scan(false)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			fr.event(ev)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// An overflow means events were lost; a rescan finds what they would have said.
			fr.log.Warn("file system events lost; rescanning", "err", err)
			fr.requestScan()
		}
	}
}

func (fr *flowRunner) event(ev fsnotify.Event) {
	fr.fs.mu.Lock()
	st := fr.fs.byPath[ev.Name]
	fr.fs.mu.Unlock()
	closed := false
	if st != nil {
		st.mu.Lock()
		closed = !st.open
		st.mu.Unlock()
		st.poke()
	}
	// A write to a file nobody reads (new, or closed as inactive) needs the scanner to open it.
	if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Remove) ||
		(ev.Has(fsnotify.Write) && (closed || st == nil && fr.g.match(ev.Name) && fr.ff.excluded(ev.Name) == "")) {
		fr.requestScan()
	}
}

// scan matches the pattern, starts tailing new files, reopens inactive files that changed,
// and marks the files that are no longer matched.
func (fr *flowRunner) scan(initial bool) {
	seen := map[FileID]bool{}
	var matched, started int
	var paths []string
	dirs, err := fr.g.walk(func(path string) {
		if why := fr.ff.excluded(path); why != "" {
			fr.skipped(path, why)
			return
		}
		paths = append(paths, path)
	})
	matched = len(paths)
	// Files already known (open, or in the checkpoint) go first, so that a new file that looks
	// like a copy of one of them is judged with their current state.
	known, unknown := fr.partition(paths)
	for _, group := range [][]candidate{known, unknown} {
		for _, c := range group {
			if fr.consider(c, initial, seen) {
				started++
			}
		}
	}
	if err != nil {
		fr.report(fr.flow.FilePattern, "scan incomplete: "+err.Error())
	}
	if fr.watcher != nil {
		for _, d := range dirs {
			if fr.watched[d] {
				continue
			}
			if err := fr.watcher.Add(d); err != nil {
				fr.report(d, "cannot watch directory; relying on rescans: "+err.Error())
				continue
			}
			fr.watched[d] = true
		}
	}
	var gone []*fileState
	fr.fs.mu.Lock()
	for id, st := range fr.fs.byID {
		if seen[id] {
			continue
		}
		st.mu.Lock()
		was := st.inGlob
		st.inGlob = false
		idle := !st.open && st.n == 0
		st.mu.Unlock()
		if was {
			st.poke()
		}
		if idle {
			gone = append(gone, st)
		}
	}
	fr.fs.mu.Unlock()
	for _, st := range gone {
		fr.forget(st)
	}
	fr.noteMatches(len(paths))
	if started > 0 || matched != fr.lastN {
		fr.log.Debug("scanned", "matched", matched, "new", started)
		fr.lastN = matched
	}
	if len(fr.reported) > 10000 {
		clear(fr.reported) // bound the memory; problems still present are logged again
	}
}

// noteMatches warns once when the pattern has matched no file for noMatchWarning, and says
// when it matches files again.
func (fr *flowRunner) noteMatches(n int) {
	if n > 0 {
		if fr.warnedEmpty {
			fr.log.Info("filePattern matches files again", "files", n)
		}
		fr.emptySince, fr.warnedEmpty = time.Time{}, false
		return
	}
	now := time.Now()
	if fr.emptySince.IsZero() {
		fr.emptySince = now
	}
	if !fr.warnedEmpty && now.Sub(fr.emptySince) >= noMatchWarning {
		fr.warnedEmpty = true
		fr.log.Warn("filePattern matches no file; check the pattern, the directory and its permissions",
			"for", now.Sub(fr.emptySince).Round(time.Second), "directory", fr.g.base)
	}
}

// forget drops a file that is closed, fully acknowledged and no longer matched. Its
// checkpoint is kept among the loaded ones, in case the file comes back (a directory that was
// unmounted for a moment), until the checkpoint time to live ends.
func (fr *flowRunner) forget(st *fileState) {
	fr.fs.mu.Lock()
	defer fr.fs.mu.Unlock()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.open || st.n > 0 || st.inGlob || fr.fs.byID[st.id] != st {
		return
	}
	delete(fr.fs.byID, st.id)
	if fr.fs.byPath[st.path] == st {
		delete(fr.fs.byPath, st.path)
	}
	fr.fs.loaded = append(fr.fs.loaded, st.entryLocked())
	fr.a.archiveChanges.Add(1)
}

// candidate is a matched path and what stat said of it.
type candidate struct {
	path string
	fi   os.FileInfo
	err  error
}

func (fr *flowRunner) partition(paths []string) (known, unknown []candidate) {
	fr.fs.mu.Lock()
	ids := make(map[FileID]bool, len(fr.fs.byID)+len(fr.fs.loaded))
	for id := range fr.fs.byID {
		ids[id] = true
	}
	for _, e := range fr.fs.loaded {
		ids[FileID{Dev: e.Dev, Ino: e.Ino}] = true
	}
	fr.fs.mu.Unlock()
	for _, p := range paths {
		fi, err := os.Stat(p)
		c := candidate{path: p, fi: fi, err: err}
		if err == nil {
			if id, ok := fileIDOf(fi); ok && ids[id] {
				known = append(known, c)
				continue
			}
		}
		unknown = append(unknown, c)
	}
	return known, unknown
}

// consider looks at one matched path; it returns true when it started tailing a new file.
func (fr *flowRunner) consider(c candidate, initial bool, seen map[FileID]bool) bool {
	path, fi := c.path, c.fi
	if c.err != nil {
		return false // gone since the directory was read
	}
	if fi.IsDir() {
		fr.report(path, "matches the file pattern but is a directory; skipped")
		return false
	}
	if !fi.Mode().IsRegular() {
		fr.report(path, "matches the file pattern but is not a regular file; skipped")
		return false
	}
	id, ok := fileIDOf(fi)
	if !ok {
		fr.report(path, "file identity (device and inode) unavailable on this platform; skipped")
		return false
	}
	if seen[id] {
		return false // the same file under another name (a link)
	}
	seen[id] = true
	fr.fs.mu.Lock()
	st := fr.fs.byID[id]
	if st != nil && fr.reusedInode(st, path) {
		// A new file got the inode of one that is gone: the old file's state only waits
		// for its records' acknowledgements now, and the new file starts as any new file.
		fr.log.Debug("inode reused by a new file", "path", path, "was", st.path)
		delete(fr.fs.byID, id)
		if fr.fs.byPath[st.path] == st {
			delete(fr.fs.byPath, st.path)
		}
		st = nil
	}
	if st != nil {
		st.mu.Lock()
		old := st.path
		st.path, st.inGlob, st.lastSeen = path, true, time.Now()
		open, next := st.open, st.next
		st.mu.Unlock()
		if old != path {
			if fr.fs.byPath[old] == st {
				delete(fr.fs.byPath, old)
			}
			fr.log.Debug("file renamed", "from", old, "to", path)
		}
		fr.fs.byPath[path] = st
		fr.fs.mu.Unlock()
		if !open && fi.Size() != next {
			fr.reopen(st, path)
		}
		return false
	}
	fr.fs.mu.Unlock()
	return fr.startNew(path, id, initial)
}

// reusedInode tells a known file found under a new name apart from a new file that got the
// inode of one deleted after the agent closed it: a renamed file still starts with its
// fingerprint. The Amazon Kinesis Agent's TrackedFileRotationAnalyzer
// (syncCounterpartsByFileId) pairs files by FileId, the inode, alone, and so takes such a file
// for a rename; Filebeat's and Vector's fingerprint identities do not. A file found under its own
// name whose start changed is left to its reader, which takes it for a truncation, since
// that is what copytruncate does. fr.fs.mu is held; only a closed file can have lost its
// inode, so an open one is never read here.
func (fr *flowRunner) reusedInode(st *fileState, path string) bool {
	st.mu.Lock()
	open, old, fp := st.open, st.path, st.fp
	st.mu.Unlock()
	if open || old == path || fp.len() == 0 {
		return false
	}
	f, err := fr.a.open(path)
	if err != nil {
		return false // reported when it is opened
	}
	defer f.Close()
	same, _, err := fpCheck(f, fp, make([]byte, FingerprintSize))
	return err == nil && !same
}

func (fr *flowRunner) openChecked(path string, id FileID) (*os.File, os.FileInfo, bool) {
	f, err := fr.a.open(path)
	if err != nil {
		fr.report(path, "cannot open: "+err.Error())
		return nil, nil, false
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		fr.report(path, "cannot stat: "+err.Error())
		return nil, nil, false
	}
	if got, _ := fileIDOf(fi); got != id {
		f.Close() // replaced between the scan and the open; the next scan sees the new file
		fr.requestScan()
		return nil, nil, false
	}
	delete(fr.reported, path)
	return f, fi, true
}

func (fr *flowRunner) startNew(path string, id FileID, initial bool) bool {
	f, fi, ok := fr.openChecked(path, id)
	if !ok {
		return false
	}
	fp, err := readFingerprint(f)
	if err != nil {
		f.Close()
		fr.report(path, "cannot read: "+err.Error())
		return false
	}
	st := newFileState(&fr.a.hooks, fr.key, id, path)
	st.m = fr.m
	st.minBackoff, st.maxBackoff = fr.flow.RetryInitialBackoff, fr.flow.RetryMaxBackoff
	start, how := fr.startOffset(st, f, fi, fp, initial)
	if start == -2 {
		f.Close()
		return false
	}
	if start < 0 {
		f.Close()
		fr.report(path, "older than ignoreFilesOlderThanMillis; ignored")
		return false
	}
	st.fp = fp
	st.committed, st.next = start, start
	st.inGlob, st.open, st.lastSeen = true, true, time.Now()
	fr.fs.mu.Lock()
	fr.fs.byID[id] = st
	fr.fs.byPath[path] = st
	fr.fs.mu.Unlock()
	fr.a.stats.filesDiscovered.Add(1)
	fr.log.Debug("tailing file", "path", path, "offset", start, "from", how)
	fr.spawn(st, f)
	return true
}

func (fr *flowRunner) reopen(st *fileState, path string) {
	f, _, ok := fr.openChecked(path, st.id)
	if !ok {
		return
	}
	st.mu.Lock()
	if st.open {
		st.mu.Unlock()
		f.Close()
		return
	}
	st.open = true
	st.mu.Unlock()
	fr.spawn(st, f)
}

func (fr *flowRunner) spawn(st *fileState, f *os.File) {
	ctx, cancel := context.WithCancel(fr.ctx)
	r := &openReader{cancel: cancel, done: make(chan struct{})}
	st.active.Store(time.Now().UnixNano())
	fr.a.files.admit(fr.ctx, st, r, func() { fr.a.stats.filesEvicted.Add(1) })
	fr.tailers.Add(1)
	fr.a.stats.filesTailed.Add(1)
	fr.m.filesTailed.Add(1)
	go func() {
		defer fr.tailers.Done()
		fr.newTailer(ctx, st, f).run()
		cancel()
		f.Close()
		fr.a.stats.filesTailed.Add(-1)
		fr.m.filesTailed.Add(-1)
		fr.a.files.release(st, r)
		st.mu.Lock()
		st.open = false
		orphan := !st.inGlob && st.n == 0
		st.mu.Unlock()
		if orphan {
			fr.forget(st)
		}
	}()
}

// startOffset decides where a newly found file starts, and says why: its checkpoint; the
// position in content it is a copy of; or, for a file never seen, the initial position.
// It returns -1 for a file to ignore.
func (fr *flowRunner) startOffset(st *fileState, f *os.File, fi os.FileInfo, fp fingerprint, initial bool) (start int64, how string) {
	fr.fs.mu.Lock()
	defer fr.fs.mu.Unlock()
	consumed := -1 // the checkpoint of this inode, dropped once the file is taken on
	defer func() {
		if consumed >= 0 && start >= 0 {
			fr.fs.loaded = append(fr.fs.loaded[:consumed], fr.fs.loaded[consumed+1:]...)
			fr.a.archiveChanges.Add(1)
		}
	}()
	for i := range fr.fs.loaded {
		e := fr.fs.loaded[i]
		if e.Dev != st.id.Dev || e.Ino != st.id.Ino {
			continue
		}
		consumed = i
		if e.FingerprintLen <= fp.len() && hashOf(fp.b[:e.FingerprintLen]) == e.Fingerprint {
			if e.PrevFingerprint != "" {
				st.addPrevLocked(fingerprint{}, e.PrevFingerprint, e.PrevOffset)
			}
			return e.Offset, "checkpoint"
		}
		// The file was truncated (copytruncate) or its inode reused while the agent was
		// stopped. What the checkpoint says about the old content still serves to resume a
		// copy of it, if one is found.
		if e.PrevFingerprint != "" {
			st.addPrevLocked(fingerprint{}, e.PrevFingerprint, e.PrevOffset)
		}
		if e.FingerprintLen == FingerprintSize {
			st.addPrevLocked(fingerprint{}, e.Fingerprint, e.Offset)
		}
		break
	}
	if fp.full() {
		h := fp.hash()
		for _, s := range fr.fs.byID {
			s.mu.Lock()
			off, match, live, draining := int64(0), false, false, false
			for _, p := range s.prev {
				if p.hash == h {
					off, match = p.off, true
					break
				}
			}
			for _, sw := range s.switches {
				if !match && sw.fp.full() && bytes.Equal(sw.fp.b, fp.b) {
					// Content truncated away whose records are still in flight: where the
					// copy starts depends on what of them turns out delivered.
					match, draining = true, true
				}
			}
			if !match && s.fp.full() && bytes.Equal(s.fp.b, fp.b) {
				// The original still has this content, as far as its reader knows. Until
				// its records are acknowledged, only the acknowledged part is safe to skip:
				// starting the copy where reading stopped would let a crash lose the
				// records still in flight.
				off, match, live, draining = s.committed, true, true, s.draining
			}
			path := s.path
			s.mu.Unlock()
			if draining {
				// The original was truncated and its reader waits for the old content's
				// records; then this becomes an exact match at the delivered position.
				time.AfterFunc(2*fr.flow.MinTimeBetweenFilePolls, fr.requestScan)
				return -2, ""
			}
			if match {
				return fr.copyStart(st.id, off, fi, path, live)
			}
		}
		// Checkpoints not matched by inode belong to files that are gone (the known files
		// were considered first), so a copy of their content continues them.
		for _, e := range fr.fs.loaded {
			switch {
			case e.FingerprintLen == FingerprintSize && e.Fingerprint == h:
				return fr.copyStart(st.id, e.Offset, fi, e.Path, false)
			case e.PrevFingerprint == h:
				return fr.copyStart(st.id, e.PrevOffset, fi, e.Path, false)
			}
		}
	}
	if !initial && !fp.full() && consumed < 0 {
		// Until its first FingerprintSize bytes are written, copytruncate's copy cannot be told
		// from a new file; reading it from its start would send again what was already sent.
		// A short new file is therefore given a moment to fill its fingerprint.
		if first, waiting := fr.copyWaits[st.id]; !waiting || time.Since(first) < fr.copyPatience() {
			if !waiting {
				fr.copyWaits[st.id] = time.Now()
			}
			time.AfterFunc(2*fr.flow.MinTimeBetweenFilePolls, fr.requestScan)
			return -2, ""
		}
	}
	delete(fr.copyWaits, st.id)
	if age := fr.flow.IgnoreFilesOlderThan; age > 0 && time.Since(fi.ModTime()) > age {
		return -1, ""
	}
	if initial && fr.flow.InitialPosition == EndOfFile {
		return lineStartBefore(f, fi.Size()), "end of file"
	}
	return 0, "start of file"
}

// copyStart decides where a copy of known content starts: at off, where reading of that
// content stopped. A copy shorter than that is most likely still being written (copytruncate
// copies before it truncates), so it waits for a later scan. live means the original still
// has this content: then it is a plain copy, or a copytruncate whose truncation the original's
// reader has not seen yet. Waiting tells the two apart, since a truncation, once seen, makes the
// match exact (the original's previous content). A copy still live after the wait starts at
// the original's acknowledged position: the lines in flight are then possibly sent twice,
// never lost, even if the agent crashes before they are delivered.
func (fr *flowRunner) copyStart(id FileID, off int64, fi os.FileInfo, of string, live bool) (int64, string) {
	first, waiting := fr.copyWaits[id]
	if !waiting {
		first = time.Now()
		fr.copyWaits[id] = first
	}
	waited := time.Since(first) >= fr.copyPatience()
	if !waited && (live || fi.Size() < off) {
		time.AfterFunc(2*fr.flow.MinTimeBetweenFilePolls, fr.requestScan)
		return -2, ""
	}
	delete(fr.copyWaits, id)
	return min(off, fi.Size()), "copy of " + of
}

// copyPatience is how long a file that may be a copy in the making is waited for: long enough
// for a copy to finish and for the original's reader to notice its truncation.
func (fr *flowRunner) copyPatience() time.Duration {
	return 500*time.Millisecond + 10*fr.flow.MinTimeBetweenFilePolls
}

// lineStartBefore returns the start of the line that contains offset size-1, so starting at
// the end of a file that ends in a partial line reads that whole line rather than its tail.
func lineStartBefore(f *os.File, size int64) int64 {
	const look = 64 << 10
	from := max(0, size-look)
	buf := make([]byte, size-from)
	n, err := f.ReadAt(buf, from)
	if err != nil && err != io.EOF {
		return size
	}
	buf = buf[:n]
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		return from + int64(i) + 1
	}
	if from == 0 {
		return 0
	}
	return size
}

// skipped notes, once per path and at debug level, a matched file that is left out: excluding
// files is what the configuration asked for, not a problem.
func (fr *flowRunner) skipped(path, why string) {
	if fr.reported[path] == why {
		return
	}
	fr.reported[path] = why
	fr.log.Debug("matched file left out", "path", path, "why", why)
}

func (fr *flowRunner) report(path, problem string) {
	if fr.reported[path] == problem {
		return
	}
	fr.reported[path] = problem
	fr.log.Warn(problem, "path", path)
}
