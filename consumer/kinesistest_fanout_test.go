package consumer

import (
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/internal/fanout"
	"github.com/shardline/shardline/kinesistest"
)

// TestKinesistestFanOutSessions runs fan-out workers against the session rules of
// SubscribeToShard (https://docs.aws.amazon.com/kinesis/latest/APIReference/API_SubscribeToShard.html),
// which kinesistest follows and kinesis-mock does not: a subscription ends after five minutes,
// a second one for the same consumer and shard within five seconds of the first is refused
// with ResourceInUseException, and at a closed shard's end the last event has no continuation
// sequence number and names the child shards.
func TestKinesistestFanOutSessions(t *testing.T) {
	keys := testKeys(30)

	fanOutConfig := func(cfg Config) Config {
		cfg.Retrieval = FanOut
		// Only the subscription may report a shard's end: no ListShards look-ups, and no
		// GetRecords calls to finish a shard.
		cfg.FanOutShardCheckInterval = -1
		return cfg
	}

	t.Run("session end", func(t *testing.T) {
		checkNoLeak(t)
		clock := kinesistest.NewManualClock(time.Now())
		env := newKTEnv(t, 1, kinesistest.Options{Clock: clock})
		prod := newTestProducer(t, env.client(nil), env.stream)
		c := newCollector()
		calls := newCallCounter()
		cfg := fanOutConfig(env.config(t, env.client(calls), checkpoint.NewMemoryStore(), "app", "w1", processorFor(c, "w1", nil)))
		w, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		rw := runWorker(t, w)
		total := 0
		for round := range 3 {
			n, err := prod.produce(t.Context(), keys, 5, 0)
			if err != nil {
				t.Fatal(err)
			}
			total += n
			c.waitDistinct(t, total, 20*time.Second)
			if round < 2 {
				// The server ends the subscription; the worker must subscribe again after the
				// last batch it read.
				clock.Advance(5*time.Minute + time.Second)
				waitFor(t, 10*time.Second, "a new subscription", func() bool { return calls.get("SubscribeToShard") >= round+2 })
			}
		}
		if err := rw.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
		if got := calls.get("SubscribeToShard"); got < 3 {
			t.Errorf("%d SubscribeToShard calls, want at least 3 (two sessions ended)", got)
		}
		if got := calls.get("GetRecords"); got != 0 {
			t.Errorf("%d GetRecords calls: the shard was polled", got)
		}
		if st := w.Stats(); st.RetrievalFallbacks != 0 {
			t.Errorf("RetrievalFallbacks = %d, want 0", st.RetrievalFallbacks)
		}
		checkOrder(t, c.snapshot())
		checkExactlyOnce(t, c)
	})

	t.Run("second subscription within five seconds", func(t *testing.T) {
		checkNoLeak(t)
		// The test's own subscription sometimes loses its connection ("use of closed network
		// connection" on the client side) before the worker's first call; the scenario is
		// then not there to judge, and runs again on a fresh stream.
		for attempt := 1; ; attempt++ {
			if secondSubscriptionRefused(t, keys, fanOutConfig) {
				return
			}
			if attempt == 3 {
				t.Fatal("the other subscription ended before the worker's in every attempt")
			}
		}
	})

	t.Run("child shards at the end of a closed shard", func(t *testing.T) {
		checkNoLeak(t)
		env := newKTEnv(t, 1, kinesistest.Options{})
		prod := newTestProducer(t, env.client(nil), env.stream)
		ctx := t.Context()
		c := newCollector()
		calls := newCallCounter()
		kc := env.client(calls)
		store := checkpoint.NewMemoryStore()
		var ws []*runningWorker
		for _, id := range []string{"w1", "w2"} {
			w, err := New(fanOutConfig(env.config(t, kc, store, "app", id, processorFor(c, id, nil))))
			if err != nil {
				t.Fatal(err)
			}
			ws = append(ws, runWorker(t, w))
		}
		n, err := prod.produce(ctx, keys, 5, 0)
		if err != nil {
			t.Fatal(err)
		}
		c.waitDistinct(t, n, 20*time.Second)
		parent := prod.openShardIDs()[0]
		splitShard(t, env.client(nil), env.stream, parent, prod.shards)
		if err := prod.refresh(ctx); err != nil {
			t.Fatal(err)
		}
		m, err := prod.produce(ctx, keys, 5, 0)
		if err != nil {
			t.Fatal(err)
		}
		c.waitDistinct(t, n+m, 30*time.Second)
		stopAll(t, ws)
		c.mu.Lock()
		ends := c.shardEnds[parent]
		c.mu.Unlock()
		if ends != 1 {
			t.Errorf("ShardEnded called %d times for the parent, want 1", ends)
		}
		if got := calls.get("GetRecords"); got != 0 {
			t.Errorf("%d GetRecords calls: the parent's end came from polling, not from the subscription", got)
		}
		checkOrder(t, c.snapshot())
		checkLineage(t, env.client(nil), env.stream, c.snapshot())
		checkExactlyOnce(t, c)
	})
}

