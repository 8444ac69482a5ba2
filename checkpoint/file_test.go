package checkpoint

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func openFile(t *testing.T, path string) *FileStore {
	t.Helper()
	s, err := OpenFileStore(FileConfig{Path: path, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFileStorePersistsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "leases.json")
	s := openFile(t, path)
	held := mustTake(t, s, "shardId-000000000001", "node")
	if _, err := s.UpdateCheckpoint(ctx, held, esn("12345678901234567890123", 4)); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "shardId-000000000002")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetLease(ctx, "shardId-000000000001"); !errors.Is(err, ErrStoreClosed) {
		t.Fatalf("get after close: %v", err)
	}

	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", info.Mode().Perm())
	}

	s2 := openFile(t, path)
	defer s2.Close()
	got, err := s2.GetLease(ctx, "shardId-000000000001")
	if err != nil {
		t.Fatal(err)
	}
	if got.Checkpoint != esn("12345678901234567890123", 4) || got.Owner != "node" || got.Counter != 2 {
		t.Fatalf("reopened lease %+v", got)
	}
	if l, _ := s2.ListLeases(ctx); len(l) != 2 {
		t.Fatalf("reopened %d leases", len(l))
	}
}

func TestFileStoreIsExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.json")
	s := openFile(t, path)
	if _, err := OpenFileStore(FileConfig{Path: path}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open of a locked file: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openFile(t, path)
	_ = s2.Close()
}

func TestFileStoreRefusesCorruptFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "leases.json")
	if err := os.WriteFile(path, []byte(`{"version":1,"leases":[{"leaseKey":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileStore(FileConfig{Path: path}); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("open corrupt file: %v", err)
	}
	if err := os.WriteFile(path, []byte(`{"version":99,"leases":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileStore(FileConfig{Path: path}); err == nil || !strings.Contains(err.Error(), "version") {
		t.Fatalf("open future version: %v", err)
	}
}

func TestFileStoreRemovesLeftoverTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "leases.json")
	s := openFile(t, path)
	mustCreate(t, s, "k")
	_ = s.Close()
	leftover := filepath.Join(dir, "leases.json.tmp-123")
	if err := os.WriteFile(leftover, []byte("half written"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "unrelated.tmp-1")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s = openFile(t, path)
	defer s.Close()
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover temporary file not removed: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("unrelated file touched: %v", err)
	}
	if _, err := s.GetLease(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
}

// killChildEnv names the lease file a re-executed test binary checkpoints into until killed.
const killChildEnv = "SHARDLINE_CHECKPOINT_KILL_CHILD"

// TestFileStoreKillChild is the child side of TestFileStoreSurvivesSIGKILL; it does nothing in
// a normal run. It takes the lease and checkpoints ever higher sequence numbers, printing each
// one after the store acknowledged it.
func TestFileStoreKillChild(t *testing.T) {
	path := os.Getenv(killChildEnv)
	if path == "" {
		t.Skip("child process of TestFileStoreSurvivesSIGKILL")
	}
	ctx := context.Background()
	s, err := OpenFileStore(FileConfig{Path: path, Logger: quietLogger()})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	l, err := s.CreateLeaseIfNotExists(ctx, Lease{Key: "shardId-000000000000", Checkpoint: TrimHorizon})
	if errors.Is(err, ErrLeaseExists) {
		l, err = s.GetLease(ctx, "shardId-000000000000")
	}
	if err == nil {
		l, err = s.TakeLease(ctx, l, "node")
	}
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	start := int64(0)
	if !l.Checkpoint.IsSentinel() {
		start, _ = strconv.ParseInt(l.Checkpoint.SequenceNumber, 10, 64)
	}
	for i := start + 1; ; i++ {
		l, err = s.UpdateCheckpoint(ctx, l, esn(strconv.FormatInt(i, 10), 0))
		if err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("ack", i)
	}
}

// The file store survives kill -9 at an arbitrary point: after each kill the file opens, is
// valid, and holds at least every checkpoint that was acknowledged (at most one more, written
// but not yet acknowledged when the process died).
func TestFileStoreSurvivesSIGKILL(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGKILL")
	}
	path := filepath.Join(t.TempDir(), "leases.json")
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFileStoreKillChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), killChildEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 20 + round*37
		var lastAck int64
		acks := 0
		sc := bufio.NewScanner(out)
		timer := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "ack "); ok {
				lastAck, _ = strconv.ParseInt(v, 10, 64)
				acks++
				if acks == killAfter {
					// Process.Kill sends SIGKILL: no deferred code, no flush, no cleanup.
					if err := cmd.Process.Kill(); err != nil {
						t.Fatal(err)
					}
				}
			} else if strings.HasPrefix(line, "error") {
				t.Fatalf("child: %s", line)
			}
		}
		timer.Stop()
		_ = cmd.Wait()
		if acks < killAfter {
			t.Fatalf("round %d: child stopped after %d acknowledgements", round, acks)
		}

		s := openFile(t, path)
		l, err := s.GetLease(context.Background(), "shardId-000000000000")
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		got, _ := strconv.ParseInt(l.Checkpoint.SequenceNumber, 10, 64)
		if got < lastAck || got > lastAck+1 {
			t.Fatalf("round %d: stored checkpoint %d, last acknowledged %d", round, got, lastAck)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed after %d acks (last %d), stored checkpoint %d", round, acks, lastAck, got)
	}
}
