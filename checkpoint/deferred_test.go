package checkpoint

import (
	"context"
	"testing"
)

// countingStore counts the writes that reach the store, by operation.
type countingStore struct {
	Store
	renewals, checkpoints int
}

func (s *countingStore) RenewLease(ctx context.Context, held Lease) (Lease, error) {
	s.renewals++
	return s.Store.RenewLease(ctx, held)
}

func (s *countingStore) UpdateCheckpoint(ctx context.Context, held Lease, cp ExtendedSequenceNumber) (Lease, error) {
	s.checkpoints++
	return s.Store.UpdateCheckpoint(ctx, held, cp)
}

// TestCheckpointAtNextRenewal checks that a deferred checkpoint is written by the next renewal
// in its place (one write, the counter moving as a renewal moves it, the throughput reported),
// that the checks apply when it is deferred, and that a checkpoint written at once takes a
// waiting one with it.
func TestCheckpointAtNextRenewal(t *testing.T) {
	ctx := context.Background()
	mem, _, _ := heldCheckpointer(t, TrimHorizon)
	l, err := mem.GetLease(ctx, "shardId-000000000001")
	if err != nil {
		t.Fatal(err)
	}
	s := &countingStore{Store: mem}
	h, err := NewLeaseHolder(s, l)
	if err != nil {
		t.Fatal(err)
	}
	c := NewCheckpointer(h)
	if err := c.SetLastDelivered("20", 0); err != nil {
		t.Fatal(err)
	}
	checkpointErr(t, c.CheckpointAtNextRenewal("21", 0), ErrCheckpointBeyondDelivered)
	if err := c.CheckpointAtNextRenewal("10", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckpointAtNextRenewal("15", 0); err != nil {
		t.Fatal(err)
	}
	if s.renewals+s.checkpoints != 0 {
		t.Fatalf("deferring wrote: %d renewals, %d checkpoints", s.renewals, s.checkpoints)
	}
	if d, ok := h.DeferredCheckpoint(); !ok || d != esn("15", 0) {
		t.Fatalf("deferred %v %v, want 15", d, ok)
	}
	h.SetThroughput(3.5)
	before := h.Lease().Counter
	got, err := h.Renew(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.renewals != 0 || s.checkpoints != 1 {
		t.Fatalf("renewal made %d renewals and %d checkpoints, want one checkpoint", s.renewals, s.checkpoints)
	}
	stored, _ := mem.GetLease(ctx, got.Key)
	if stored.Checkpoint != esn("15", 0) || stored.Counter != before+1 || stored.ThroughputKBps == nil || *stored.ThroughputKBps != 3.5 {
		t.Fatalf("stored checkpoint %v counter %d (want %d) throughput %v", stored.Checkpoint, stored.Counter, before+1, stored.ThroughputKBps)
	}
	if _, ok := h.DeferredCheckpoint(); ok {
		t.Fatal("checkpoint still waiting after the renewal wrote it")
	}
	// Nothing waiting: a bare renewal.
	if _, err := h.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if s.renewals != 1 || s.checkpoints != 1 {
		t.Fatalf("%d renewals, %d checkpoints; want 1 and 1", s.renewals, s.checkpoints)
	}
	// A regression is refused when deferred, not later.
	checkpointErr(t, c.CheckpointAtNextRenewal("12", 0), ErrCheckpointRegression)
	// An immediate checkpoint at or after a waiting one writes it.
	if err := c.CheckpointAtNextRenewal("18", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckpointAt(ctx, "20", 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.DeferredCheckpoint(); ok {
		t.Fatal("checkpoint at 18 still waiting after one at 20 was written")
	}
	if _, err := h.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if stored, _ := mem.GetLease(ctx, got.Key); stored.Checkpoint != esn("20", 0) {
		t.Fatalf("stored %v, want 20", stored.Checkpoint)
	}
	if s.renewals != 2 || s.checkpoints != 2 {
		t.Fatalf("%d renewals, %d checkpoints; want 2 and 2", s.renewals, s.checkpoints)
	}
}

// TestEvictWritesDeferredCheckpoint checks that giving a lease up writes the checkpoint that
// waits for a renewal, so a handoff keeps the progress the application recorded.
func TestEvictWritesDeferredCheckpoint(t *testing.T) {
	ctx := context.Background()
	s, h, c := heldCheckpointer(t, TrimHorizon)
	if err := c.SetLastDelivered("7", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckpointAtNextRenewal("7", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Evict(ctx); err != nil {
		t.Fatal(err)
	}
	l, _ := s.GetLease(ctx, c.ShardKey())
	if l.Checkpoint != esn("7", 0) || l.Owner != "" {
		t.Fatalf("after evict: checkpoint %v owner %q, want 7 and none", l.Checkpoint, l.Owner)
	}
}
