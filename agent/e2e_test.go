package agent

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// logWriter appends numbered lines to one log file and rotates it, the way an application and
// logrotate would. Writes and rotations take the same lock: copytruncate loses whatever is
// written between the copy and the truncation, which no reader can recover, so the test keeps
// that window empty and asserts only what the agent can guarantee.
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
	pad := strings.Repeat("x", rand.IntN(80))
	if _, err := fmt.Fprintf(w.f, "f%d %08d %s\n", w.id, w.seq, pad); err != nil {
		t.Error(err)
	}
}

func (w *logWriter) rotate(t *testing.T) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rotations++
	target := fmt.Sprintf("%s.%d", w.path, w.rotations)
	fi, err := w.f.Stat()
	if err != nil {
		t.Error(err)
		return
	}
	// A copy can only be recognised once the file has a full fingerprint; a shorter file is
	// rotated by renaming.
	if rand.IntN(2) == 0 && fi.Size() >= FingerprintSize {
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

// TestEndToEndRotationsAndRestarts is the agent's main promise: while writers append to
// several files and rotate them (rename-and-create and copytruncate) many times, and the agent
// is stopped and started again, every line written is delivered at least once, each file's
// lines are first sent in the order they were written, and lines are sent twice only when they
// were in flight at a restart (or in a copy found while its original was still being read).
// The sink delays acknowledgements at random, so they arrive out of order, and fails some
// deliveries, which the agent re-sends.
func TestEndToEndRotationsAndRestarts(t *testing.T) {
	dir := t.TempDir()
	const files = 3
	cfg := testConfig(t, filepath.Join(dir, "app-*.log*"))
	cfg.MaxInFlightRecords = 300 // small, so backpressure takes part
	cfg.Flows[0].CloseInactive = 500 * time.Millisecond

	writers := make([]*logWriter, files)
	for i := range writers {
		writers[i] = &logWriter{id: i, path: filepath.Join(dir, fmt.Sprintf("app-%d.log", i))}
		writers[i].open(t)
	}
	sink := newFakeSink(64, 8, 0.03, 2*time.Millisecond)
	defer sink.close()

	var stopWriting atomic.Bool
	var wg sync.WaitGroup
	for _, w := range writers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for !stopWriting.Load() {
				w.write(t)
				time.Sleep(time.Duration(rand.IntN(400)) * time.Microsecond)
			}
		}()
		go func() {
			defer wg.Done()
			for !stopWriting.Load() {
				time.Sleep(time.Duration(100+rand.IntN(150)) * time.Millisecond)
				w.rotate(t)
			}
		}()
	}

	const restarts = 3
	var stats []Stats
	for r := 0; r <= restarts; r++ {
		a, stop := running(t, cfg, sink)
		if r < restarts {
			time.Sleep(time.Duration(700+rand.IntN(500)) * time.Millisecond)
		} else {
			time.Sleep(500 * time.Millisecond)
			stopWriting.Store(true)
			wg.Wait()
			total := 0
			for _, w := range writers {
				total += w.seq
			}
			eventually(t, 30*time.Second, "every line delivered", func() bool {
				for _, w := range writers {
					for s := 1; s <= w.seq; s++ {
						if sink.count(lineKey(w.id, s)) == 0 {
							return false
						}
					}
				}
				return true
			})
			t.Logf("%d lines written", total)
		}
		if err := stop(); err != nil {
			t.Fatalf("restart %d: %v", r, err)
		}
		stats = append(stats, a.Stats())
		// Keep writing while the agent is down, as an application would.
		time.Sleep(time.Duration(rand.IntN(100)) * time.Millisecond)
	}
	for _, w := range writers {
		w.f.Close()
		t.Logf("file %d: %d lines, %d rotations (%d copytruncate)", w.id, w.seq, w.rotations, w.copies)
	}

	// Every delivery is a line that was written, whole.
	dups := 0
	for _, d := range sink.deliveredList() {
		if _, _, ok := parseLine(d); !ok {
			t.Fatalf("delivered a line that was never written: %q", d)
		}
	}
	sink.mu.Lock()
	for k, n := range sink.delivered {
		if n > 1 {
			dups += n - 1
			_ = k
		}
	}
	// First sends of each file (each inode) are in the order of the lines in it.
	lastByFile := map[FileID][2]int{}
	for _, s := range sink.sends {
		if !s.first {
			continue
		}
		id, seq, _ := parseLine(string(s.rec.Data))
		prev, seen := lastByFile[s.rec.File]
		if seen && (prev[0] != id || seq <= prev[1]) {
			t.Errorf("file %v (%s): line f%d %d first sent after f%d %d", s.rec.File, s.rec.Path, id, seq, prev[0], prev[1])
		}
		lastByFile[s.rec.File] = [2]int{id, seq}
	}
	nSends := len(sink.sends)
	sink.mu.Unlock()

	var acked, failed, retried int64
	for _, s := range stats {
		acked += s.RecordsAcked
		failed += s.RecordsFailed
		retried += s.RecordsRetried
	}
	t.Logf("sends %d, acked %d, failed %d, retried %d, duplicates %d", nSends, acked, failed, retried, dups)
	if failed == 0 || retried == 0 {
		t.Errorf("the sink failed %d deliveries and the agent retried %d; the test should exercise both", failed, retried)
	}
	// A restart re-sends at most what was read past the checkpoint, which the in-flight bound
	// limits; a copy found while its original was still being read may repeat what was in
	// flight of that file as well.
	if limit := (restarts + 1 + totalCopies(writers)) * cfg.MaxInFlightRecords; dups > limit {
		t.Errorf("%d duplicate deliveries, more than the in-flight bound allows (%d)", dups, limit)
	}
}

func totalCopies(ws []*logWriter) int {
	n := 0
	for _, w := range ws {
		n += w.copies
	}
	return n
}

func lineKey(id, seq int) string { return fmt.Sprintf("f%d %08d", id, seq) }

// parseLine reads "f<id> <seq> <padding>\n".
func parseLine(s string) (id, seq int, ok bool) {
	if !strings.HasSuffix(s, "\n") || !strings.HasPrefix(s, "f") {
		return 0, 0, false
	}
	parts := strings.SplitN(strings.TrimSuffix(s, "\n"), " ", 3)
	if len(parts) != 3 || strings.Trim(parts[2], "x") != "" {
		return 0, 0, false
	}
	id, err1 := strconv.Atoi(parts[0][1:])
	seq, err2 := strconv.Atoi(parts[1])
	return id, seq, err1 == nil && err2 == nil && len(parts[1]) == 8
}
