package agent

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Agent tails the files of its flows and sends their records to a sink. Create it with New,
// run it with Run; Reload changes its flows while it runs; Stats reports its counters.
type Agent struct {
	sink   Sink
	log    *slog.Logger
	open   func(string) (*os.File, error)
	budget *budget
	files  openFiles
	// reuseChunks: the sink is a DataReleaser, so read buffers are reused.
	reuseChunks bool
	hooks       hooks
	stats       counters
	retry       retrier

	ec2         *instanceMetadata
	outstanding atomic.Int64 // records the sink accepted and has not acknowledged
	pressure    coalescer    // flushes of the sink asked for by readers waiting for the budget
	lastFailLog atomic.Int64 // unix nanoseconds of the last delivery failure logged

	mu        sync.Mutex
	cfg       *Config
	registry  map[string]*flowStates
	runners   map[string]*flowRunner
	running   bool
	flowsCtx  context.Context
	lastSaved []byte
	saveMu    sync.Mutex
	// archiveChanges counts changes to the checkpoints of untracked files (flowStates.loaded);
	// savedArchive is the count the archive file was last written at, -1 before the first
	// write. lastSweep is when expired checkpoints were last dropped.
	archiveChanges atomic.Int64
	savedArchive   int64
	lastSweep      time.Time
}

// New prepares an agent: it applies defaults to a copy of cfg, validates it, logs its
// warnings, and reads the checkpoint file. Nothing is read from the tailed files before Run.
func New(cfg *Config, sink Sink) (*Agent, error) {
	if sink == nil {
		return nil, errors.New("agent: nil sink")
	}
	c, err := prepareConfig(cfg)
	if err != nil {
		return nil, err
	}
	a := &Agent{sink: sink, cfg: c, registry: map[string]*flowStates{}, runners: map[string]*flowRunner{}}
	a.log = c.Logger
	if a.log == nil {
		a.log = slog.Default()
	}
	_, a.reuseChunks = sink.(DataReleaser)
	a.ec2 = &instanceMetadata{src: c.InstanceIdentity, log: a.log, now: time.Now}
	a.open = c.OpenFile
	if a.open == nil {
		a.open = os.Open
	}
	for _, w := range c.Warnings {
		a.log.Warn("configuration: " + w)
	}
	a.budget = newBudget(c.MaxInFlightBytes, c.MaxInFlightRecords)
	a.files = openFiles{max: c.MaxOpenFiles, open: map[*fileState]*openReader{}}
	a.retry.wake = make(chan struct{}, 1)
	a.hooks = hooks{
		budget:      a.budget,
		retry:       a.retry.add,
		outstanding: func(d int64) { a.outstanding.Add(d) },
		acked: func(st *fileState, rec *Record) {
			a.stats.recordsAcked.Add(1)
			a.stats.bytesAcked.Add(int64(len(rec.Data)))
			st.m.recordsSent.Add(1)
			st.m.bytesSent.Add(int64(len(rec.Data)))
		},
		failed: func(st *fileState, rec *Record, err error) {
			a.stats.recordsFailed.Add(1)
			st.m.sendErrors.Add(1)
			now := time.Now().UnixNano()
			if last := a.lastFailLog.Load(); now-last > int64(10*time.Second) && a.lastFailLog.CompareAndSwap(last, now) {
				a.log.Warn("record delivery failed; it will be sent again (further failures are logged at most every 10s)",
					"stream", rec.Stream, "path", rec.Path, "offset", rec.Offset, "err", err)
			}
		},
	}
	if err := checkStateDirectory(filepath.Dir(c.CheckpointFile)); err != nil {
		return nil, err
	}
	cd, err := loadCheckpoints(c.CheckpointFile)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	arch, err := loadCheckpoints(archivePath(c.CheckpointFile))
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.savedArchive = -1
	cutoff := time.Now().Add(-c.CheckpointTTL)
	type fileKey struct {
		flow string
		id   FileID
	}
	have := map[fileKey]bool{}
	// The main file's entries come first: an entry in both files (moved between them by a
	// save that a crash interrupted) is newest there.
	for _, d := range []*checkpointData{cd, arch} {
		for _, k := range d.Flows {
			a.flowStates(k).known = true
		}
		for _, e := range d.Files {
			k := fileKey{e.Flow, FileID{Dev: e.Dev, Ino: e.Ino}}
			if e.LastSeen.Before(cutoff) || have[k] {
				continue
			}
			have[k] = true
			fs := a.flowStates(e.Flow)
			fs.loaded = append(fs.loaded, e)
		}
	}
	return a, nil
}

