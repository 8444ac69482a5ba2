package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/shardline/shardline/agent"
	"github.com/shardline/shardline/internal/testenv"
)

// logWriter appends numbered lines to one log file and rotates it as logrotate would. Writes
// and rotations take the same lock: copytruncate loses whatever is written between the copy
// and the truncation, which no reader can recover, so the test keeps that window empty and
// asserts only what the agent can guarantee.
type logWriter struct {
	id   int
	path string

	mu        sync.Mutex
	f         *os.File
	seq       int
	rotations int
	copies    int
}

func (w *logWriter) open(t *testing.T) {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	w.f = f
}

func (w *logWriter) write(t *testing.T) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seq++
	// Lines vary in length so they straddle read buffers in every way.
	if _, err := fmt.Fprintf(w.f, "f%d %08d %s\n", w.id, w.seq, strings.Repeat("x", rand.IntN(80))); err != nil {
		t.Error(err)
	}
}

func (w *logWriter) lines() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seq
}

// rotate renames the file away and creates a new one, or, when copytruncate is allowed and the
// file is long enough to be recognised by its fingerprint, copies it and truncates it.
func (w *logWriter) rotate(t *testing.T, copytruncate bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rotations++
	target := fmt.Sprintf("%s.%d", w.path, w.rotations)
	fi, err := w.f.Stat()
	if err != nil {
		t.Error(err)
		return
	}
	if copytruncate && fi.Size() >= agent.FingerprintSize {
		w.copies++
		src, err := os.Open(w.path)
		if err != nil {
			t.Error(err)
			return
		}
		dst, err := os.Create(target)
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Error(err)
		}
		src.Close()
		dst.Close()
		if err := w.f.Truncate(0); err != nil {
			t.Error(err)
		}
		return
	}
	w.f.Close()
	if err := os.Rename(w.path, target); err != nil {
		t.Error(err)
	}
	w.open(t)
}

// line is one record as the flow's LOGTOJSON step writes it.
type line struct {
	File string `json:"file"`
	Seq  string `json:"seq"`
	Pad  string `json:"pad"`
}

