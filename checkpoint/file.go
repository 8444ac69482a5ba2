package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// FileConfig configures a FileStore.
type FileConfig struct {
	// Path is the file holding the leases. Required. Its directory is created (mode 0700) if
	// missing; the file is written with mode 0600.
	Path string
	// Logger receives recovery notes (leftover temporary files). Default: slog.Default().
	Logger *slog.Logger
}

// FileStore keeps leases in one JSON file for a consumer that runs as a single process on one
// node and must keep its checkpoints across restarts and crashes.
//
// Every change is durable before the call returns: the whole state is written to a temporary
// file in the same directory, synced, renamed over the previous file and the directory is
// synced, so after a crash (even kill -9 or power loss) the file holds either the state before
// or after the last call, never a torn mix.
//
// Concurrency: one FileStore value may be shared by any number of goroutines in its process;
// calls are serialized. Only one FileStore may have a given file open: OpenFileStore takes an
// exclusive lock (flock on a ".lock" file beside it, on systems that have flock) and fails if
// another process or another FileStore in the same process holds it. Workers in different
// processes therefore cannot share a FileStore; use the DynamoDB store for a fleet.
//
// Each write rewrites the whole file, which is fine for the hundreds of shards a single node
// consumes but not for tens of thousands.
type FileStore struct {
	core   *localCore
	path   string
	unlock func() error
	log    *slog.Logger
}

var _ Store = (*FileStore)(nil)

// fileVersion is the format version written to and required from the file.
const fileVersion = 1

type fileDoc struct {
	Version int         `json:"version"`
	Leases  []fileLease `json:"leases"`
}

// fileLease uses the lease table's attribute names so a person reading the file or moving the
// data to DynamoDB meets the same vocabulary.
type fileLease struct {
	Key                          string        `json:"leaseKey"`
	Owner                        string        `json:"leaseOwner,omitempty"`
	Counter                      int64         `json:"leaseCounter"`
	Checkpoint                   string        `json:"checkpoint"`
	CheckpointSub                int64         `json:"checkpointSubSequenceNumber"`
	PendingCheckpoint            *string       `json:"pendingCheckpoint,omitempty"`
	PendingCheckpointSub         int64         `json:"pendingCheckpointSubSequenceNumber,omitempty"`
	PendingCheckpointState       []byte        `json:"pendingCheckpointState,omitempty"`
	OwnerSwitchesSinceCheckpoint int64         `json:"ownerSwitchesSinceCheckpoint"`
	ParentShardIDs               []string      `json:"parentShardId,omitempty"`
	ChildShardIDs                []string      `json:"childShardIds,omitempty"`
	HashKeyRange                 *HashKeyRange `json:"hashKeyRange,omitempty"`
	CheckpointOwner              string        `json:"checkpointOwner,omitempty"`
	ThroughputKBps               *float64      `json:"throughputKBps,omitempty"`
	StreamIdentifier             string        `json:"streamName,omitempty"`
	ShardID                      string        `json:"shardId,omitempty"`
}

func toFileLease(l Lease) fileLease {
	f := fileLease{
		Key: l.Key, Owner: l.Owner, Counter: l.Counter,
		Checkpoint: l.Checkpoint.SequenceNumber, CheckpointSub: l.Checkpoint.SubSequenceNumber,
		PendingCheckpointState:       l.PendingCheckpointState,
		OwnerSwitchesSinceCheckpoint: l.OwnerSwitchesSinceCheckpoint,
		ParentShardIDs:               l.ParentShardIDs, ChildShardIDs: l.ChildShardIDs,
		HashKeyRange: l.HashKeyRange, CheckpointOwner: l.CheckpointOwner,
		ThroughputKBps: l.ThroughputKBps, StreamIdentifier: l.StreamIdentifier, ShardID: l.ShardID,
	}
	if p := l.PendingCheckpoint; p != nil {
		f.PendingCheckpoint = &p.SequenceNumber
		f.PendingCheckpointSub = p.SubSequenceNumber
	}
	return f
}

