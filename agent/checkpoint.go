package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// checkpointVersion is the format of the checkpoint file; a file of another version is
// refused rather than misread.
const checkpointVersion = 1

// checkpointData is the checkpoint file: for each file of each flow, its identity and the
// offset up to which every record was delivered.
type checkpointData struct {
	Version int               `json:"version"`
	Saved   time.Time         `json:"saved"`
	Flows   []string          `json:"flows"`
	Files   []checkpointEntry `json:"files"`
}

// checkpointEntry is one file's checkpoint. Offset counts bytes of the content whose first
// FingerprintLen bytes hash to Fingerprint; PrevFingerprint and PrevOffset describe the content
// the file had before it was last truncated, so a copy of it (copytruncate) resumes where
// reading stopped.
type checkpointEntry struct {
	Flow            string    `json:"flow"`
	Path            string    `json:"path"`
	Dev             uint64    `json:"dev"`
	Ino             uint64    `json:"ino"`
	FingerprintLen  int       `json:"fingerprintLen"`
	Fingerprint     string    `json:"fingerprint"`
	Offset          int64     `json:"offset"`
	PrevFingerprint string    `json:"prevFingerprint,omitempty"`
	PrevOffset      int64     `json:"prevOffset,omitempty"`
	LastSeen        time.Time `json:"lastSeen"`
}

// loadCheckpoints reads a checkpoint file; a missing file is an empty one.
func loadCheckpoints(path string) (*checkpointData, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &checkpointData{Version: checkpointVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint file: %w", err)
	}
	if bytes.HasPrefix(b, []byte("SQLite format 3\x00")) {
		return nil, fmt.Errorf("checkpoint file %s is an SQLite database (the Amazon Kinesis Agent's checkpoints?); Shardline keeps its own format, so set checkpointFile or stateDirectory to another place", path)
	}
	var cd checkpointData
	if err := json.Unmarshal(b, &cd); err != nil {
		return nil, fmt.Errorf("checkpoint file %s is damaged (%v); move it away to start without checkpoints", path, err)
	}
	if cd.Version != checkpointVersion {
		return nil, fmt.Errorf("checkpoint file %s has version %d; this agent reads version %d", path, cd.Version, checkpointVersion)
	}
	return &cd, nil
}

// saveCheckpoints replaces the checkpoint file so that a crash at any moment leaves either the
// old file or the new one: the data goes to a temporary file in the same directory, which is
// synced, renamed over the old file, and the directory synced so the rename itself survives a
// power loss. The file is readable by its owner only, since paths can say more than they should.
func saveCheckpoints(path string, cd *checkpointData) error {
	sort.Slice(cd.Files, func(i, j int) bool {
		a, b := &cd.Files[i], &cd.Files[j]
		if a.Flow != b.Flow {
			return a.Flow < b.Flow
		}
		if a.Dev != b.Dev {
			return a.Dev < b.Dev
		}
		return a.Ino < b.Ino
	})
	b, err := json.MarshalIndent(cd, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating temporary checkpoint file: %w", err)
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("checkpoint file mode: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("writing checkpoint file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("syncing checkpoint file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing checkpoint file: %w", err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("replacing checkpoint file: %w", err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("syncing state directory: %w", err)
		}
	}
	return nil
}
