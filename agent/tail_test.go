package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shardline/shardline/metrics"
)

func keepingSink() *syncSink { return &syncSink{keep: true} }

func hasAll(s *syncSink, lines ...string) func() bool {
	return func() bool {
		got := map[string]bool{}
		for _, d := range s.data() {
			got[d] = true
		}
		for _, l := range lines {
			if !got[l] {
				return false
			}
		}
		return true
	}
}

// TestPartialLineWaitsForNewline: a last line without a newline waits for it however long the
// writer takes, past partialLineTimeoutMillis, while the file still matches the pattern (as
// the Amazon Kinesis Agent's AbstractParser hands out complete records only), so a slow line
// arrives whole, in one record.
func TestPartialLineWaitsForNewline(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.log")
	appendFile(t, p, "one\ntw")
	cfg := testConfig(t, filepath.Join(dir, "*.log"))
	cfg.Flows[0].PartialLineTimeout = 100 * time.Millisecond
	sink := keepingSink()
	running(t, cfg, sink)
	eventually(t, 5*time.Second, "first line", hasAll(sink, "one\n"))
	time.Sleep(5 * cfg.Flows[0].PartialLineTimeout)
	if got := sink.data(); len(got) != 1 {
		t.Fatalf("records %q: the partial line was sent before its newline", got)
	}
	appendFile(t, p, "o\nthr")
	eventually(t, 5*time.Second, "completed line", hasAll(sink, "two\n"))
	time.Sleep(5 * cfg.Flows[0].PartialLineTimeout)
	appendFile(t, p, "ee\n")
	eventually(t, 5*time.Second, "the slow line, whole", hasAll(sink, "three\n"))
	if got := sink.data(); len(got) != 3 {
		t.Errorf("records %q", got)
	}
}

// TestPartialLineSentWhenFileCloses: a partial last line is sent as it is, with a newline added,
// only when its file is closed: renamed away from the pattern and not grown for
// partialLineTimeoutMillis, or inactive for closeInactiveMillis.
func TestPartialLineSentWhenFileCloses(t *testing.T) {
	dir := t.TempDir()
	rotated, idle := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	appendFile(t, rotated, "a1\na-part")
	appendFile(t, idle, "b1\nb-part")
	cfg := testConfig(t, filepath.Join(dir, "*.log"))
	cfg.Flows[0].PartialLineTimeout = 300 * time.Millisecond
	cfg.Flows[0].CloseInactive = 2 * time.Second
	sink := keepingSink()
	a, _ := running(t, cfg, sink)
	eventually(t, 5*time.Second, "complete lines", hasAll(sink, "a1\n", "b1\n"))
	start := time.Now()
	if err := os.Rename(rotated, rotated+".1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the rotated file's partial line", hasAll(sink, "a-part\n"))
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("the rotated file's partial line was sent after %v, before partialLineTimeoutMillis", waited)
	}
	eventually(t, 10*time.Second, "the inactive file's partial line", hasAll(sink, "b-part\n"))
	if waited := time.Since(start); waited < 1500*time.Millisecond {
		t.Errorf("the inactive file's partial line was sent after %v, before closeInactiveMillis", waited)
	}
	eventually(t, 5*time.Second, "both files closed", func() bool { return a.Stats().FilesTailed == 0 })
	if got := sink.data(); len(got) != 4 {
		t.Errorf("records %q", got)
	}
}

func TestRenameRotationReadsOldFileToItsEnd(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendFile(t, p, "a1\n")
	cfg := testConfig(t, p) // the rotated name does not match
	sink := keepingSink()
	running(t, cfg, sink)
	eventually(t, 5*time.Second, "a1", hasAll(sink, "a1\n"))

	old, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, "b1\n")
	// The application writes a last line to the old file before it reopens.
	fmt.Fprint(old, "a2\n")
	old.Close()
	eventually(t, 5*time.Second, "both files", hasAll(sink, "a2\n", "b1\n"))
}