func (f fileLease) lease() Lease {
	l := Lease{
		Key: f.Key, Owner: f.Owner, Counter: f.Counter,
		Checkpoint:                   ExtendedSequenceNumber{SequenceNumber: f.Checkpoint, SubSequenceNumber: f.CheckpointSub},
		PendingCheckpointState:       f.PendingCheckpointState,
		OwnerSwitchesSinceCheckpoint: f.OwnerSwitchesSinceCheckpoint,
		ParentShardIDs:               shardSet(f.ParentShardIDs), ChildShardIDs: shardSet(f.ChildShardIDs),
		HashKeyRange: f.HashKeyRange, CheckpointOwner: f.CheckpointOwner,
		ThroughputKBps: f.ThroughputKBps, StreamIdentifier: f.StreamIdentifier, ShardID: f.ShardID,
	}
	if f.PendingCheckpoint != nil {
		l.PendingCheckpoint = &ExtendedSequenceNumber{SequenceNumber: *f.PendingCheckpoint, SubSequenceNumber: f.PendingCheckpointSub}
	}
	return l
}

// OpenFileStore opens (or creates on first write) the lease file at cfg.Path and locks it for
// this FileStore. Close releases the lock.
func OpenFileStore(cfg FileConfig) (*FileStore, error) {
	if cfg.Path == "" {
		return nil, errors.New("checkpoint: file store: empty path")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	path, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: file store: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint: file store: %w", err)
	}
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("checkpoint: file store %s: %w", path, err)
	}
	s := &FileStore{path: path, unlock: unlock, log: log}
	leases, err := s.load()
	if err != nil {
		_ = unlock()
		return nil, err
	}
	s.removeTemps()
	s.core = newLocalCore(leases, s.write)
	return s, nil
}

func (s *FileStore) load() (map[string]Lease, error) {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Lease{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: file store: %w", err)
	}
	var doc fileDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		// Never start from an empty state over a file we cannot read: that would silently
		// restart every shard from its initial position.
		return nil, fmt.Errorf("checkpoint: file store %s: corrupt lease file: %w", s.path, err)
	}
	if doc.Version != fileVersion {
		return nil, fmt.Errorf("checkpoint: file store %s: unsupported version %d", s.path, doc.Version)
	}
	leases := make(map[string]Lease, len(doc.Leases))
	for _, f := range doc.Leases {
		leases[f.Key] = f.lease()
	}
	return leases, nil
}

// tempPrefix names the temporary files; leftovers from a crash between create and rename are
// removed on open.
func (s *FileStore) tempPrefix() string { return filepath.Base(s.path) + ".tmp-" }

func (s *FileStore) removeTemps() {
	entries, err := os.ReadDir(filepath.Dir(s.path))
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), s.tempPrefix()) {
			p := filepath.Join(filepath.Dir(s.path), e.Name())
			if err := os.Remove(p); err == nil {
				s.log.Info("checkpoint: removed leftover temporary lease file", "path", p)
			}
		}
	}
}

// write makes leases the durable content of the file.
func (s *FileStore) write(leases map[string]Lease) error {
	doc := fileDoc{Version: fileVersion, Leases: make([]fileLease, 0, len(leases))}
	for _, k := range slices.Sorted(maps.Keys(leases)) {
		doc.Leases = append(doc.Leases, toFileLease(leases[k]))
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("checkpoint: file store: encode: %w", err)
	}
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, s.tempPrefix())
	if err != nil {
		return fmt.Errorf("checkpoint: file store: %w", err)
	}
	tmpName := tmp.Name()
	fail := func(err error) error {
		_ = tmp.Close()
		_ = os.Remove(tmpName)
		return fmt.Errorf("checkpoint: file store: %w", err)
	}
	// CreateTemp already uses 0600; set it explicitly so a changed default cannot widen it.
	if err := tmp.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail(err)
	}
	// Without this sync the rename could reach the disk before the data, leaving an empty or
	// partial file after a power loss.
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmpName)
		return fmt.Errorf("checkpoint: file store: %w", err)
	}
	if err := os.Rename(tmpName, s.path); err != nil {
		_ = os.Remove(tmpName)
		return fmt.Errorf("checkpoint: file store: %w", err)
	}
	// The rename is durable only once the directory entry is; until then a crash may bring
	// back the previous file, which the caller was told was replaced.
	if err := syncDir(dir); err != nil {
		return &uncertainError{fmt.Errorf("checkpoint: file store: sync directory: %w", err)}
	}
	return nil
}

