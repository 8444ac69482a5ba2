package checkpoint

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// heldCheckpointer returns a store with one lease taken by "w1", its holder and a checkpointer.
func heldCheckpointer(t *testing.T, start ExtendedSequenceNumber) (*MemoryStore, *LeaseHolder, *Checkpointer) {
	t.Helper()
	ctx := context.Background()
	s := NewMemoryStore()
	l, err := s.CreateLeaseIfNotExists(ctx, Lease{Key: "shardId-000000000001", Checkpoint: start})
	if err != nil {
		t.Fatal(err)
	}
	l, err = s.TakeLease(ctx, l, "w1")
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewLeaseHolder(s, l)
	if err != nil {
		t.Fatal(err)
	}
	return s, h, NewCheckpointer(h)
}

func checkpointErr(t *testing.T, err error, want error) *CheckpointError {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
	var ce *CheckpointError
	if !errors.As(err, &ce) {
		t.Fatalf("%v is not a *CheckpointError", err)
	}
	return ce
}

func TestCheckpointerAtLastDelivered(t *testing.T) {
	ctx := context.Background()
	s, _, c := heldCheckpointer(t, TrimHorizon)
	ce := checkpointErr(t, c.Checkpoint(ctx), ErrCheckpointBeyondDelivered)
	if !strings.Contains(ce.Error(), "no record was delivered") {
		t.Errorf("message %q does not say nothing was delivered", ce.Error())
	}
	if err := c.SetLastDelivered("99", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	// "100" is after "99" as a number although it sorts before it as a string.
	if err := c.SetLastDelivered("100", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Checkpoint(ctx); err != nil {
		t.Fatalf("checkpoint at 100 after 99: %v", err)
	}
	got, _ := s.GetLease(ctx, c.ShardKey())
	if got.Checkpoint != esn("100", 0) || c.Checkpointed() != esn("100", 0) {
		t.Fatalf("stored %v, checkpointer says %v", got.Checkpoint, c.Checkpointed())
	}
	// A lower delivery (records delivered again) does not lower the bound.
	if err := c.SetLastDelivered("50", 0); err != nil {
		t.Fatal(err)
	}
	if d, ok := c.LastDelivered(); !ok || d != esn("100", 0) {
		t.Fatalf("last delivered %v", d)
	}
}

func TestCheckpointerRefusesRegression(t *testing.T) {
	ctx := context.Background()
	_, _, c := heldCheckpointer(t, TrimHorizon)
	_ = c.SetLastDelivered("500", 0)
	if err := c.CheckpointAt(ctx, "300", 2); err != nil {
		t.Fatal(err)
	}
	for _, at := range []ExtendedSequenceNumber{esn("299", 9), esn("300", 1)} {
		ce := checkpointErr(t, c.CheckpointAt(ctx, at.SequenceNumber, at.SubSequenceNumber), ErrCheckpointRegression)
		if ce.Requested != at || ce.Current != esn("300", 2) {
			t.Errorf("error fields %+v", ce)
		}
		if !strings.Contains(ce.Error(), "stored checkpoint is 300/2") {
			t.Errorf("message %q does not name the stored checkpoint", ce.Error())
		}
	}
}

func TestCheckpointerRefusesBeyondDelivered(t *testing.T) {
	ctx := context.Background()
	s, h, c := heldCheckpointer(t, TrimHorizon)
	// An aggregated record 700 whose user records 0..4 were delivered.
	_ = c.SetLastDelivered("700", 4)
	ce := checkpointErr(t, c.CheckpointAt(ctx, "700", 5), ErrCheckpointBeyondDelivered)
	if ce.LastDelivered != esn("700", 4) || !strings.Contains(ce.Error(), "last delivered is 700/4") {
		t.Errorf("error %v", ce)
	}
	checkpointErr(t, c.CheckpointAt(ctx, "701", 0), ErrCheckpointBeyondDelivered)
	checkpointErr(t, c.CheckpointShardEnd(ctx), ErrCheckpointBeyondDelivered)
	// In the middle of the aggregate is fine.
	if err := c.CheckpointAt(ctx, "700", 2); err != nil {
		t.Fatal(err)
	}
	before := h.Lease().Counter
	// Nothing was written for the refusals.
	got, _ := s.GetLease(ctx, c.ShardKey())
	if got.Checkpoint != esn("700", 2) || got.Counter != before {
		t.Fatalf("stored %+v", got)
	}
}

func TestCheckpointerRefusesMalformed(t *testing.T) {
	ctx := context.Background()
	_, _, c := heldCheckpointer(t, TrimHorizon)
	_ = c.SetLastDelivered("10", 0)
	for _, seq := range []string{"", "abc", "-5", SentinelShardEnd, SentinelLatest} {
		checkpointErr(t, c.CheckpointAt(ctx, seq, 0), ErrInvalidSequenceNumber)
	}
	checkpointErr(t, c.CheckpointAt(ctx, "5", -1), ErrInvalidSequenceNumber)
	if err := c.SetLastDelivered("x", 0); !errors.Is(err, ErrInvalidSequenceNumber) {
		t.Errorf("SetLastDelivered(x): %v", err)
	}
	if err := c.SetLastDelivered(SentinelShardEnd, 0); !errors.Is(err, ErrInvalidSequenceNumber) {
		t.Errorf("SetLastDelivered(SHARD_END): %v", err)
	}
}

func TestCheckpointerShardEnd(t *testing.T) {
	ctx := context.Background()
	s, _, c := heldCheckpointer(t, esn("10", 0))
	_ = c.SetLastDelivered("20", 0)
	c.SetShardEnded()
	if err := c.CheckpointAt(ctx, "20", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckpointShardEnd(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetLease(ctx, c.ShardKey())
	if !got.Checkpoint.IsShardEnd() {
		t.Fatalf("stored %v", got.Checkpoint)
	}
	// Nothing comes after SHARD_END; repeating it is accepted without a write.
	checkpointErr(t, c.CheckpointAt(ctx, "20", 0), ErrCheckpointRegression)
	if err := c.Checkpoint(ctx); err != nil {
		t.Fatalf("checkpoint at SHARD_END again: %v", err)
	}
	again, _ := s.GetLease(ctx, c.ShardKey())
	if again.Counter != got.Counter {
		t.Fatalf("repeated checkpoint wrote: counter %d -> %d", got.Counter, again.Counter)
	}
}

func TestCheckpointerAfterLeaseLost(t *testing.T) {
	ctx := context.Background()
	s, h, c := heldCheckpointer(t, TrimHorizon)
	_ = c.SetLastDelivered("10", 0)
	// Another worker takes the lease (say this one stalled past the failover time).
	seen, _ := s.GetLease(ctx, c.ShardKey())
	taken, err := s.TakeLease(ctx, seen, "w2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateCheckpoint(ctx, taken, esn("5", 0)); err != nil {
		t.Fatal(err)
	}
	if err := c.Checkpoint(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("checkpoint after loss: %v", err)
	}
	if h.Err() == nil {
		t.Fatal("holder does not report the loss")
	}
	// Later calls fail the same way without touching the store.
	if _, err := h.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renew after loss: %v", err)
	}
	got, _ := s.GetLease(ctx, c.ShardKey())
	if got.Checkpoint != esn("5", 0) || got.Owner != "w2" {
		t.Fatalf("the new owner's checkpoint was overwritten: %+v", got)
	}
}

// Renewals and checkpoints both move the counter; through one holder neither fences the other.
func TestHolderSerializesRenewAndCheckpoint(t *testing.T) {
	ctx := context.Background()
	s, h, c := heldCheckpointer(t, TrimHorizon)
	h.SetThroughput(3.5)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range 100 {
			if _, err := h.Renew(ctx); err != nil {
				errs <- err
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range 100 {
			seq := 1000 + i
			if err := c.SetLastDelivered(strconv.Itoa(seq), 0); err != nil {
				errs <- err
			}
			if err := c.Checkpoint(ctx); err != nil {
				errs <- err
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, _ := s.GetLease(ctx, h.Key())
	if got.Counter != 1+200 || got.Checkpoint != esn("1099", 0) || got.ThroughputKBps == nil || *got.ThroughputKBps != 3.5 {
		t.Fatalf("final lease %+v", got)
	}
	if h.Lease().Counter != got.Counter {
		t.Fatalf("holder counter %d, stored %d", h.Lease().Counter, got.Counter)
	}
}

func TestHolderHandoffAndEvict(t *testing.T) {
	ctx := context.Background()
	s, h, c := heldCheckpointer(t, TrimHorizon)
	if _, err := s.InitiateHandoff(ctx, h.Lease(), "w2"); err != nil {
		t.Fatal(err)
	}
	if h.HandoffRequested() {
		t.Fatal("handoff seen before a renewal")
	}
	if _, err := h.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if !h.HandoffRequested() {
		t.Fatal("renewal did not reveal the handoff")
	}
	_ = c.SetLastDelivered("77", 0)
	if err := c.Checkpoint(ctx); err != nil {
		t.Fatalf("final checkpoint during handoff: %v", err)
	}
	ev, err := h.Evict(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Owner != "w2" || ev.CheckpointOwner != "" || ev.Checkpoint != esn("77", 0) {
		t.Fatalf("after evict %+v", ev)
	}
	if !errors.Is(h.Err(), ErrLeaseLost) {
		t.Fatalf("holder after evict: %v", h.Err())
	}
	if _, err := NewLeaseHolder(s, Lease{Key: "k"}); !errors.Is(err, ErrInvalidLease) {
		t.Fatalf("holder of an unowned lease: %v", err)
	}
}
