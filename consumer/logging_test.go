package consumer

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardline/shardline/checkpoint"
)

// infoRecorder keeps the messages a logger gets at INFO and above.
type infoRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *infoRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (r *infoRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, rec.Message)
	r.mu.Unlock()
	return nil
}
func (r *infoRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *infoRecorder) WithGroup(string) slog.Handler      { return r }

// TestInfoLinesAreForOperators runs one worker over four shards from start to a graceful
// stop. At INFO it says what an operator follows (the worker starting and stopping, each
// lease it takes, as the KCL logs them); the routine steps of every shard (leases created,
// reads started, parents checked, balance rounds, releases at shutdown) are DEBUG.
func TestInfoLinesAreForOperators(t *testing.T) {
	checkNoLeak(t)
	const shards = 4
	f := newFakeKinesis("s", shards)
	total := putKeys(f, testKeys(16), 5, map[string]int{})
	var seen atomic.Int64
	cfg := fakeConfig(t, f, checkpoint.NewMemoryStore(), "w1", RecordFunc(func(ctx context.Context, r Record) error {
		seen.Add(1)
		return nil
	}))
	rec := &infoRecorder{}
	cfg.Logger = slog.New(rec)
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rw := runWorker(t, w)
	waitFor(t, 10*time.Second, "every record", func() bool { return seen.Load() == int64(total) })
	if err := rw.stop(); err != nil {
		t.Fatal(err)
	}

	operator := map[string]bool{
		"consumer: worker started": true,
		"consumer: took lease":     true,
		"consumer: shutting down":  true,
		"consumer: worker stopped": true,
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, m := range rec.msgs {
		if !operator[m] {
			t.Errorf("INFO line %q is routine, not for an operator", m)
		}
	}
	if max := 3 + shards; len(rec.msgs) > max {
		t.Errorf("%d INFO lines for a run over %d shards, want at most %d: %q", len(rec.msgs), shards, max, rec.msgs)
	}
}
