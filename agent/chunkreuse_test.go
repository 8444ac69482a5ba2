package agent

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// releasingSink is a DataReleaser: it acknowledges records in batches of 64, out of order,
// and checks at Send and again at each acknowledgement that the record is the line of the
// file it names (lines are numbered), which it would not be if the agent reused a read
// buffer too early. It allocates nothing per record, so the test can count the agent's.
type releasingSink struct {
	want    []byte // the file; line i is want[i*128:(i+1)*128]
	mu      sync.Mutex
	got     []int32
	n       int
	corrupt int
	pending [64]releasingItem
	np      int
}

type releasingItem struct {
	data []byte
	ack  Ack
}

func (s *releasingSink) ReleasesData() {}

func (s *releasingSink) intact(d []byte) (int, bool) {
	if len(d) != 128 {
		return 0, false
	}
	i := 0
	for _, c := range d[:8] {
		i = 10*i + int(c-'0')
	}
	return i, i >= 0 && i < len(s.got) && bytes.Equal(d, s.want[i*128:(i+1)*128])
}

func (s *releasingSink) Send(_ context.Context, rec Record, ack Ack) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.intact(rec.Data); !ok {
		s.corrupt++
	}
	s.pending[s.np] = releasingItem{rec.Data, ack}
	s.np++
	if s.np == len(s.pending) {
		s.flushLocked()
	}
	return nil
}

func (s *releasingSink) flushLocked() {
	due := s.pending[:s.np]
	rand.Shuffle(len(due), func(i, j int) { due[i], due[j] = due[j], due[i] })
	for k := range due {
		i, ok := s.intact(due[k].data)
		if !ok {
			s.corrupt++
		} else {
			if s.got[i] == 0 {
				s.n++
			}
			s.got[i]++
		}
		due[k].ack.Done(nil)
		due[k] = releasingItem{}
	}
	s.np = 0
}

func (s *releasingSink) flushAll() {
	s.mu.Lock()
	s.flushLocked()
	s.mu.Unlock()
}

func (s *releasingSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// TestReadBuffersReusedWithDataReleaser: with a sink that does not use a record's data after
// its acknowledgement, the agent reuses its read buffers, so reading a large file allocates
// far less than the file's size, and no record's data changes before it is acknowledged.
func TestReadBuffersReusedWithDataReleaser(t *testing.T) {
	const lines = 100_000
	dir := t.TempDir()
	path := filepath.Join(dir, "big.log")
	var b bytes.Buffer
	for i := range lines {
		fmt.Fprintf(&b, "%08d %0118d\n", i, i) // 128 bytes
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, path)
	sink := &releasingSink{want: b.Bytes(), got: make([]int32, lines)}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	a, stop := running(t, cfg, sink)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for a.Stats().LinesRead < lines || sink.count() < lines {
			sink.flushAll()
			time.Sleep(time.Millisecond)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out: %d lines read, %d delivered", a.Stats().LinesRead, sink.count())
	}
	runtime.ReadMemStats(&after)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if sink.corrupt > 0 {
		t.Errorf("%d records changed before their acknowledgement", sink.corrupt)
	}
	for i, n := range sink.got {
		if n != 1 {
			t.Errorf("line %d delivered %d times", i, n)
		}
	}
	perLine := float64(after.TotalAlloc-before.TotalAlloc) / lines
	t.Logf("%.1f bytes allocated per 128-byte line", perLine)
	// Reading into new buffers alone costs a little over 128 bytes per line.
	if perLine > 64 && !raceEnabled { // the race detector allocates on its own
		t.Errorf("%.1f bytes allocated per line; read buffers are not reused", perLine)
	}
}
