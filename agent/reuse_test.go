package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReusedInodeIsNotTakenForARename: a file deleted while its records are still in flight
// (its state is kept until they are acknowledged) frees its inode once the agent closed it as
// inactive, and a new file may get the same inode under another name. Device and inode alone
// would make that a rename of the old file, whose content then looks truncated; the
// fingerprint shows it is a new file, read from its start with no truncation reported.
func TestReusedInodeIsNotTakenForARename(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "a.log")
	appendFile(t, old, strings.Repeat("old content line\n", 10))
	cfg := testConfig(t, filepath.Join(dir, "*.log"))
	cfg.Flows[0].CloseInactive = 200 * time.Millisecond
	sink := &blockingSink{}
	a, stop := running(t, cfg, sink)
	eventually(t, 5*time.Second, "the old file read and closed", func() bool {
		s := a.Stats()
		return s.RecordsSent == 10 && s.FilesTailed == 0
	})
	fi, err := os.Stat(old)
	if err != nil {
		t.Fatal(err)
	}
	ino, _ := fileIDOf(fi)
	if err := os.Remove(old); err != nil {
		t.Fatal(err)
	}
	// Probe names the pattern does not match, until the file system hands out the freed inode.
	var probe string
	for i := 0; i < 100 && probe == ""; i++ {
		p := filepath.Join(dir, fmt.Sprintf("probe-%d.tmp", i))
		appendFile(t, p, "")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if id, _ := fileIDOf(fi); id == ino {
			probe = p
		}
	}
	if probe == "" {
		t.Fatal("the file system did not reuse the freed inode; this test needs one that does (ext4, xfs)")
	}
	appendFile(t, probe, "new file line\n")
	if err := os.Rename(probe, filepath.Join(dir, "b.log")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the new file's line sent", func() bool { return a.Stats().RecordsSent == 11 })
	time.Sleep(3 * cfg.Flows[0].RescanInterval)
	eventually(t, 5*time.Second, "everything acknowledged", func() bool {
		sink.flush()
		return a.Stats().RecordsAcked == 11
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := a.Stats().Truncations; n != 0 {
		t.Errorf("%d truncations reported for a new file with a reused inode", n)
	}
	if n := a.Stats().RecordsSent; n != 11 {
		t.Errorf("%d records sent, want 11", n)
	}
}

// TestIdleFileIsPolledLessOften: an open file that does not grow is checked less and less
// often (file system events wake its reader when it is written), so idle files cost little;
// a write is still read.
func TestIdleFileIsPolledLessOften(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "idle.log")
	appendFile(t, p, "first\n")
	cfg := testConfig(t, p)
	cfg.Flows[0].MinTimeBetweenFilePolls = 10 * time.Millisecond
	cfg.Flows[0].CloseInactive = time.Minute
	sink := keepingSink()
	a, _ := running(t, cfg, sink)
	eventually(t, 5*time.Second, "the first line", hasAll(sink, "first\n"))
	before := a.Stats().IdlePolls
	time.Sleep(2 * time.Second)
	polls := a.Stats().IdlePolls - before
	// At a fixed 10 ms this would be about 200; backing off to a second it is about 10.
	if polls > 40 {
		t.Errorf("%d checks of an idle file in 2 s", polls)
	}
	appendFile(t, p, "second\n")
	eventually(t, 5*time.Second, "the line written later", hasAll(sink, "second\n"))
	t.Logf("%d checks in 2 s", polls)
}
