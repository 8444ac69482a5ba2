package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCheckpointCostIndependentOfHistory: checkpoints of files no longer tracked (10,000
// rotated files seen within the checkpoint time to live) are kept, but a save after a tracked
// file moved does not rewrite them: what is written each interval is the tracked files'
// positions only. After a restart every entry is still known.
func TestCheckpointCostIndependentOfHistory(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendFile(t, p, "one\n")
	cfg := testConfig(t, p)
	const history = 10000
	old := &checkpointData{Version: checkpointVersion, Flows: []string{cfg.Flows[0].Key()}}
	seen := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for i := 0; i < history; i++ {
		old.Files = append(old.Files, checkpointEntry{Flow: cfg.Flows[0].Key(), Path: fmt.Sprintf("/var/log/app.log.%d", i),
			Dev: 1, Ino: uint64(1000000 + i), FingerprintLen: 4, Fingerprint: hashOf([]byte("gone")), Offset: 4, LastSeen: seen})
	}
	if err := saveCheckpoints(cfg.CheckpointFile, old); err != nil {
		t.Fatal(err)
	}
	sink := keepingSink()
	a, stop := running(t, cfg, sink)
	eventually(t, 5*time.Second, "the first line", hasAll(sink, "one\n"))
	eventually(t, 5*time.Second, "a save", func() bool { return a.Stats().CheckpointSaves > 0 })
	archive := archivePath(cfg.CheckpointFile)
	fi1, err := os.Stat(archive)
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 6; i++ {
		saves := a.Stats().CheckpointSaves
		appendFile(t, p, fmt.Sprintf("line %d\n", i))
		eventually(t, 5*time.Second, "another save", func() bool { return a.Stats().CheckpointSaves > saves })
	}
	fi2, err := os.Stat(archive)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(fi1, fi2) {
		t.Error("the entries of untracked files were written again though none changed")
	}
	main, err := os.Stat(cfg.CheckpointFile)
	if err != nil {
		t.Fatal(err)
	}
	if main.Size() > 8<<10 {
		t.Errorf("the checkpoint file written every interval is %d bytes with one tracked file", main.Size())
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	a2, err := New(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	fs := a2.registry[cfg.Flows[0].Key()]
	if fs == nil || len(fs.loaded) != history+1 {
		t.Errorf("after a restart %d entries are known, want %d", len(fs.loaded), history+1)
	}
	t.Logf("per-interval file %d bytes; archive %d bytes", main.Size(), fi2.Size())
}