func TestCopyTruncateRestartsAtZero(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendFile(t, p, strings.Repeat("old line\n", 200))
	cfg := testConfig(t, p)
	sink := keepingSink()
	a, _ := running(t, cfg, sink)
	eventually(t, 5*time.Second, "old lines", func() bool { return len(sink.data()) == 200 })
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, "new 1\nnew 2\n")
	eventually(t, 5*time.Second, "new lines", hasAll(sink, "new 1\n", "new 2\n"))
	// Truncated and rewritten past the old position: only the fingerprint can tell.
	appendFile(t, p, strings.Repeat("more\n", 400))
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, strings.Repeat("replaced\n", 600))
	eventually(t, 5*time.Second, "replaced content", func() bool {
		n := 0
		for _, d := range sink.data() {
			if d == "replaced\n" {
				n++
			}
		}
		return n == 600
	})
	if a.Stats().Truncations < 2 {
		t.Errorf("truncations %d", a.Stats().Truncations)
	}
}

func TestDeletedWhileOpenIsReadToItsEnd(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "gone.log")
	appendFile(t, p, "first\n")
	cfg := testConfig(t, p)
	cfg.Flows[0].CloseInactive = 300 * time.Millisecond
	sink := keepingSink()
	a, _ := running(t, cfg, sink)
	eventually(t, 5*time.Second, "first", hasAll(sink, "first\n"))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "written after the delete\nno newline")
	f.Close()
	eventually(t, 5*time.Second, "lines of the deleted file", hasAll(sink, "written after the delete\n", "no newline\n"))
	eventually(t, 5*time.Second, "the deleted file closed", func() bool { return a.Stats().FilesTailed == 0 })
}