// TestEndToEndKillsAndRotations is the daemon's main promise, shown on a real process against
// kinesis-mock. Three files are written (about 125 lines a second each) and rotated every 0.3
// to 0.7 s, by rename-and-create or copytruncate, while the agent is killed with SIGKILL five
// times and restarted; then, with rename rotations only, it is restarted twice with SIGTERM
// and finally stopped with SIGTERM. A typical run writes 3,000 to 3,300 lines per file (9,000
// to 10,000 in all) through 150 to 170 rotations, two thirds of them copytruncate. Reading
// the stream back:
//
//   - every line written is in the stream;
//   - the lines of each file on disk (rotated, copied or current) first appear in the order
//     they were written: the partition key is the writer's number, so a writer's lines share
//     a shard, whose order Kinesis keeps;
//   - lines appear more than once only where a kill can explain it: at most, per kill, the
//     in-flight bound plus what was acknowledged in about one checkpoint interval (a copy
//     found before its original's reader saw the truncation may repeat that file's lines in
//     flight too, which only happens under backpressure and fits in the same bound); lines
//     written after the last kill, with only graceful restarts since, appear exactly once.
func TestEndToEndKillsAndRotations(t *testing.T) {
	kc := testenv.Kinesis(t, nil, func(o *kinesis.Options) { o.RetryMaxAttempts = 5 })
	endpoint := testenv.KinesisEndpoint(t)
	stream := testenv.CreateStream(t, kc, 2)
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	const (
		files              = 3
		kills              = 5
		gracefulRestarts   = 2
		maxInFlightRecords = 1000
	)
	conf := filepath.Join(dir, "agent.json")
	writeJSON(t, conf, map[string]any{
		"kinesis.endpoint":         endpoint,
		"cloudwatch.emitMetrics":   false,
		"checkpointIntervalMillis": 100,
		"shutdownTimeoutMillis":    15000,
		"maxInFlightRecords":       maxInFlightRecords,
		"flows": []any{map[string]any{
			"filePattern":                   filepath.Join(logs, "app-*.log*"),
			"kinesisStream":                 stream,
			"initialPosition":               "START_OF_FILE",
			"maxBufferAgeMillis":            1000,
			"minTimeBetweenFilePollsMillis": 20,
			"rescanIntervalMillis":          200,
			"closeInactiveMillis":           2000,
			"retryInitialBackoffMillis":     50,
			"retryMaxBackoffMillis":         1000,
			"partitionKeyField":             "file",
			"dataProcessingOptions": []any{map[string]any{
				"optionName":       "LOGTOJSON",
				"matchPattern":     `(f\d+) (\d+) (x*)`,
				"customFieldNames": []string{"file", "seq", "pad"},
			}},
		}},
	})
	env := agentEnv(t)
	args := []string{"-config", conf, "-state-dir", state, "-stats-interval", "100ms"}

	writers := make([]*logWriter, files)
	for i := range writers {
		writers[i] = &logWriter{id: i, path: filepath.Join(logs, fmt.Sprintf("app-%d.log", i))}
		writers[i].open(t)
	}
	var stopWriting, renameOnly atomic.Bool
	var wg sync.WaitGroup
	for _, w := range writers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for !stopWriting.Load() {
				w.write(t)
				time.Sleep(time.Duration(4+rand.IntN(8)) * time.Millisecond)
			}
		}()
		go func() {
			defer wg.Done()
			for !stopWriting.Load() {
				time.Sleep(time.Duration(300+rand.IntN(400)) * time.Millisecond)
				w.rotate(t, !renameOnly.Load())
			}
		}()
	}
	defer func() {
		stopWriting.Store(true)
		wg.Wait()
	}()

	dupBound := 0
	proc := startAgent(t, env, args...)
	for k := 1; k <= kills; k++ {
		time.Sleep(time.Duration(2000+rand.IntN(2000)) * time.Millisecond)
		if k == kills {
			renameOnly.Store(true) // from now on, only a kill's window can repeat a line
		}
		proc.kill()
		// A kill repeats what was read and not yet acknowledged (the in-flight bound) and what
		// was acknowledged since the last checkpoint save; progress lines every 100 ms, as
		// often as checkpoints are saved, bound the latter.
		dupBound += maxInFlightRecords + 3*proc.maxAckStep()
		if w := proc.warnings(); len(w) > 0 {
			t.Logf("segment %d warnings: %q", k, w)
		}
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond) // the application goes on writing
		proc = startAgent(t, env, args...)
	}
	lastKill := make([]int, files)
	for i, w := range writers {
		// Lines after these were written after the last kill, so not even a kill excuses a
		// second copy of them. Read after the restart, which is later than the kill: safe.
		lastKill[i] = w.lines()
	}
	for r := 0; r < gracefulRestarts; r++ {
		time.Sleep(time.Duration(2000+rand.IntN(1000)) * time.Millisecond)
		proc.stopGracefully(30 * time.Second)
		proc = startAgent(t, env, args...)
	}
	time.Sleep(2 * time.Second)
	stopWriting.Store(true)
	wg.Wait()

	written := make([]int, files)
	total, rotations, copies := 0, 0, 0
	for i, w := range writers {
		w.f.Close()
		written[i] = w.seq
		total += w.seq
		rotations += w.rotations
		copies += w.copies
	}

	// Wait until everything is in the stream before the final stop: SIGTERM stops reading,
	// and what was not read yet would only be sent by the next run.
	rd := newStreamReader(t, kc, stream)
	deadline := time.Now().Add(45 * time.Second)
	for {
		rd.poll(t)
		if missing := missingLines(t, rd.all(), written); missing == 0 {
			break
		} else if time.Now().After(deadline) {
			describeMissing(t, rd.all(), written, logs, state)
			t.Fatalf("%d of %d lines still missing from the stream", missing, total)
		}
		time.Sleep(300 * time.Millisecond)
	}
	proc.stopGracefully(30 * time.Second)
	if w := proc.warnings(); len(w) > 0 {
		t.Logf("last segment warnings: %q", w)
	}
	rd.poll(t)

	// Each line is, at the end, in exactly one file on disk: a renamed file, a copytruncate
	// copy or a current file. The agent reads files concurrently, so only the lines of one
	// file keep their order; a file's lines share a partition key and so a shard, whose order
	// Kinesis keeps.
	onDisk := linesOnDisk(t, logs)
	copiesOf := map[[2]int]int{}
	shardOf := map[int]string{}
	for _, id := range rd.shards {
		last := map[string]int{}
		for _, u := range rd.users[id] {
			f, seq := parseRecord(t, u)
			k := [2]int{f, seq}
			copiesOf[k]++
			if s, ok := shardOf[f]; ok && s != id {
				t.Errorf("file %d has lines on %s and %s, though its partition key is fixed", f, s, id)
			}
			shardOf[f] = id
			if copiesOf[k] > 1 {
				continue
			}
			name := onDisk[k]
			if seq <= last[name] {
				t.Errorf("%s: line %d of file %d first appears after line %d", name, seq, f, last[name])
			}
			last[name] = seq
		}
	}
	dups, afterKillDups := 0, 0
	for k, n := range copiesOf {
		dups += n - 1
		if k[1] > lastKill[k[0]] && n > 1 {
			afterKillDups += n - 1
		}
		if k[1] < 1 || k[1] > written[k[0]] {
			t.Errorf("the stream holds line %d of file %d, which was never written", k[1], k[0])
		}
	}
	t.Logf("%d lines written (%v per file), %d rotations (%d copytruncate), %d SIGKILLs, %d SIGTERM restarts plus the final stop",
		total, written, rotations, copies, kills, gracefulRestarts)
	t.Logf("stream: %d user records in %d Kinesis records; %d duplicates (bound %d), %d of lines written after the last kill",
		len(rd.all()), rd.kinesisRecords, dups, dupBound, afterKillDups)
	if missing := missingLines(t, rd.all(), written); missing > 0 {
		t.Errorf("%d lines missing", missing)
	}
	if dups > dupBound {
		t.Errorf("%d duplicates, more than kills and copies can explain (%d)", dups, dupBound)
	}
	if afterKillDups > 0 {
		t.Errorf("%d duplicates of lines written after the last kill, with only graceful restarts since", afterKillDups)
	}
	if rd.kinesisRecords*5 > len(rd.all()) {
		t.Errorf("%d Kinesis records for %d lines: aggregation did not pack them", rd.kinesisRecords, len(rd.all()))
	}
}