// ErrStateDirectory is returned (wrapped) by New when the checkpoint file's directory cannot
// be created or written: an agent that ran anyway would ship data for as long as it runs and
// never save a position, so every restart would send everything again.
var ErrStateDirectory = errors.New("agent: state directory not usable")

// checkStateDirectory creates the directory if it is missing and proves that a file can be
// created in it, as each checkpoint save does.
func checkStateDirectory(dir string) error {
	fail := func(err error) error {
		return fmt.Errorf("%w: %s: %v; checkpoints could not be saved there, so set stateDirectory (or -state-dir, or checkpointFile) to a writable directory", ErrStateDirectory, dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fail(err)
	}
	name := f.Name()
	_, err = f.Write([]byte("ok\n"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

func prepareConfig(cfg *Config) (*Config, error) {
	if cfg == nil {
		return nil, errors.New("agent: nil configuration")
	}
	c := *cfg
	c.Flows = append([]Flow(nil), cfg.Flows...)
	for i := range c.Flows {
		c.Flows[i].DataProcessingOptions = append([]ProcessingOption(nil), c.Flows[i].DataProcessingOptions...)
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// flowStates returns the registry entry of a flow, creating it; a.mu is held or a is not
// shared yet.
func (a *Agent) flowStates(key string) *flowStates {
	fs := a.registry[key]
	if fs == nil {
		fs = newFlowStates(key, newFlowMetrics(a.cfg.Metrics, flowDimension(key, a.cfg.KinesisAgentMetrics)))
		a.registry[key] = fs
	}
	return fs
}

// ErrShutdownTimeout is returned by Run when records were still unacknowledged at the end of
// the shutdown timeout. Their files' checkpoints stay before them, so they are sent again after
// a restart.
var ErrShutdownTimeout = errors.New("agent: records still unacknowledged at the shutdown timeout")

// Run tails and sends until ctx ends, then stops reading, waits up to the shutdown timeout for
// the records in flight to be acknowledged (re-sending failed ones meanwhile), saves the
// checkpoints and returns. It returns ErrShutdownTimeout (wrapped) when records were still in
// flight, and an error when the final checkpoint could not be saved.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return errors.New("agent: already running")
	}
	a.running = true
	cfg := a.cfg
	var stopFlows context.CancelFunc
	a.flowsCtx, stopFlows = context.WithCancel(context.WithoutCancel(ctx))
	for _, f := range cfg.Flows {
		if err := a.startFlowLocked(f); err != nil {
			a.mu.Unlock()
			stopFlows()
			a.stopAll()
			return err
		}
	}
	a.mu.Unlock()
	defer stopFlows()

	retryCtx, stopRetry := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRetry()
	retryDone := make(chan struct{})
	go func() { defer close(retryDone); a.retry.run(retryCtx, a) }()

	saveCtx, stopSaving := context.WithCancel(context.WithoutCancel(ctx))
	saveDone := make(chan struct{})
	go func() { defer close(saveDone); a.checkpointLoop(saveCtx) }()

	<-ctx.Done()
	a.log.Info("stopping: no new reads; waiting for records in flight", "inFlight", a.outstanding.Load(), "retries", a.retry.pending.Load())
	stopFlows()
	a.stopAll()

	var errs []error
	a.mu.Lock()
	timeout := a.cfg.ShutdownTimeout
	a.mu.Unlock()
	deadline := time.Now().Add(timeout)
	stopFlushing := a.flushWhileStopping(ctx, deadline)
	for a.outstanding.Load() > 0 || a.retry.pending.Load() > 0 {
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("%w: %d in flight, %d waiting to be re-sent after %v; they will be sent again after a restart",
				ErrShutdownTimeout, a.outstanding.Load(), a.retry.pending.Load(), timeout))
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	stopFlushing()
	stopRetry()
	<-retryDone
	stopSaving()
	<-saveDone
	if err := a.saveCheckpoint(); err != nil {
		errs = append(errs, err)
	}
	a.mu.Lock()
	a.running = false
	a.mu.Unlock()
	err := errors.Join(errs...)
	if err != nil {
		a.log.Warn("stopped", "err", err)
	} else {
		a.log.Info("stopped; checkpoints saved")
	}
	return err
}

// underPressure is called by a reader about to wait for the in-flight budget. Records the
// sink holds back for batching cannot wait for company any more: nothing more will be read
// until some are acknowledged. So a Flusher sink is flushed briefly, enough to get what it
// holds on its way; without this a sink that batches for maxBufferAgeMillis would deliver at
// most one in-flight window per buffer age.
func (a *Agent) underPressure() {
	f, ok := a.sink.(Flusher)
	if !ok {
		return
	}
	a.pressure.request(func() { briefFlush(f) })
}

// flushWhileStopping keeps flushing a Flusher sink until the returned function is called or
// the deadline passes. Flushing again and again, rather than once, also hurries the records
// that the retrier re-sends during the wait.
func (a *Agent) flushWhileStopping(ctx context.Context, deadline time.Time) (stop func()) {
	f, ok := a.sink.(Flusher)
	if !ok {
		return func() {}
	}
	fctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for fctx.Err() == nil {
			if err := f.Flush(fctx); err != nil && fctx.Err() == nil {
				a.log.Debug("flushing the sink while stopping", "err", err)
			}
			select {
			case <-fctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (a *Agent) startFlowLocked(f Flow) error {
	fr, err := a.newFlowRunner(f, a.flowStates(f.Key()))
	if err != nil {
		return err
	}
	a.runners[f.Key()] = fr
	fr.start(a.flowsCtx)
	return nil
}

func (a *Agent) stopAll() {
	a.mu.Lock()
	runners := a.runners
	a.runners = map[string]*flowRunner{}
	a.mu.Unlock()
	for _, fr := range runners {
		fr.cancel()
	}
	for _, fr := range runners {
		<-fr.done
	}
}

// Reload replaces the configuration while the agent runs, as the daemon does on SIGHUP. Flows
// are matched by stream and file pattern: a flow that stays unchanged keeps running; a changed
// one restarts with its files' positions kept; a removed one stops, and its checkpoints are
// kept until they expire. The checkpoint file cannot change without a restart.
func (a *Agent) Reload(cfg *Config) error {
	c, err := prepareConfig(cfg)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// The flows' metric series keep their dimension for the agent's life, as the publisher's
	// namespace does; a reload that changes it is applied at the next restart.
	c.KinesisAgentMetrics = a.cfg.KinesisAgentMetrics
	if c.CheckpointFile != a.cfg.CheckpointFile {
		return fmt.Errorf("agent: checkpointFile cannot change on reload (from %s to %s); restart the agent", a.cfg.CheckpointFile, c.CheckpointFile)
	}
	if c.Logger == nil {
		c.Logger = a.cfg.Logger
	}
	for _, w := range c.Warnings {
		a.log.Warn("configuration: " + w)
	}
	a.budget.setLimits(c.MaxInFlightBytes, c.MaxInFlightRecords)
	a.files.setMax(c.MaxOpenFiles)
	a.cfg = c
	if !a.running {
		return nil
	}
	want := map[string]Flow{}
	for _, f := range c.Flows {
		want[f.Key()] = f
	}
	var stopping []*flowRunner
	for key, fr := range a.runners {
		if f, ok := want[key]; !ok || !reflect.DeepEqual(f, fr.flow) {
			stopping = append(stopping, fr)
			delete(a.runners, key)
		}
	}
	for _, fr := range stopping {
		fr.stop()
	}
	var errs []error
	for key, f := range want {
		if _, ok := a.runners[key]; ok {
			continue
		}
		if err := a.startFlowLocked(f); err != nil {
			errs = append(errs, err)
		}
	}
	a.log.Info("configuration reloaded", "flows", len(c.Flows), "restarted", len(stopping))
	return errors.Join(errs...)
}

// Stats returns a snapshot of the agent's counters.
func (a *Agent) Stats() Stats {
	b, r := a.budget.used()
	s := &a.stats
	return Stats{
		LinesRead: s.linesRead.Load(), RecordsSent: s.recordsSent.Load(), RecordsRetried: s.recordsRetried.Load(),
		RecordsAcked: s.recordsAcked.Load(), RecordsFailed: s.recordsFailed.Load(), BytesAcked: s.bytesAcked.Load(),
		TruncatedRecords: s.truncated.Load(), ParseErrors: s.parseErrors.Load(), Truncations: s.truncations.Load(),
		FilesTailed: s.filesTailed.Load(), FilesDiscovered: s.filesDiscovered.Load(),
		CheckpointSaves: s.checkpointSaves.Load(), CheckpointErrors: s.checkpointErrors.Load(),
		InFlightRecords: r, InFlightBytes: b, IdlePolls: s.idlePolls.Load(),
		FilesEvicted: s.filesEvicted.Load(),
	}
}

func (a *Agent) checkpointLoop(ctx context.Context) {
	a.mu.Lock()
	every := a.cfg.CheckpointInterval
	a.mu.Unlock()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.saveCheckpoint(); err != nil {
				a.log.Error("cannot save checkpoints; will try again", "err", err)
			}
		}
	}
}

// archivePath is the file beside the checkpoint file that holds the checkpoints of files not
// tracked now (gone, rotated away, or not found again yet): checkpoints.json becomes
// checkpoints-archive.json.
func archivePath(checkpointFile string) string {
	ext := filepath.Ext(checkpointFile)
	return strings.TrimSuffix(checkpointFile, ext) + "-archive" + ext
}

// sweepInterval is how often checkpoints older than the time to live are dropped; each sweep
// that drops one rewrites the archive.
const sweepInterval = time.Minute

// saveCheckpoint writes the acknowledged positions of the files tracked now, when any changed,
// to the checkpoint file. The checkpoints of the files not tracked, which are most of them
// after days of rotations, change only when a file is forgotten, found again or expires, and
// go to the archive file only then, first, so that a crash between the two writes leaves an
// entry in both files rather than in neither. What a save costs thus depends on the files
// tracked, not on the history of files seen within the checkpoint time to live.
func (a *Agent) saveCheckpoint() error {
	a.saveMu.Lock()
	defer a.saveMu.Unlock()
	a.mu.Lock()
	path := a.cfg.CheckpointFile
	ttl := a.cfg.CheckpointTTL
	configured := map[string]bool{}
	for _, f := range a.cfg.Flows {
		configured[f.Key()] = true
	}
	regs := make([]*flowStates, 0, len(a.registry))
	for _, fs := range a.registry {
		regs = append(regs, fs)
	}
	a.mu.Unlock()

	now := time.Now()
	if now.Sub(a.lastSweep) >= sweepInterval {
		a.lastSweep = now
		cutoff := now.Add(-ttl)
		for _, fs := range regs {
			fs.mu.Lock()
			kept := fs.loaded[:0]
			for _, e := range fs.loaded {
				if !e.LastSeen.Before(cutoff) {
					kept = append(kept, e)
				}
			}
			if len(kept) < len(fs.loaded) {
				clear(fs.loaded[len(kept):])
				a.archiveChanges.Add(1)
			}
			fs.loaded = kept
			fs.mu.Unlock()
		}
	}
	var flows []string
	if gen := a.archiveChanges.Load(); gen != a.savedArchive {
		arch := &checkpointData{Version: checkpointVersion}
		for _, fs := range regs {
			fs.mu.Lock()
			arch.Files = append(arch.Files, fs.loaded...)
			if fs.known && len(fs.loaded) > 0 {
				arch.Flows = append(arch.Flows, fs.key)
			}
			fs.mu.Unlock()
		}
		sort.Strings(arch.Flows)
		arch.Saved = now.UTC().Truncate(time.Millisecond)
		if err := saveCheckpoints(archivePath(path), arch); err != nil {
			a.stats.checkpointErrors.Add(1)
			return err
		}
		a.savedArchive = gen
	}
	cd := &checkpointData{Version: checkpointVersion}
	for _, fs := range regs {
		fs.mu.Lock()
		for _, st := range fs.byID {
			st.mu.Lock()
			cd.Files = append(cd.Files, st.entryLocked())
			st.mu.Unlock()
		}
		if configured[fs.key] || (fs.known && len(fs.byID)+len(fs.loaded) > 0) {
			flows = append(flows, fs.key)
		}
		fs.mu.Unlock()
	}
	sort.Strings(flows)
	cd.Flows = flows
	cmp, _ := json.Marshal(cd)
	if string(cmp) == string(a.lastSaved) {
		return nil
	}
	cd.Saved = now.UTC().Truncate(time.Millisecond)
	if err := saveCheckpoints(path, cd); err != nil {
		a.stats.checkpointErrors.Add(1)
		return err
	}
	a.lastSaved = cmp
	a.stats.checkpointSaves.Add(1)
	return nil
}

// retrier re-sends failed records after their file's backoff. Records stay in their file's
// window meanwhile, so the checkpoint cannot pass them and the budget keeps counting them.
type retrier struct {
	mu      sync.Mutex
	q       retryQueue
	wake    chan struct{}
	pending atomic.Int64
}

type retryItem struct {
	due     time.Time
	st      *fileState
	seq     uint64
	attempt uint32
	rec     Record
}

type retryQueue []retryItem

func (q retryQueue) Len() int           { return len(q) }
func (q retryQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q retryQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *retryQueue) Push(x any)        { *q = append(*q, x.(retryItem)) }
func (q *retryQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}

func (r *retrier) add(st *fileState, seq uint64, attempt uint32, rec Record, delay time.Duration) {
	r.pending.Add(1)
	r.mu.Lock()
	heap.Push(&r.q, retryItem{due: time.Now().Add(delay), st: st, seq: seq, attempt: attempt, rec: rec})
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *retrier) run(ctx context.Context, a *Agent) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r.mu.Lock()
		now := time.Now()
		var due []retryItem
		for r.q.Len() > 0 && !r.q[0].due.After(now) {
			due = append(due, heap.Pop(&r.q).(retryItem))
		}
		wait := time.Hour
		if r.q.Len() > 0 {
			wait = r.q[0].due.Sub(now)
		}
		r.mu.Unlock()
		for _, it := range due {
			if ctx.Err() == nil && it.st.beginResend(it.seq, it.attempt) {
				a.stats.recordsRetried.Add(1)
				it.st.m.attempts.Add(1)
				if err := a.sink.Send(ctx, it.rec, Ack{st: it.st, seq: it.seq, attempt: it.attempt}); err != nil {
					it.st.abortResend(it.seq, it.attempt)
				}
			}
			r.pending.Add(-1)
		}
		if len(due) > 0 {
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-timer.C:
		}
	}
}