func TestReusedInodeOrRecreatedFileIsReadFromStart(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendFile(t, p, strings.Repeat("generation one\n", 100))
	cfg := testConfig(t, p)
	sink := keepingSink()
	_, stop := running(t, cfg, sink)
	eventually(t, 5*time.Second, "first generation", func() bool { return len(sink.data()) == 100 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Same inode, new content longer than the old position: offsets of the old content
	// mean nothing here.
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, strings.Repeat("generation two\n", 200))
	sink2 := keepingSink()
	running(t, cfg, sink2)
	eventually(t, 5*time.Second, "second generation from its start", func() bool { return len(sink2.data()) == 200 })
	for _, d := range sink2.data() {
		if d != "generation two\n" {
			t.Fatalf("unexpected record %q", d)
		}
	}
}

func TestRestartResumesFromCheckpointWithoutDuplicates(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendFile(t, p, "1\n2\n3\n")
	cfg := testConfig(t, p)
	sink := keepingSink()
	_, stop := running(t, cfg, sink)
	eventually(t, 5*time.Second, "three lines", func() bool { return len(sink.data()) == 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, "4\n")
	sink2 := keepingSink()
	running(t, cfg, sink2)
	eventually(t, 5*time.Second, "the new line", hasAll(sink2, "4\n"))
	time.Sleep(100 * time.Millisecond)
	if got := sink2.data(); len(got) != 1 {
		t.Errorf("after a graceful stop only new lines are sent, got %q", got)
	}
	fi, err := os.Stat(cfg.CheckpointFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("checkpoint file mode %v", fi.Mode().Perm())
	}
}

func TestMultiLineAndHeaderLines(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendFile(t, p, "# header\n2024-01-01 first\n  detail a\n  detail b\n2024-01-02 second\n2024-01-03 third\n  tail\n")
	cfg := testConfig(t, p)
	cfg.Flows[0].SkipHeaderLines = 1
	cfg.Flows[0].MultiLineStartPattern = `\d{4}-\d{2}-\d{2}`
	cfg.Flows[0].MultiLineTimeout = 200 * time.Millisecond
	sink := keepingSink()
	running(t, cfg, sink)
	want := []string{"2024-01-01 first\n  detail a\n  detail b\n", "2024-01-02 second\n", "2024-01-03 third\n  tail\n"}
	eventually(t, 5*time.Second, "three records", func() bool { return len(sink.data()) == 3 })
	for i, got := range sink.data() {
		if got != want[i] {
			t.Errorf("record %d: %q, want %q", i, got, want[i])
		}
	}
	// The checkpoint covers the header too, so a restart does not count it again.
	recs := sink.all()
	if recs[0].Offset != int64(len("# header\n")) {
		t.Errorf("first record at offset %d", recs[0].Offset)
	}
}

func TestLongLinesAreTruncatedWithMarker(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	long := strings.Repeat("x", 300<<10) // longer than a read buffer and than the record size
	appendFile(t, p, "short\n"+long+"\nafter\n"+strings.Repeat("y", 2000)+"\n")
	cfg := testConfig(t, p)
	cfg.Flows[0].MaxRecordSizeBytes = 1024
	cfg.Flows[0].TruncatedRecordTerminator = "[TRUNCATED]\n"
	cfg.Flows[0].PartitionKeyOption = PartitionKeyDeterministic
	sink := keepingSink()
	a, _ := running(t, cfg, sink)
	eventually(t, 5*time.Second, "four records", func() bool { return len(sink.data()) == 4 })
	recs := sink.all()
	for i, want := range []string{"short\n", "x", "after\n", "y"} {
		r := recs[i]
		if len(r.Data)+len(r.PartitionKey) > 1024 {
			t.Errorf("record %d is %d bytes with its key", i, len(r.Data)+len(r.PartitionKey))
		}
		if !strings.HasPrefix(string(r.Data), want) {
			t.Errorf("record %d starts %q", i, r.Data[:min(10, len(r.Data))])
		}
		if (want == "x" || want == "y") && !bytes.HasSuffix(r.Data, []byte("[TRUNCATED]\n")) {
			t.Errorf("record %d lacks the marker", i)
		}
	}
	if recs[2].Offset != int64(len("short\n")+len(long)+1) {
		t.Errorf("the line after a long one starts at %d", recs[2].Offset)
	}
	if s := a.Stats(); s.TruncatedRecords != 2 {
		t.Errorf("truncated %d", s.TruncatedRecords)
	}
}

func TestInvalidUTF8IsSentAsBytes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bin.log")
	line := "caf\xe9 \xff\x00 ok\n"
	appendFile(t, p, line)
	cfg := testConfig(t, p)
	sink := keepingSink()
	running(t, cfg, sink)
	eventually(t, 5*time.Second, "the line", hasAll(sink, line))
}

func TestInitialPositionAndIgnoreOlder(t *testing.T) {
	dir := t.TempDir()
	appendFile(t, filepath.Join(dir, "a.log"), "old 1\nold 2\npart")
	appendFile(t, filepath.Join(dir, "stale.log"), "stale\n")
	past := time.Now().Add(-48 * time.Hour)
	os.Chtimes(filepath.Join(dir, "stale.log"), past, past)
	cfg := testConfig(t, filepath.Join(dir, "*.log"))
	cfg.Flows[0].InitialPosition = EndOfFile
	cfg.Flows[0].IgnoreFilesOlderThan = time.Hour
	sink := keepingSink()
	running(t, cfg, sink)
	time.Sleep(150 * time.Millisecond)
	appendFile(t, filepath.Join(dir, "a.log"), "ial\nnew\n")
	appendFile(t, filepath.Join(dir, "b.log"), "created later\n")
	eventually(t, 5*time.Second, "new lines", hasAll(sink, "partial\n", "new\n", "created later\n"))
	for _, d := range sink.data() {
		if strings.HasPrefix(d, "old") || d == "stale\n" {
			t.Errorf("sent %q", d)
		}
	}
}

// recordingHandler keeps log records, to check what is logged and how often.
type recordingHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	h.mu.Lock()
	h.msgs = append(h.msgs, b.String())
	h.mu.Unlock()
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }
func (h *recordingHandler) count(sub string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

// TestUnreadableFileIsReportedOnce simulates a permission error through Config.OpenFile:
// tests run as root here, which can read any file.
func TestUnreadableFileIsReportedOnce(t *testing.T) {
	dir := t.TempDir()
	locked := filepath.Join(dir, "locked.log")
	appendFile(t, locked, "secret\n")
	appendFile(t, filepath.Join(dir, "open.log"), "public\n")
	var deny sync.Map
	deny.Store(locked, true)
	cfg := testConfig(t, filepath.Join(dir, "*.log"))
	h := &recordingHandler{}
	cfg.Logger = slog.New(h)
	cfg.OpenFile = func(name string) (*os.File, error) {
		if _, ok := deny.Load(name); ok {
			return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EACCES}
		}
		return os.Open(name)
	}
	sink := keepingSink()
	running(t, cfg, sink)
	eventually(t, 5*time.Second, "the readable file", hasAll(sink, "public\n"))
	time.Sleep(5 * cfg.Flows[0].RescanInterval) // several rescans
	if n := h.count("cannot open: open " + locked + ": permission denied"); n != 1 {
		t.Errorf("permission error logged %d times", n)
	}
	deny.Delete(locked)
	eventually(t, 5*time.Second, "the file once readable", hasAll(sink, "secret\n"))
}