// parseRecord reads one record of the flow back: the file number and the line's sequence.
func parseRecord(t *testing.T, data string) (file, seq int) {
	t.Helper()
	var l line
	if err := json.Unmarshal([]byte(data), &l); err != nil || !strings.HasPrefix(l.File, "f") || strings.Trim(l.Pad, "x") != "" {
		t.Fatalf("record %q is not a line the test wrote: %v", data, err)
	}
	file, err1 := strconv.Atoi(l.File[1:])
	seq, err2 := strconv.Atoi(l.Seq)
	if err1 != nil || err2 != nil || len(l.Seq) != 8 {
		t.Fatalf("record %q is not a line the test wrote", data)
	}
	return file, seq
}

// missingLines counts the written lines not among records.
func missingLines(t *testing.T, records []string, written []int) int {
	seen := map[[2]int]bool{}
	for _, r := range records {
		f, s := parseRecord(t, r)
		seen[[2]int{f, s}] = true
	}
	missing := 0
	for f, n := range written {
		for s := 1; s <= n; s++ {
			if !seen[[2]int{f, s}] {
				missing++
			}
		}
	}
	return missing
}

// describeMissing says where the missing lines are: which ranges, in which files on disk at
// which offsets, and what the checkpoint file says of those files.
func describeMissing(t *testing.T, records []string, written []int, logs, state string) {
	seen := map[[2]int]bool{}
	for _, r := range records {
		f, s := parseRecord(t, r)
		seen[[2]int{f, s}] = true
	}
	where := map[string]string{}
	entries, _ := os.ReadDir(logs)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(logs, e.Name()))
		off := 0
		for _, l := range strings.SplitAfter(string(b), "\n") {
			if fs := strings.Fields(l); len(fs) >= 2 {
				where[fs[0]+" "+fs[1]] = fmt.Sprintf("%s@%d", e.Name(), off)
			}
			off += len(l)
		}
	}
	for f, n := range written {
		start := 0
		for s := 1; s <= n+1; s++ {
			miss := s <= n && !seen[[2]int{f, s}]
			if miss && start == 0 {
				start = s
			}
			if !miss && start > 0 {
				t.Logf("file %d: lines %d to %d missing; first in %s, last in %s", f, start, s-1,
					where[fmt.Sprintf("f%d %08d", f, start)], where[fmt.Sprintf("f%d %08d", f, s-1)])
				start = 0
			}
		}
	}
	cp, _ := os.ReadFile(filepath.Join(state, "checkpoints.json"))
	t.Logf("checkpoints:\n%s", cp)
	for _, e := range entries {
		fi, _ := os.Stat(filepath.Join(logs, e.Name()))
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			t.Logf("%s ino %d size %d", e.Name(), st.Ino, fi.Size())
		}
	}
}

// linesOnDisk maps each line the writers wrote to the name of the file holding it now.
func linesOnDisk(t *testing.T, logs string) map[[2]int]string {
	out := map[[2]int]string{}
	entries, err := os.ReadDir(logs)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(logs, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			var f, seq int
			if _, err := fmt.Sscanf(l, "f%d %d", &f, &seq); err == nil {
				if prev, dup := out[[2]int{f, seq}]; dup {
					t.Errorf("line %d of file %d is in both %s and %s", seq, f, prev, e.Name())
				}
				out[[2]int{f, seq}] = e.Name()
			}
		}
	}
	return out
}