// secondSubscriptionRefused holds a subscription of the application's consumer to the shard,
// as a worker that lost the lease but has not closed its subscription yet, and starts a
// fan-out worker: its subscriptions are refused with ResourceInUseException until five
// seconds after the other one, then it takes over (the other subscription ends with that
// exception) and reads everything exactly once, without falling back to polling. It reports
// false when the other subscription ended too early for the scenario.
func secondSubscriptionRefused(t *testing.T, keys []string, fanOutConfig func(Config) Config) bool {
	t.Helper()
	clock := kinesistest.NewManualClock(time.Now())
	env := newKTEnv(t, 1, kinesistest.Options{Clock: clock})
	prod := newTestProducer(t, env.client(nil), env.stream)
	ctx := t.Context()
	n, err := prod.produce(ctx, keys, 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Another holder of the application's subscription, as a worker that lost the
	// lease but has not closed its subscription yet.
	other := env.client(nil)
	streamARN, err := fanout.StreamARN(ctx, other, env.stream)
	if err != nil {
		t.Fatal(err)
	}
	consumerARN, err := fanout.EnsureConsumer(ctx, other, streamARN, "app")
	if err != nil {
		t.Fatal(err)
	}
	shards, err := listShards(ctx, other, env.stream, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := other.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{
		ConsumerARN: aws.String(consumerARN), ShardId: shards[0].ShardId,
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest},
	})
	if err != nil {
		t.Fatal(err)
	}
	stream := sub.GetStream()
	otherEnded := make(chan error, 1)
	go func() {
		for range stream.Events() {
		}
		otherEnded <- stream.Err()
	}()
	defer stream.Close()

	c := newCollector()
	calls := newCallCounter()
	cfg := fanOutConfig(env.config(t, env.client(calls), checkpoint.NewMemoryStore(), "app", "w1", processorFor(c, "w1", nil)))
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rw := runWorker(t, w)
	deadline := time.Now().Add(10 * time.Second)
	for calls.errs("SubscribeToShard", "ResourceInUseException") == 0 {
		select {
		case err := <-otherEnded:
			t.Logf("the other subscription ended before the worker's first call was answered: %v", err)
			if err := rw.stop(); err != nil {
				t.Errorf("Run: %v", err)
			}
			return false
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker's subscription was never refused while the other one held the shard")
		}
	}
	if c.distinct() != 0 {
		t.Errorf("records processed while the other subscription held the shard")
	}
	// Five seconds after the other subscription, the worker's takes over.
	clock.Advance(5 * time.Second)
	c.waitDistinct(t, n, 20*time.Second)
	select {
	case err := <-otherEnded:
		var riu *types.ResourceInUseException
		if !errors.As(err, &riu) {
			t.Errorf("the replaced subscription ended with %v, want ResourceInUseException", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the replaced subscription did not end")
	}
	m, err := prod.produce(ctx, keys, 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.waitDistinct(t, n+m, 20*time.Second)
	if err := rw.stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if st := w.Stats(); st.RetrievalFallbacks != 0 {
		t.Errorf("RetrievalFallbacks = %d: the refusal made the worker poll", st.RetrievalFallbacks)
	}
	if got := calls.get("GetRecords"); got != 0 {
		t.Errorf("%d GetRecords calls: the shard was polled", got)
	}
	checkOrder(t, c.snapshot())
	checkExactlyOnce(t, c)
	return true
}
