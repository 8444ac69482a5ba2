package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
)

// storeFactory returns a fresh, empty store whose table exists; it registers its own cleanup.
type storeFactory func(t *testing.T) Store

// runConformance checks the behaviour every Store must share. Each subtest gets a fresh store.
func runConformance(t *testing.T, newStore storeFactory) {
	ctx := context.Background()
	cases := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"EnsureTableIdempotent", func(t *testing.T, s Store) {
			for range 2 {
				if err := s.EnsureTable(ctx); err != nil {
					t.Fatalf("EnsureTable: %v", err)
				}
			}
		}},
		{"CreateAndGetRoundTrip", func(t *testing.T, s Store) {
			tp := 12.5
			in := Lease{
				Key:                          "shardId-000000000007",
				Owner:                        "worker-a",
				CheckpointOwner:              "worker-b",
				Counter:                      5,
				Checkpoint:                   ExtendedSequenceNumber{SequenceNumber: "49590338271490256608559692538361571095921575989136588898", SubSequenceNumber: 3},
				PendingCheckpoint:            &ExtendedSequenceNumber{SequenceNumber: "49590338271490256608559692538361571095921575989136588999", SubSequenceNumber: 1},
				PendingCheckpointState:       []byte("app-state"),
				OwnerSwitchesSinceCheckpoint: 2,
				ParentShardIDs:               []string{"shardId-000000000002", "shardId-000000000001", "shardId-000000000002"},
				ChildShardIDs:                []string{"shardId-000000000009"},
				HashKeyRange:                 &HashKeyRange{StartingHashKey: "0", EndingHashKey: "340282366920938463463374607431768211455"},
				ThroughputKBps:               &tp,
				StreamIdentifier:             "123456789012:orders:1700000000",
				ShardID:                      "shardId-000000000007",
			}
			created, err := s.CreateLeaseIfNotExists(ctx, in)
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			want := in.Clone()
			want.ParentShardIDs = []string{"shardId-000000000001", "shardId-000000000002"}
			assertLease(t, "created", created, want)
			got, err := s.GetLease(ctx, in.Key)
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			assertLease(t, "read back", got, want)
		}},
		{"CreateMinimal", func(t *testing.T, s Store) {
			got := mustCreate(t, s, "shardId-000000000000")
			want := Lease{Key: "shardId-000000000000", Checkpoint: TrimHorizon}
			assertLease(t, "minimal", got, want)
			got, err := s.GetLease(ctx, want.Key)
			if err != nil {
				t.Fatal(err)
			}
			assertLease(t, "minimal read back", got, want)
		}},
		{"CreateExisting", func(t *testing.T, s Store) {
			mustCreate(t, s, "k")
			_, err := s.CreateLeaseIfNotExists(ctx, Lease{Key: "k", Checkpoint: Latest})
			if !errors.Is(err, ErrLeaseExists) {
				t.Fatalf("second create: got %v, want ErrLeaseExists", err)
			}
			var le *LeaseError
			if !errors.As(err, &le) || le.Key != "k" || le.Op != OpCreateLease {
				t.Fatalf("error %v is not a *LeaseError for k", err)
			}
			got, _ := s.GetLease(ctx, "k")
			if got.Checkpoint != TrimHorizon {
				t.Fatalf("existing lease changed: %+v", got)
			}
		}},
		{"CreateInvalid", func(t *testing.T, s Store) {
			for _, l := range []Lease{
				{Checkpoint: TrimHorizon},
				{Key: "k"},
				{Key: "k", Checkpoint: ExtendedSequenceNumber{SequenceNumber: "12a"}},
				{Key: "k", Checkpoint: ExtendedSequenceNumber{SequenceNumber: "12", SubSequenceNumber: -1}},
				{Key: "k", Checkpoint: TrimHorizon, HashKeyRange: &HashKeyRange{StartingHashKey: "x", EndingHashKey: "1"}},
				{Key: "k", Checkpoint: TrimHorizon, CheckpointOwner: "a"},
			} {
				if _, err := s.CreateLeaseIfNotExists(ctx, l); !errors.Is(err, ErrInvalidLease) {
					t.Errorf("create %+v: got %v, want ErrInvalidLease", l, err)
				}
			}
		}},
		{"GetMissing", func(t *testing.T, s Store) {
			_, err := s.GetLease(ctx, "nope")
			if !errors.Is(err, ErrLeaseNotFound) {
				t.Fatalf("got %v, want ErrLeaseNotFound", err)
			}
		}},
		{"ListPaginated", func(t *testing.T, s Store) {
			leases, err := s.ListLeases(ctx)
			if err != nil || len(leases) != 0 {
				t.Fatalf("empty list: %v, %v", leases, err)
			}
			var want []string
			for i := range 23 {
				k := fmt.Sprintf("shardId-%012d", i)
				mustCreate(t, s, k)
				want = append(want, k)
			}
			leases, err = s.ListLeases(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range leases {
				got = append(got, l.Key)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("listed %v, want %v", got, want)
			}
		}},
		{"TakeUnassigned", func(t *testing.T, s Store) {
			seen := mustCreate(t, s, "k")
			got, err := s.TakeLease(ctx, seen, "w1")
			if err != nil {
				t.Fatal(err)
			}
			if got.Owner != "w1" || got.Counter != 1 || got.OwnerSwitchesSinceCheckpoint != 0 {
				t.Fatalf("took %+v", got)
			}
			// A second taker acting on the same (now stale) view must lose.
			_, err = s.TakeLease(ctx, seen, "w2")
			assertLost(t, err, "w1", 1)
		}},
		{"TakeFromOtherOwnerCountsSwitch", func(t *testing.T, s Store) {
			seen := mustCreate(t, s, "k")
			l1, err := s.TakeLease(ctx, seen, "w1")
			if err != nil {
				t.Fatal(err)
			}
			l2, err := s.TakeLease(ctx, l1, "w2")
			if err != nil {
				t.Fatal(err)
			}
			if l2.Owner != "w2" || l2.Counter != 2 || l2.OwnerSwitchesSinceCheckpoint != 1 {
				t.Fatalf("took %+v", l2)
			}
			// Re-taking one's own lease is not a switch.
			l3, err := s.TakeLease(ctx, l2, "w2")
			if err != nil {
				t.Fatal(err)
			}
			if l3.OwnerSwitchesSinceCheckpoint != 1 || l3.Counter != 3 {
				t.Fatalf("re-took %+v", l3)
			}
			// The old owner cannot renew or checkpoint any more.
			_, err = s.RenewLease(ctx, l1)
			assertLost(t, err, "w2", 3)
			_, err = s.UpdateCheckpoint(ctx, l1, ExtendedSequenceNumber{SequenceNumber: "5"})
			assertLost(t, err, "w2", 3)
		}},
		{"TakeChecksOwnerSeen", func(t *testing.T, s Store) {
			seen := mustCreate(t, s, "k")
			l1, _ := s.TakeLease(ctx, seen, "w1")
			wrong := l1
			wrong.Owner = "someone-else"
			_, err := s.TakeLease(ctx, wrong, "w2")
			assertLost(t, err, "w1", 1)
		}},
		{"TakeMissingAndInvalid", func(t *testing.T, s Store) {
			_, err := s.TakeLease(ctx, Lease{Key: "nope"}, "w1")
			if !errors.Is(err, ErrLeaseNotFound) {
				t.Fatalf("take missing: %v", err)
			}
			seen := mustCreate(t, s, "k")
			if _, err := s.TakeLease(ctx, seen, ""); !errors.Is(err, ErrInvalidLease) {
				t.Fatalf("take with empty owner: %v", err)
			}
		}},
		{"Renew", func(t *testing.T, s Store) {
			held := mustTake(t, s, "k", "w1")
			tp := 256.25
			held.ThroughputKBps = &tp
			r1, err := s.RenewLease(ctx, held)
			if err != nil {
				t.Fatal(err)
			}
			if r1.Counter != held.Counter+1 || r1.Owner != "w1" || r1.ThroughputKBps == nil || *r1.ThroughputKBps != tp {
				t.Fatalf("renewed %+v", r1)
			}
			r1.ThroughputKBps = nil
			r2, err := s.RenewLease(ctx, r1)
			if err != nil || r2.Counter != r1.Counter+1 || r2.ThroughputKBps == nil || *r2.ThroughputKBps != tp {
				t.Fatalf("second renew %+v, %v", r2, err)
			}
			// Renewing from the stale view fails.
			_, err = s.RenewLease(ctx, r1)
			assertLost(t, err, "w1", r2.Counter)
			// So does renewing as another owner at the right counter.
			other := r2
			other.Owner = "w2"
			_, err = s.RenewLease(ctx, other)
			assertLost(t, err, "w1", r2.Counter)
		}},
		{"HolderWritesNeedOwner", func(t *testing.T, s Store) {
			l := mustCreate(t, s, "k")
			if _, err := s.RenewLease(ctx, l); !errors.Is(err, ErrInvalidLease) {
				t.Errorf("renew unowned: %v", err)
			}
			if _, err := s.EvictLease(ctx, l); !errors.Is(err, ErrInvalidLease) {
				t.Errorf("evict unowned: %v", err)
			}
			if _, err := s.UpdateCheckpoint(ctx, l, ShardEnd); !errors.Is(err, ErrInvalidLease) {
				t.Errorf("checkpoint unowned: %v", err)
			}
			held, err := s.TakeLease(ctx, l, "w1")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.UpdateCheckpoint(ctx, held, ExtendedSequenceNumber{SequenceNumber: "-1"}); !errors.Is(err, ErrInvalidLease) {
				t.Errorf("checkpoint malformed: %v", err)
			}
		}},
		{"UpdateCheckpoint", func(t *testing.T, s Store) {
			seen, err := s.CreateLeaseIfNotExists(ctx, Lease{
				Key: "k", Checkpoint: TrimHorizon, OwnerSwitchesSinceCheckpoint: 4,
				PendingCheckpoint: &ExtendedSequenceNumber{SequenceNumber: "77"}, PendingCheckpointState: []byte{1, 2},
			})
			if err != nil {
				t.Fatal(err)
			}
			held, err := s.TakeLease(ctx, seen, "w1")
			if err != nil {
				t.Fatal(err)
			}
			cp := ExtendedSequenceNumber{SequenceNumber: "1000000000000000000000000000001", SubSequenceNumber: 7}
			got, err := s.UpdateCheckpoint(ctx, held, cp)
			if err != nil {
				t.Fatal(err)
			}
			if got.Checkpoint != cp || got.Counter != held.Counter+1 || got.OwnerSwitchesSinceCheckpoint != 0 ||
				got.PendingCheckpoint != nil || got.PendingCheckpointState != nil || got.Owner != "w1" {
				t.Fatalf("checkpointed %+v", got)
			}
			// A writer with a stale view must not overwrite the stored checkpoint.
			_, err = s.UpdateCheckpoint(ctx, held, ExtendedSequenceNumber{SequenceNumber: "5"})
			assertLost(t, err, "w1", got.Counter)
			read, _ := s.GetLease(ctx, "k")
			if read.Checkpoint != cp {
				t.Fatalf("stale write changed the checkpoint to %v", read.Checkpoint)
			}
			// A checkpoint standing in for a renewal reports the throughput as one would.
			tp := 12.5
			got.ThroughputKBps = &tp
			got2, err := s.UpdateCheckpoint(ctx, got, ExtendedSequenceNumber{SequenceNumber: "1000000000000000000000000000002"})
			if err != nil || got2.ThroughputKBps == nil || *got2.ThroughputKBps != tp {
				t.Fatalf("checkpoint with throughput: %+v, %v", got2, err)
			}
			if read, _ := s.GetLease(ctx, "k"); read.ThroughputKBps == nil || *read.ThroughputKBps != tp {
				t.Fatalf("stored throughput %v, want %v", read.ThroughputKBps, tp)
			}
		}},
		{"EvictFreesLease", func(t *testing.T, s Store) {
			held := mustTake(t, s, "k", "w1")
			ev, err := s.EvictLease(ctx, held)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Owner != "" || ev.CheckpointOwner != "" || ev.Counter != held.Counter+1 || !ev.IsUnassigned() {
				t.Fatalf("evicted %+v", ev)
			}
			if _, err := s.RenewLease(ctx, held); !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("renew after evict: %v", err)
			}
			got, err := s.TakeLease(ctx, ev, "w2")
			if err != nil || got.Owner != "w2" || got.OwnerSwitchesSinceCheckpoint != 0 {
				t.Fatalf("take after evict: %+v, %v", got, err)
			}
		}},
		{"GracefulHandoff", func(t *testing.T, s Store) {
			a := mustTake(t, s, "k", "A")
			h, err := s.InitiateHandoff(ctx, a, "B")
			if err != nil {
				t.Fatal(err)
			}
			if h.Owner != "B" || h.CheckpointOwner != "A" || h.Counter != a.Counter || h.ActualOwner() != "A" {
				t.Fatalf("handoff %+v", h)
			}
			if _, err := s.InitiateHandoff(ctx, a, "C"); !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("second handoff: %v", err)
			}
			// A has not seen the handoff yet: it still renews, and learns of it.
			r, err := s.RenewLease(ctx, a)
			if err != nil {
				t.Fatal(err)
			}
			if !r.HandoffRequested("A") || r.HandoffRequested("B") {
				t.Fatalf("renewal does not show the handoff: %+v", r)
			}
			// B is not the actual owner and cannot renew or checkpoint.
			b := r
			b.CheckpointOwner = ""
			if _, err := s.RenewLease(ctx, b); !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("B renewed during handoff: %v", err)
			}
			cp := ExtendedSequenceNumber{SequenceNumber: "42"}
			c, err := s.UpdateCheckpoint(ctx, r, cp)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := s.EvictLease(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Owner != "B" || ev.CheckpointOwner != "" || ev.Counter != c.Counter+1 || ev.Checkpoint != cp {
				t.Fatalf("after A evicted: %+v", ev)
			}
			// B now holds it without a take: it is owner and actual owner.
			if _, err := s.RenewLease(ctx, ev); err != nil {
				t.Fatalf("B renew: %v", err)
			}
		}},
		{"HandoffTimeoutTake", func(t *testing.T, s Store) {
			a := mustTake(t, s, "k", "A")
			h, err := s.InitiateHandoff(ctx, a, "B")
			if err != nil {
				t.Fatal(err)
			}
			// A never finishes; B takes after the timeout, which clears checkpointOwner.
			b, err := s.TakeLease(ctx, h, "B")
			if err != nil {
				t.Fatal(err)
			}
			if b.Owner != "B" || b.CheckpointOwner != "" || b.Counter != a.Counter+1 || b.OwnerSwitchesSinceCheckpoint != 1 {
				t.Fatalf("took %+v", b)
			}
			if _, err := s.UpdateCheckpoint(ctx, h, ExtendedSequenceNumber{SequenceNumber: "1"}); !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("A checkpointed after B took: %v", err)
			}
		}},
		{"CancelHandoff", func(t *testing.T, s Store) {
			a := mustTake(t, s, "k", "A")
			h, err := s.InitiateHandoff(ctx, a, "B")
			if err != nil {
				t.Fatal(err)
			}
			// A does not answer and keeps renewing, as a KCL 2.x worker does.
			r, err := s.RenewLease(ctx, a)
			if err != nil {
				t.Fatal(err)
			}
			// B withdraws its request on the view it had before that renewal: only the owners
			// are compared, never the counter, which A keeps moving.
			cancelled, err := s.CancelHandoff(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			if cancelled.Owner != "A" || cancelled.CheckpointOwner != "" || cancelled.Counter != r.Counter {
				t.Fatalf("after cancel: %+v", cancelled)
			}
			// A renews on as before, and a second cancel finds no handoff to withdraw.
			if _, err := s.RenewLease(ctx, r); err != nil {
				t.Fatalf("A renew after cancel: %v", err)
			}
			if _, err := s.CancelHandoff(ctx, h); !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("second cancel: %v", err)
			}
			if _, err := s.CancelHandoff(ctx, a); !errors.Is(err, ErrInvalidLease) {
				t.Fatalf("cancel without a handoff: %v", err)
			}
		}},
		{"HandoffInvalid", func(t *testing.T, s Store) {
			l := mustCreate(t, s, "k")
			if _, err := s.InitiateHandoff(ctx, l, "B"); !errors.Is(err, ErrInvalidLease) {
				t.Errorf("handoff of unowned: %v", err)
			}
			a, err := s.TakeLease(ctx, l, "A")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.InitiateHandoff(ctx, a, "A"); !errors.Is(err, ErrInvalidLease) {
				t.Errorf("handoff to self: %v", err)
			}
			if _, err := s.InitiateHandoff(ctx, Lease{Key: "nope", Owner: "A"}, "B"); !errors.Is(err, ErrLeaseNotFound) {
				t.Errorf("handoff of missing: %v", err)
			}
		}},
		{"ShardInfo", func(t *testing.T, s Store) {
			held := mustTake(t, s, "k", "w1")
			got, err := s.UpdateChildShards(ctx, "k", []string{"shardId-3", "shardId-2", "shardId-3"})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.ChildShardIDs, []string{"shardId-2", "shardId-3"}) || got.Counter != held.Counter || got.Owner != "w1" {
				t.Fatalf("child shards %+v", got)
			}
			r := HashKeyRange{StartingHashKey: "10", EndingHashKey: "99999999999999999999999999"}
			got, err = s.UpdateHashKeyRange(ctx, "k", r)
			if err != nil || got.HashKeyRange == nil || *got.HashKeyRange != r || got.Counter != held.Counter {
				t.Fatalf("hash range %+v, %v", got, err)
			}
			// The holder's view is still current: these writes do not fence it.
			if _, err := s.RenewLease(ctx, held); err != nil {
				t.Fatalf("renew after shard info: %v", err)
			}
			if _, err := s.UpdateChildShards(ctx, "nope", []string{"x"}); !errors.Is(err, ErrLeaseNotFound) {
				t.Errorf("child shards of missing: %v", err)
			}
			if _, err := s.UpdateHashKeyRange(ctx, "nope", r); !errors.Is(err, ErrLeaseNotFound) {
				t.Errorf("hash range of missing: %v", err)
			}
			if _, err := s.UpdateChildShards(ctx, "k", nil); !errors.Is(err, ErrInvalidLease) {
				t.Errorf("empty child shards: %v", err)
			}
		}},
		{"Delete", func(t *testing.T, s Store) {
			held := mustTake(t, s, "k", "w1")
			done, err := s.UpdateCheckpoint(ctx, held, ShardEnd)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteLease(ctx, held); !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("delete with stale counter: %v", err)
			}
			if err := s.DeleteLease(ctx, done); err != nil {
				t.Fatalf("delete: %v", err)
			}
			if _, err := s.GetLease(ctx, "k"); !errors.Is(err, ErrLeaseNotFound) {
				t.Fatalf("get after delete: %v", err)
			}
			if err := s.DeleteLease(ctx, done); !errors.Is(err, ErrLeaseNotFound) {
				t.Fatalf("second delete: %v", err)
			}
			if _, err := s.RenewLease(ctx, done); !errors.Is(err, ErrLeaseNotFound) {
				t.Fatalf("renew deleted: %v", err)
			}
		}},
		{"CancelledContext", func(t *testing.T, s Store) {
			mustCreate(t, s, "k")
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := s.GetLease(cctx, "k"); !errors.Is(err, context.Canceled) {
				t.Fatalf("get with cancelled context: %v", err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t)
			if err := s.EnsureTable(ctx); err != nil {
				t.Fatalf("EnsureTable: %v", err)
			}
			c.fn(t, s)
		})
	}
}

