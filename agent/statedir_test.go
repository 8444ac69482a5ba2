package agent

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// unusableStateDirs returns a directory nobody can create files in and a missing directory
// whose parent is such a one. Permission bits do not stop root, so as root a directory of
// /proc, where no file can be created at all, stands in.
func unusableStateDirs(t *testing.T) (readOnly, missingUnderReadOnly string) {
	t.Helper()
	if os.Geteuid() == 0 {
		if _, err := os.Stat("/proc/self"); err != nil {
			t.Fatalf("running as root, this test needs /proc: %v", err)
		}
		return "/proc/self", "/proc/self/shardline-state"
	}
	ro := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(ro, 0o755) })
	return ro, filepath.Join(ro, "state")
}

// TestUnusableStateDirectoryFailsAtStart: New refuses a state directory where checkpoints
// cannot be saved, instead of running without ever saving a position.
func TestUnusableStateDirectoryFailsAtStart(t *testing.T) {
	ro, missing := unusableStateDirs(t)
	for _, dir := range []string{ro, missing} {
		cfg := testConfig(t, filepath.Join(t.TempDir(), "*.log"))
		cfg.CheckpointFile = filepath.Join(dir, CheckpointFileName)
		_, err := New(cfg, keepingSink())
		if !errors.Is(err, ErrStateDirectory) {
			t.Errorf("%s: %v, want ErrStateDirectory", dir, err)
		}
	}
	// A missing directory under a writable parent is created.
	cfg := testConfig(t, filepath.Join(t.TempDir(), "*.log"))
	cfg.CheckpointFile = filepath.Join(t.TempDir(), "a", "b", CheckpointFileName)
	if _, err := New(cfg, keepingSink()); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Dir(cfg.CheckpointFile)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory %v, %v", fi, err)
	}
}
