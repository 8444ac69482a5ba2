package consumer

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shardline/shardline/checkpoint"
)

// logCapture is a slog handler that keeps every record, for tests of what a worker says.
type logCapture struct {
	mu   *sync.Mutex
	recs *[]slog.Record
}

func newLogCapture() logCapture { return logCapture{mu: &sync.Mutex{}, recs: &[]slog.Record{}} }

func (h logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (h logCapture) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.recs = append(*h.recs, r.Clone())
	return nil
}
func (h logCapture) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h logCapture) WithGroup(string) slog.Handler      { return h }

// find returns the attributes of the records whose message contains msg.
func (h logCapture) find(msg string) []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]string
	for _, r := range *h.recs {
		if !strings.Contains(r.Message, msg) {
			continue
		}
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
		out = append(out, attrs)
	}
	return out
}

// TestTakeLogNamesThePreviousOwner checks the taker's log lines: after a graceful handoff the
// line names the worker the lease came from (not the taker itself), and a lease whose owner
// died during a handoff is reported as expired, not as released late.
func TestTakeLogNamesThePreviousOwner(t *testing.T) {
	t.Run("handoff", func(t *testing.T) {
		checkNoLeak(t)
		f := newFakeKinesis("s", 2)
		store := checkpoint.NewMemoryStore()
		c := newCollector()
		putKeys(f, testKeys(10), 2, map[string]int{})
		w1, _ := New(fakeConfig(t, f, store, "w1", processorFor(c, "w1", nil)))
		rw1 := runWorker(t, w1)
		waitFor(t, 5*time.Second, "w1 holding both leases", func() bool { return w1.Stats().LeasesHeld == 2 })
		logs := newLogCapture()
		cfg2 := fakeConfig(t, f, store, "w2", processorFor(c, "w2", nil))
		cfg2.Logger = slog.New(logs)
		w2, _ := New(cfg2)
		rw2 := runWorker(t, w2)
		waitFor(t, 10*time.Second, "w2 taking a lease", func() bool { return w2.Stats().LeasesHeld == 1 })
		_ = rw2.stop()
		_ = rw1.stop()
		took := logs.find("took lease")
		if len(took) == 0 {
			t.Fatal("no take logged")
		}
		if a := took[0]; a["reason"] != "handoff" || a["previous_owner"] != "w1" {
			t.Errorf("take logged with %v, want reason handoff and previous_owner w1", a)
		}
	})

	t.Run("owner dies during the handoff", func(t *testing.T) {
		checkNoLeak(t)
		f := newFakeKinesis("s", 2)
		store := checkpoint.NewMemoryStore()
		c := newCollector()
		putKeys(f, testKeys(10), 2, map[string]int{})
		cfg1 := fakeConfig(t, f, store, "w1", ProcessorFactoryFunc(func(shard string) RecordProcessor {
			return &blockingShutdown{testProcessor{c: c, worker: "w1", shard: shard}}
		}))
		w1, _ := New(cfg1)
		rw1 := runWorker(t, w1)
		waitFor(t, 5*time.Second, "w1 holding both leases", func() bool { return w1.Stats().LeasesHeld == 2 })
		logs := newLogCapture()
		cfg2 := fakeConfig(t, f, store, "w2", processorFor(c, "w2", nil))
		cfg2.Logger = slog.New(logs)
		w2, _ := New(cfg2)
		rw2 := runWorker(t, w2)
		waitFor(t, 10*time.Second, "w2 asking for a lease", func() bool { return w2.Stats().HandoffsRequested == 1 })
		w1.Kill()
		_ = rw1.wait(10 * time.Second)
		waitFor(t, 10*time.Second, "w2 holding both leases", func() bool { return w2.Stats().LeasesHeld == 2 })
		_ = rw2.stop()
		if late := logs.find("did not release the lease in time"); len(late) > 0 {
			t.Errorf("an expiry reported as a late release: %v", late)
		}
		for _, a := range logs.find("took lease") {
			if a["previous_owner"] != "w1" || (a["reason"] != "expired" && a["reason"] != "expired during the handoff") {
				t.Errorf("take logged with %v, want an expiry of w1's lease", a)
			}
		}
	})
}
