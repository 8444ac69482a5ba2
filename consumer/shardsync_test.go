package consumer

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/checkpoint"
)

// shard describes a listed shard: parents, and whether it is closed.
func shard(id string, closed bool, parents ...string) types.Shard {
	s := types.Shard{
		ShardId:             aws.String(id),
		HashKeyRange:        &types.HashKeyRange{StartingHashKey: aws.String("0"), EndingHashKey: aws.String("10")},
		SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("1")},
	}
	if closed {
		s.SequenceNumberRange.EndingSequenceNumber = aws.String("9")
	}
	if len(parents) > 0 {
		s.ParentShardId = aws.String(parents[0])
	}
	if len(parents) > 1 {
		s.AdjacentParentShardId = aws.String(parents[1])
	}
	return s
}

func planned(ls []checkpoint.Lease) map[string]string {
	out := map[string]string{}
	for _, l := range ls {
		out[l.Key] = l.Checkpoint.SequenceNumber
	}
	return out
}

func TestPlanNewLeases(t *testing.T) {
	// 0 was split into 2 and 3; 1 and 3 were merged into 4.
	shards := []types.Shard{
		shard("s4", false, "s1", "s3"),
		shard("s0", true),
		shard("s1", true),
		shard("s2", false, "s0"),
		shard("s3", true, "s0"),
	}
	cases := []struct {
		name   string
		leases []checkpoint.Lease
		pos    InitialPosition
		want   map[string]string
	}{
		{"fresh, trim horizon: every shard", nil, TrimHorizon,
			map[string]string{"s0": "TRIM_HORIZON", "s1": "TRIM_HORIZON", "s2": "TRIM_HORIZON", "s3": "TRIM_HORIZON", "s4": "TRIM_HORIZON"}},
		{"fresh, latest: open shards only", nil, Latest,
			map[string]string{"s2": "LATEST", "s4": "LATEST"}},
		{"fresh, at timestamp", nil, AtTimestamp,
			map[string]string{"s0": "AT_TIMESTAMP", "s1": "AT_TIMESTAMP", "s2": "TRIM_HORIZON", "s3": "TRIM_HORIZON", "s4": "TRIM_HORIZON"}},
		{"children of leased parents start at trim horizon", []checkpoint.Lease{{Key: "s0"}, {Key: "s1"}}, Latest,
			map[string]string{"s2": "TRIM_HORIZON", "s3": "TRIM_HORIZON", "s4": "TRIM_HORIZON"}},
		{"cleaned-up parents are not created again", []checkpoint.Lease{{Key: "s2"}, {Key: "s4"}}, TrimHorizon,
			map[string]string{}},
		{"a child of a cleaned-up parent gets its lease", []checkpoint.Lease{{Key: "s2"}, {Key: "s1"}}, TrimHorizon,
			map[string]string{"s3": "TRIM_HORIZON", "s4": "TRIM_HORIZON"}},
		{"complete table", []checkpoint.Lease{{Key: "s0"}, {Key: "s1"}, {Key: "s2"}, {Key: "s3"}, {Key: "s4"}}, TrimHorizon,
			map[string]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := planNewLeases(shards, tc.leases, tc.pos)
			if p := planned(got); !mapsEqual(p, tc.want) {
				t.Fatalf("planned %v, want %v", p, tc.want)
			}
			// Parents come before their children.
			at := map[string]int{}
			for i, l := range got {
				at[l.Key] = i
			}
			for _, l := range got {
				for _, p := range l.ParentShardIDs {
					if i, ok := at[p]; ok && i > at[l.Key] {
						t.Errorf("%s planned before its parent %s", l.Key, p)
					}
				}
			}
		})
	}
	got := planNewLeases(shards, nil, TrimHorizon)
	for _, l := range got {
		if l.Key == "s4" && !slices.Equal(l.ParentShardIDs, []string{"s1", "s3"}) {
			t.Errorf("s4 parents %v", l.ParentShardIDs)
		}
		if l.HashKeyRange == nil {
			t.Errorf("%s has no hash key range", l.Key)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestPlanCleanup(t *testing.T) {
	shards := []types.Shard{shard("s0", true), shard("s1", false, "s0"), shard("s2", false, "s0")}
	started := checkpoint.ExtendedSequenceNumber{SequenceNumber: "5"}
	cases := []struct {
		name   string
		leases []checkpoint.Lease
		want   []string
	}{
		{"children started", []checkpoint.Lease{
			{Key: "s0", Checkpoint: checkpoint.ShardEnd}, {Key: "s1", Checkpoint: started}, {Key: "s2", Checkpoint: checkpoint.ShardEnd}}, []string{"s0"}},
		{"a child has not started", []checkpoint.Lease{
			{Key: "s0", Checkpoint: checkpoint.ShardEnd}, {Key: "s1", Checkpoint: started}, {Key: "s2", Checkpoint: checkpoint.TrimHorizon}}, nil},
		{"a child has no lease yet", []checkpoint.Lease{
			{Key: "s0", Checkpoint: checkpoint.ShardEnd}, {Key: "s1", Checkpoint: started}}, nil},
		{"parent not finished", []checkpoint.Lease{
			{Key: "s0", Checkpoint: started}, {Key: "s1", Checkpoint: started}, {Key: "s2", Checkpoint: started}}, nil},
		{"deleted from the top of the lineage", []checkpoint.Lease{
			{Key: "s0", Checkpoint: checkpoint.ShardEnd}, {Key: "s1", Checkpoint: checkpoint.ShardEnd, ParentShardIDs: []string{"s0"}, ChildShardIDs: []string{"s9"}},
			{Key: "s2", Checkpoint: started}, {Key: "s9", Checkpoint: started}}, []string{"s0"}},
		{"expired shard without children", []checkpoint.Lease{{Key: "gone", Checkpoint: checkpoint.ShardEnd}}, []string{"gone"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := keysOf(planCleanup(tc.leases, shards))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("cleanup %v, want %v", got, tc.want)
			}
		})
	}
}

func TestListShardsFollowsPages(t *testing.T) {
	f := newFakeKinesis("s", 7) // three pages of three
	shards, err := listShards(context.Background(), f, "s", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) != 7 || f.calls["ListShards"] != 3 {
		t.Fatalf("%d shards in %d calls, want 7 in 3", len(shards), f.calls["ListShards"])
	}
	if _, err := listShards(context.Background(), f, "other", time.Second); err == nil {
		t.Fatal("want an error for a missing stream")
	}
	var _ = kinesis.ListShardsInput{}
}

// listCountingStore counts ListLeases calls.
type listCountingStore struct {
	checkpoint.Store
	lists atomic.Int64
}

func (s *listCountingStore) ListLeases(ctx context.Context) ([]checkpoint.Lease, error) {
	s.lists.Add(1)
	return s.Store.ListLeases(ctx)
}

// TestShardSyncReusesTakeScan checks that a shard sync lists no leases of its own when the
// lease taker's scan is fresh: the scans of the lease table are the taker's alone, one per
// TakeInterval, not also one per ShardSyncInterval.
func TestShardSyncReusesTakeScan(t *testing.T) {
	checkNoLeak(t)
	f := newFakeKinesis("s", 2)
	store := &listCountingStore{Store: checkpoint.NewMemoryStore()}
	cfg := fakeConfig(t, f, store, "w1", processorFor(newCollector(), "w1", nil))
	cfg.TakeInterval = 300 * time.Millisecond
	cfg.ShardSyncInterval = 350 * time.Millisecond
	w, _ := New(cfg)
	rw := runWorker(t, w)
	defer rw.stop()
	waitFor(t, 5*time.Second, "both leases", func() bool { return w.Stats().LeasesHeld == 2 })
	l0, s0, t0 := store.lists.Load(), w.Stats().ShardSyncs, time.Now()
	time.Sleep(4 * time.Second)
	lists, syncs, elapsed := store.lists.Load()-l0, w.Stats().ShardSyncs-s0, time.Since(t0)
	scans := float64(elapsed) / float64(cfg.TakeInterval)
	if syncs < 5 {
		t.Fatalf("only %d shard syncs in %s", syncs, elapsed)
	}
	if float64(lists) > scans*1.3+2 {
		t.Errorf("%d ListLeases in %s with %d shard syncs, want about one per TakeInterval (%.0f)", lists, elapsed.Round(time.Millisecond), syncs, scans)
	}
}