// Path returns the absolute path of the lease file.
func (s *FileStore) Path() string { return s.path }

// Close releases the file lock; later calls fail with ErrStoreClosed. Every change was already
// durable, so Close writes nothing.
func (s *FileStore) Close() error {
	s.core.mu.Lock()
	defer s.core.mu.Unlock()
	if s.core.closed {
		return nil
	}
	s.core.closed = true
	return s.unlock()
}

// EnsureTable does nothing beyond checking the store is open: the file is created by the first
// write.
func (s *FileStore) EnsureTable(ctx context.Context) error {
	s.core.mu.Lock()
	defer s.core.mu.Unlock()
	return s.core.check(ctx)
}

// ListLeases returns every lease, sorted by key.
func (s *FileStore) ListLeases(ctx context.Context) ([]Lease, error) { return s.core.list(ctx) }

// GetLease returns the lease with the given key, or ErrLeaseNotFound.
func (s *FileStore) GetLease(ctx context.Context, key string) (Lease, error) {
	return s.core.get(ctx, key)
}

// CreateLeaseIfNotExists implements Store.
func (s *FileStore) CreateLeaseIfNotExists(ctx context.Context, lease Lease) (Lease, error) {
	return s.core.create(ctx, lease)
}

// TakeLease implements Store.
func (s *FileStore) TakeLease(ctx context.Context, seen Lease, newOwner string) (Lease, error) {
	return s.core.take(ctx, seen, newOwner)
}

// RenewLease implements Store. Each renewal is a durable write; a single-node consumer can use a
// long renewal interval, since no other process competes for its leases.
func (s *FileStore) RenewLease(ctx context.Context, held Lease) (Lease, error) {
	return s.core.renew(ctx, held)
}

// EvictLease implements Store.
func (s *FileStore) EvictLease(ctx context.Context, held Lease) (Lease, error) {
	return s.core.evict(ctx, held)
}

// UpdateCheckpoint implements Store.
func (s *FileStore) UpdateCheckpoint(ctx context.Context, held Lease, cp ExtendedSequenceNumber) (Lease, error) {
	return s.core.updateCheckpoint(ctx, held, cp)
}

// InitiateHandoff implements Store.
func (s *FileStore) InitiateHandoff(ctx context.Context, lease Lease, nextOwner string) (Lease, error) {
	return s.core.handoff(ctx, lease, nextOwner)
}

// CancelHandoff implements Store.
func (s *FileStore) CancelHandoff(ctx context.Context, lease Lease) (Lease, error) {
	return s.core.cancelHandoff(ctx, lease)
}

// UpdateChildShards implements Store.
func (s *FileStore) UpdateChildShards(ctx context.Context, key string, childShardIDs []string) (Lease, error) {
	return s.core.childShards(ctx, key, childShardIDs)
}

// UpdateHashKeyRange implements Store.
func (s *FileStore) UpdateHashKeyRange(ctx context.Context, key string, r HashKeyRange) (Lease, error) {
	return s.core.hashKeyRange(ctx, key, r)
}

// DeleteLease implements Store.
func (s *FileStore) DeleteLease(ctx context.Context, lease Lease) error {
	return s.core.delete(ctx, lease)
}
