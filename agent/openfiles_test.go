package agent

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMaxOpenFilesEvictsLeastRecentlyActive: with more growing files than maxOpenFiles, no
// more than maxOpenFiles are open at once; opening one closes the file that grew least
// recently, which is opened again when it grows, at its position, so no line is lost, sent
// twice or split (a line without its newline when its file is closed waits for the rest).
func TestMaxOpenFilesEvictsLeastRecentlyActive(t *testing.T) {
	const files, rounds, limit = 12, 15, 3
	dir := t.TempDir()
	cfg := testConfig(t, filepath.Join(dir, "*.log"))
	cfg.MaxOpenFiles = limit
	cfg.Flows[0].CloseInactive = time.Minute // only the cap closes files here
	sink := keepingSink()
	a, stop := running(t, cfg, sink)

	var maxOpen atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if n := a.Stats().FilesTailed; n > maxOpen.Load() {
				maxOpen.Store(n)
			}
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	path := func(i int) string { return filepath.Join(dir, fmt.Sprintf("f%02d.log", i)) }
	var want []string
	for r := range rounds {
		for i := range files {
			appendFile(t, path(i), fmt.Sprintf("f%02d r%03d start", i, r))
		}
		time.Sleep(20 * time.Millisecond)
		for i := range files {
			appendFile(t, path(i), " end\n")
			want = append(want, fmt.Sprintf("f%02d r%03d start end\n", i, r))
		}
		time.Sleep(20 * time.Millisecond)
	}
	eventually(t, 20*time.Second, "every line", hasAll(sink, want...))
	close(done)
	wg.Wait()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, d := range sink.data() {
		got[d]++
	}
	for _, w := range want {
		if got[w] != 1 {
			t.Errorf("line %q delivered %d times, want once", w, got[w])
		}
		delete(got, w)
	}
	for d, n := range got {
		t.Errorf("unexpected record %q (%d times)", d, n)
	}
	if m := maxOpen.Load(); m > limit {
		t.Errorf("%d files open at once, want at most maxOpenFiles=%d", m, limit)
	}
	if n := a.Stats().FilesEvicted; n == 0 {
		t.Errorf("no file was closed for the cap")
	}
}

func TestMaxOpenFilesConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"maxOpenFiles": 100, "flows": [{"filePattern": "/var/log/a.log", "kinesisStream": "s"}]}`))
	if err != nil || cfg.MaxOpenFiles != 100 {
		t.Fatalf("maxOpenFiles: %v, %v", cfg, err)
	}
	cfg, err = ParseConfig([]byte(`{"flows": [{"filePattern": "/var/log/a.log", "kinesisStream": "s"}]}`))
	if err != nil || cfg.MaxOpenFiles != DefaultMaxOpenFiles {
		t.Fatalf("default maxOpenFiles: %v, %v", cfg.MaxOpenFiles, err)
	}
	if _, err := ParseConfig([]byte(`{"maxOpenFiles": 0, "flows": [{"filePattern": "/var/log/a.log", "kinesisStream": "s"}]}`)); err == nil {
		t.Errorf("maxOpenFiles 0 accepted")
	}
}