func TestDirectoryMatchingThePatternIsSkipped(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.log")
	appendFile(t, p, "file line\n")
	cfg := testConfig(t, filepath.Join(dir, "*.log"))
	h := &recordingHandler{}
	cfg.Logger = slog.New(h)
	sink := keepingSink()
	running(t, cfg, sink)
	eventually(t, 5*time.Second, "the line", hasAll(sink, "file line\n"))
	// The file is replaced by a directory of the same name.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	appendFile(t, filepath.Join(dir, "y.log"), "still working\n")
	eventually(t, 5*time.Second, "other files", hasAll(sink, "still working\n"))
	time.Sleep(3 * cfg.Flows[0].RescanInterval)
	if n := h.count("is a directory"); n != 1 {
		t.Errorf("directory reported %d times", n)
	}
}

func TestThousandsOfFiles(t *testing.T) {
	dir := t.TempDir()
	const n = 2000
	for i := 0; i < n; i++ {
		appendFile(t, filepath.Join(dir, fmt.Sprintf("f%04d.log", i)), fmt.Sprintf("line of %d\n", i))
	}
	cfg := testConfig(t, filepath.Join(dir, "*.log"))
	cfg.Flows[0].CloseInactive = 300 * time.Millisecond
	sink := &syncSink{}
	a, _ := running(t, cfg, sink)
	eventually(t, 30*time.Second, "a line of every file", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return sink.n == n
	})
	eventually(t, 10*time.Second, "idle files closed", func() bool { return a.Stats().FilesTailed == 0 })
	if s := a.Stats(); s.FilesDiscovered != n {
		t.Errorf("discovered %d", s.FilesDiscovered)
	}
}

func TestCheckpointFileIsAtomicAndPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	p := filepath.Join(dir, "cp.json")
	cd := &checkpointData{Version: checkpointVersion, Flows: []string{"s|/a"},
		Files: []checkpointEntry{{Flow: "s|/a", Path: "/a", Dev: 1, Ino: 2, FingerprintLen: 3, Fingerprint: hashOf([]byte("abc")), Offset: 3}}}
	for i := 0; i < 20; i++ {
		cd.Files[0].Offset = int64(i)
		if err := saveCheckpoints(p, cd); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	got, err := loadCheckpoints(p)
	if err != nil || got.Files[0].Offset != 19 {
		t.Fatalf("%+v %v", got, err)
	}
	// A failed save (the directory became read-only for the rename's temp file) leaves the
	// previous file whole.
	if err := os.WriteFile(filepath.Join(dir, "blocker"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := saveCheckpoints(filepath.Join(dir, "blocker", "cp.json"), cd); err == nil {
		t.Error("saving under a file succeeded")
	}
	if got, err := loadCheckpoints(p); err != nil || got.Files[0].Offset != 19 {
		t.Errorf("previous checkpoint damaged: %v", err)
	}
	// The Amazon Kinesis Agent's SQLite checkpoints are refused, not overwritten.
	sq := filepath.Join(dir, "kinesis-agent-checkpoints")
	os.WriteFile(sq, append([]byte("SQLite format 3\x00"), make([]byte, 100)...), 0o600)
	if _, err := loadCheckpoints(sq); err == nil || !strings.Contains(err.Error(), "SQLite") {
		t.Errorf("SQLite file: %v", err)
	}
	os.WriteFile(sq, []byte("{broken"), 0o600)
	if _, err := loadCheckpoints(sq); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged file: %v", err)
	}
}

func TestAckPrefixOutOfOrder(t *testing.T) {
	b := newBudget(1<<20, 100)
	var retried []uint64
	h := &hooks{budget: b, outstanding: func(int64) {},
		acked:  func(*fileState, *Record) {},
		failed: func(*fileState, *Record, error) {},
		retry: func(st *fileState, seq uint64, att uint32, rec Record, d time.Duration) {
			retried = append(retried, seq)
		}}
	st := newFileState(h, "k", FileID{}, "p")
	st.m = newFlowMetrics(nil, metrics.Dim(metrics.DimStreamName, "s"))
	var acks []Ack
	for i := 0; i < 5; i++ {
		b.acquire(context.Background(), 10, 1)
		seq, att := st.push(Record{Offset: int64(i * 10)}, int64(i*10+10), nil, 10)
		acks = append(acks, Ack{st: st, seq: seq, attempt: att})
	}
	st.skip(60) // a header or rejected line after the records
	check := func(want int64) {
		t.Helper()
		if c, _ := st.position(); c != want {
			t.Fatalf("committed %d, want %d", c, want)
		}
	}
	acks[2].Done(nil)
	acks[4].Done(nil)
	check(0)
	acks[0].Done(nil)
	check(10)
	acks[1].Done(errFakeDelivery) // fails: the prefix stops before it
	acks[1].Done(nil)             // a second call for the same attempt is ignored
	check(10)
	if len(retried) != 1 || retried[0] != 1 {
		t.Fatalf("retries %v", retried)
	}
	if !st.beginResend(1, 1) {
		t.Fatal("resend refused")
	}
	acks[3].Done(nil)
	check(10)
	Ack{st: st, seq: 1, attempt: 1}.Done(nil)
	check(60)
	if _, r := b.used(); r != 0 {
		t.Errorf("%d records still charged", r)
	}
	if st.inFlight() != 0 {
		t.Errorf("window not empty")
	}
}

// blockingSink accepts records into a queue nobody drains until released, as a throttled or
// unreachable stream would.
type blockingSink struct {
	mu      sync.Mutex
	pending []item
	release chan struct{}
	n       int
}

func (s *blockingSink) Send(ctx context.Context, rec Record, ack Ack) error {
	s.mu.Lock()
	s.pending = append(s.pending, item{rec, ack})
	s.n++
	s.mu.Unlock()
	return nil
}

func (s *blockingSink) flush() {
	s.mu.Lock()
	p := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, it := range p {
		it.ack.Done(nil)
	}
}

func TestBackpressureBoundsWhatIsRead(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "big.log")
	var b strings.Builder
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&b, "line %05d %s\n", i, strings.Repeat("z", 40))
	}
	appendFile(t, p, b.String())
	cfg := testConfig(t, p)
	cfg.MaxInFlightRecords = 500
	cfg.MaxInFlightBytes = 256 << 10
	sink := &blockingSink{}
	a, _ := running(t, cfg, sink)
	eventually(t, 5*time.Second, "the bound reached", func() bool { return a.Stats().InFlightRecords == 500 })
	time.Sleep(200 * time.Millisecond)
	s := a.Stats()
	if s.InFlightRecords > 500 || s.InFlightBytes > cfg.MaxInFlightBytes {
		t.Fatalf("in flight %d records, %d bytes", s.InFlightRecords, s.InFlightBytes)
	}
	if s.RecordsSent != 500 {
		t.Fatalf("reading did not pause: %d sent", s.RecordsSent)
	}
	// Delivery resumes, reading resumes.
	eventually(t, 20*time.Second, "every line", func() bool {
		sink.flush()
		return a.Stats().RecordsAcked == 20000
	})
}

