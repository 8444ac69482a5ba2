package agent

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCopyOfDrainingFileWaitsForDelivery: when copytruncate happens while the original's
// records are still unacknowledged (a batching sink holds them for its buffer age, longer than
// a copy is waited for), the copy must not be checkpointed past what was delivered: a crash
// then would lose those records, since the original now holds other content. The copy waits
// until the original's records are acknowledged, and then starts after them, so nothing is
// sent twice either.
func TestCopyOfDrainingFileWaitsForDelivery(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	lines := numbered(200) // 2,400 bytes, more than a fingerprint
	appendFile(t, p, strings.Join(lines, ""))
	cfg := testConfig(t, p+"*")
	sink := newFakeSink(1000, 4, 0, 0)
	defer sink.close()
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock() // before the sink closes, whose workers wait for it
	sink.mu.Lock()
	sink.blocked = release
	sink.mu.Unlock()
	a, stop := running(t, cfg, sink)
	eventually(t, 5*time.Second, "the lines sent", func() bool { return a.Stats().RecordsSent == int64(len(lines)) })

	copyPath := p + ".1"
	appendFile(t, copyPath, strings.Join(lines, ""))
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, "new 1\n")
	// Longer than a copy is waited for (copyPatience), with checkpoints saved meanwhile.
	time.Sleep(1500 * time.Millisecond)
	cd, err := loadCheckpoints(cfg.CheckpointFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range cd.Files {
		if e.Offset > 0 {
			t.Errorf("%s checkpointed at %d while none of its records was delivered", e.Path, e.Offset)
		}
	}

	unblock()
	eventually(t, 5*time.Second, "every line delivered", func() bool {
		for _, l := range lines {
			if sink.count(keyOf(l)) == 0 {
				return false
			}
		}
		return sink.count("new 1") > 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if n := sink.count(keyOf(l)); n != 1 {
			t.Errorf("%q delivered %d times", l, n)
		}
	}
}
