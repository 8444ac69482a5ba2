package fanout_test

import (
	"context"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/internal/fanout"
	"github.com/shardline/shardline/kinesistest"
)

// ktFixture is a stream with a registered consumer on an in-process kinesistest server,
// whose clock moves on with real time and jumps when the test advances it.
type ktFixture struct {
	srv         *kinesistest.Server
	clock       *kinesistest.ManualClock
	kc          *kinesis.Client
	stream      string
	consumerARN string
}

func newKTFixture(t *testing.T, shards int32) *ktFixture {
	t.Helper()
	f := &ktFixture{clock: kinesistest.NewManualClock(time.Now()), stream: "orders"}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case now := <-tk.C:
				f.clock.Advance(now.Sub(last))
				last = now
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	f.srv = kinesistest.NewServer(kinesistest.Options{Clock: f.clock})
	t.Cleanup(f.srv.Close)
	f.kc = f.srv.Client()
	ctx := t.Context()
	if _, err := f.kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(f.stream), ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatal(err)
	}
	streamARN, err := fanout.StreamARN(ctx, f.kc, f.stream)
	if err != nil {
		t.Fatal(err)
	}
	if f.consumerARN, err = fanout.EnsureConsumer(ctx, f.kc, streamARN, "app"); err != nil {
		t.Fatal(err)
	}
	return f
}

// put writes n records "prefix-i" to the shard whose range starts at hashKey.
func (f *ktFixture) put(t *testing.T, hashKey, prefix string, n int) []string {
	t.Helper()
	var want []string
	var entries []types.PutRecordsRequestEntry
	for i := range n {
		d := fmt.Sprintf("%s-%d", prefix, i)
		want = append(want, d)
		entries = append(entries, types.PutRecordsRequestEntry{Data: []byte(d), PartitionKey: aws.String(d), ExplicitHashKey: aws.String(hashKey)})
	}
	out, err := f.kc.PutRecords(t.Context(), &kinesis.PutRecordsInput{StreamName: aws.String(f.stream), Records: entries})
	if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("PutRecords: %v (%d failed)", err, aws.ToInt32(out.FailedRecordCount))
	}
	return want
}

// TestKinesistestOverlappingSubscriptionsOneClient runs subscriptions to four shards at once on
// one *kinesis.Client, through two five-minute session ends each. aws-sdk-go-v2 decodes every
// event stream of a client with one shared codec (aws/smithy-go#714), so without a protocol
// instance per subscription the race detector reports the overlapping decoders; the
// subscriber must give each its own, and every shard must arrive whole and in order.
func TestKinesistestOverlappingSubscriptionsOneClient(t *testing.T) {
	const shards = 4
	f := newKTFixture(t, shards)
	list, err := f.kc.ListShards(t.Context(), &kinesis.ListShardsInput{StreamName: aws.String(f.stream)})
	if err != nil {
		t.Fatal(err)
	}
	subs := make([]*fanout.Subscriber, shards)
	got := make([]received, shards)
	want := make([][]string, shards)
	for i, sh := range list.Shards {
		subs[i] = subscribeKT(t, fanout.Config{Client: f.kc, ConsumerARN: f.consumerARN, ShardID: aws.ToString(sh.ShardId),
			StartingPosition: types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}})
	}
	for session := range 3 {
		for i, sh := range list.Shards {
			want[i] = append(want[i], f.put(t, aws.ToString(sh.HashKeyRange.StartingHashKey), fmt.Sprintf("s%d-%d", i, session), 50)...)
		}
		// Read all shards at once, so that their decoders overlap.
		errs := make([]error, shards)
		var wg sync.WaitGroup
		for i := range subs {
			wg.Go(func() { errs[i] = readAll(subs[i], &got[i], len(want[i]), 20*time.Second) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("shard %d, session %d: %v", i, session, err)
			}
		}
		f.clock.Advance(5*time.Minute + time.Second)
	}
	for i := range subs {
		sameStrings(t, fmt.Sprintf("shard %d", i), got[i].data, want[i])
		if st := subs[i].Stats(); st.Subscriptions < 3 {
			t.Errorf("shard %d: %d subscriptions, want at least 3 (two sessions ended)", i, st.Subscriptions)
		}
	}
}

// TestKinesistestShardEndWithChildShards splits a shard under its subscription. Kinesis ends a
// closed shard's subscription with an event without a continuation sequence number that
// names the child shards (https://docs.aws.amazon.com/kinesis/latest/APIReference/API_SubscribeToShardEvent.html);
// kinesis-mock never sends it, kinesistest does. With the ListShards checks off, the
// subscriber must end the shard from that event alone, with the children, and without
// polling.
func TestKinesistestShardEndWithChildShards(t *testing.T) {
	f := newKTFixture(t, 1)
	list, err := f.kc.ListShards(t.Context(), &kinesis.ListShardsInput{StreamName: aws.String(f.stream)})
	if err != nil {
		t.Fatal(err)
	}
	parent := list.Shards[0]
	sub := subscribeKT(t, fanout.Config{Client: f.kc, ConsumerARN: f.consumerARN, ShardID: aws.ToString(parent.ShardId),
		StartingPosition: types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}, ShardCheckInterval: -1})
	want := f.put(t, aws.ToString(parent.HashKeyRange.StartingHashKey), "before", 20)
	var got received
	readRecords(t, sub, &got, len(want), 20*time.Second)
	end, _ := new(big.Int).SetString(aws.ToString(parent.HashKeyRange.EndingHashKey), 10)
	mid := new(big.Int).Rsh(end, 1)
	if _, err := f.kc.SplitShard(t.Context(), &kinesis.SplitShardInput{StreamName: aws.String(f.stream),
		ShardToSplit: parent.ShardId, NewStartingHashKey: aws.String(mid.String())}); err != nil {
		t.Fatal(err)
	}
	last := readToEnd(t, sub, &got, 20*time.Second)
	sameStrings(t, "parent", got.data, want)
	if len(last.ChildShards) != 2 {
		t.Fatalf("the last batch names %d child shards, want 2: %+v", len(last.ChildShards), last.ChildShards)
	}
	for _, c := range last.ChildShards {
		if len(c.ParentShards) != 1 || c.ParentShards[0] != aws.ToString(parent.ShardId) {
			t.Errorf("child %s has parents %v, want [%s]", aws.ToString(c.ShardId), c.ParentShards, aws.ToString(parent.ShardId))
		}
	}
	if st := sub.Stats(); st.PolledBatches != 0 || st.ShardChecks != 0 {
		t.Errorf("stats %+v: the end came from polling or a listing, not from the subscription", st)
	}
}

// readAll is readRecords for goroutines other than the test's: it returns what went wrong.
func readAll(sub *fanout.Subscriber, got *received, n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for len(got.data) < n {
		b, err := sub.Next(ctx)
		if err != nil {
			return fmt.Errorf("after %d of %d records: %w", len(got.data), n, err)
		}
		got.add(b)
	}
	return nil
}

func subscribeKT(t *testing.T, cfg fanout.Config) *fanout.Subscriber {
	t.Helper()
	sub, err := fanout.Subscribe(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}