func TestReloadKeepsPositions(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.log")
	appendFile(t, p, "1\n2\n")
	cfg := testConfig(t, p)
	sink := keepingSink()
	a, _ := running(t, cfg, sink)
	eventually(t, 5*time.Second, "first lines", func() bool { return len(sink.data()) == 2 })
	next := *cfg
	next.Flows = append([]Flow(nil), cfg.Flows...)
	next.Flows[0].DataProcessingOptions = []ProcessingOption{{OptionName: "CSVTOJSON", CustomFieldNames: []string{"n"}}}
	q := filepath.Join(dir, "b.log")
	appendFile(t, q, "x\n")
	next.Flows = append(next.Flows, Flow{FilePattern: q, KinesisStream: "other", InitialPosition: StartOfFile,
		MinTimeBetweenFilePolls: 10 * time.Millisecond, RescanInterval: 100 * time.Millisecond})
	if err := a.Reload(&next); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, "3\n")
	eventually(t, 5*time.Second, "lines after the reload", hasAll(sink, `{"n":"3"}`+"\n", "x\n"))
	for _, d := range sink.data() {
		if d == `{"n":"1"}`+"\n" {
			t.Errorf("a reload re-read the file: %q", sink.data())
		}
	}
	bad := next
	bad.CheckpointFile = filepath.Join(dir, "elsewhere.json")
	if err := a.Reload(&bad); err == nil {
		t.Error("checkpoint file changed on reload")
	}
}

func TestMetricsAndStats(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.log")
	appendFile(t, p, "1\n22\n333\n")
	cfg := testConfig(t, p)
	reg := metrics.NewRegistry()
	cfg.Metrics = reg
	sink := newFakeSink(10, 2, 0, 0)
	defer sink.close()
	a, stop := running(t, cfg, sink)
	eventually(t, 5*time.Second, "acks", func() bool { return a.Stats().RecordsAcked == 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	s := a.Stats()
	if s.LinesRead != 3 || s.RecordsSent != 3 || s.BytesAcked != 9 || s.CheckpointSaves == 0 || s.InFlightRecords != 0 {
		t.Errorf("stats %+v", s)
	}
	snap := reg.Snapshot()
	d := metrics.Dim(metrics.DimStreamName, "test-stream")
	if snap.CounterSum(metrics.LinesRead, d) != 3 || snap.CounterSum(metrics.RecordsSent, d) != 3 || snap.CounterSum(metrics.BytesSent, d) != 9 {
		t.Errorf("metrics: lines %d records %d bytes %d", snap.CounterSum(metrics.LinesRead, d),
			snap.CounterSum(metrics.RecordsSent, d), snap.CounterSum(metrics.BytesSent, d))
	}
	cp, _ := os.ReadFile(cfg.CheckpointFile)
	var cd checkpointData
	if err := json.Unmarshal(cp, &cd); err != nil || len(cd.Files) != 1 || cd.Files[0].Offset != 9 {
		t.Errorf("checkpoint %s", cp)
	}
}

func TestShutdownTimeoutKeepsUnackedRecordsForNextRun(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.log")
	appendFile(t, p, "1\n2\n")
	cfg := testConfig(t, p)
	cfg.ShutdownTimeout = 100 * time.Millisecond
	sink := &blockingSink{}
	a, stop := running(t, cfg, sink)
	eventually(t, 5*time.Second, "sends", func() bool { return a.Stats().RecordsSent == 2 })
	if err := stop(); !errors.Is(err, ErrShutdownTimeout) {
		t.Fatalf("Run returned %v", err)
	}
	sink2 := keepingSink()
	running(t, cfg, sink2)
	eventually(t, 5*time.Second, "the unacknowledged lines again", hasAll(sink2, "1\n", "2\n"))
}