func mustCreate(t *testing.T, s Store, key string) Lease {
	t.Helper()
	l, err := s.CreateLeaseIfNotExists(context.Background(), Lease{Key: key, Checkpoint: TrimHorizon})
	if err != nil {
		t.Fatalf("create %s: %v", key, err)
	}
	return l
}

func mustTake(t *testing.T, s Store, key, owner string) Lease {
	t.Helper()
	l, err := s.TakeLease(context.Background(), mustCreate(t, s, key), owner)
	if err != nil {
		t.Fatalf("take %s: %v", key, err)
	}
	return l
}

// assertLost checks err is ErrLeaseLost and carries the lease as it now is.
func assertLost(t *testing.T, err error, owner string, counter int64) {
	t.Helper()
	if !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("got %v, want ErrLeaseLost", err)
	}
	var le *LeaseError
	if !errors.As(err, &le) {
		t.Fatalf("%v is not a *LeaseError", err)
	}
	if le.Current == nil || le.Current.Owner != owner || le.Current.Counter != counter {
		t.Fatalf("error %v: current lease %+v, want owner %q counter %d", err, le.Current, owner, counter)
	}
}

func assertLease(t *testing.T, what string, got, want Lease) {
	t.Helper()
	if !reflect.DeepEqual(normalize(got), normalize(want)) {
		t.Fatalf("%s:\n got %s\nwant %s", what, describe(got), describe(want))
	}
}

// normalize maps empty slices to nil so a store that returns []string{} and one that returns
// nil compare equal.
func normalize(l Lease) Lease {
	l = l.Clone()
	if len(l.ParentShardIDs) == 0 {
		l.ParentShardIDs = nil
	}
	if len(l.ChildShardIDs) == 0 {
		l.ChildShardIDs = nil
	}
	if len(l.PendingCheckpointState) == 0 {
		l.PendingCheckpointState = nil
	}
	return l
}

func describe(l Lease) string {
	s := fmt.Sprintf("%+v", l)
	if l.PendingCheckpoint != nil {
		s += fmt.Sprintf(" pending=%v", *l.PendingCheckpoint)
	}
	if l.HashKeyRange != nil {
		s += fmt.Sprintf(" range=%v", *l.HashKeyRange)
	}
	if l.ThroughputKBps != nil {
		s += fmt.Sprintf(" tp=%v", *l.ThroughputKBps)
	}
	return s
}
