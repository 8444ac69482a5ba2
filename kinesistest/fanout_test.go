package kinesistest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Enhanced fan-out cases, part of the same conformance suite.
// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_SubscribeToShard.html
func init() {
	conformanceCases = append(conformanceCases, fanOutCases...)
}

// registerConsumer registers a consumer and waits until it is ACTIVE.
func (tg *target) registerConsumer(t *testing.T, streamName, name string) string {
	t.Helper()
	arn := tg.arn(t, streamName)
	out, err := tg.client.RegisterStreamConsumer(ctxT(t), &kinesis.RegisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String(name)})
	if err != nil {
		t.Fatalf("RegisterStreamConsumer: %v", err)
	}
	for range 200 {
		d, err := tg.client.DescribeStreamConsumer(ctxT(t), &kinesis.DescribeStreamConsumerInput{ConsumerARN: out.Consumer.ConsumerARN})
		if err != nil {
			t.Fatal(err)
		}
		if d.ConsumerDescription.ConsumerStatus == types.ConsumerStatusActive {
			return aws.ToString(out.Consumer.ConsumerARN)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("consumer never became ACTIVE")
	return ""
}

type subStream struct {
	stream *kinesis.SubscribeToShardEventStream
}

func (tg *target) subscribe(t *testing.T, consumerARN, shardID string, pos types.StartingPosition) (*subStream, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// Each subscription gets its own client: aws-sdk-go-v2's Kinesis client (v1.57.0 with
	// smithy-go v1.28.9) shares one event-stream codec among all streams of a client, and
	// two concurrent SubscribeToShard calls on one client race on its buffers.
	client := tg.client
	if tg.srv != nil {
		client = tg.srv.Client(tg.opts...)
	}
	out, err := client.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(consumerARN), ShardId: aws.String(shardID), StartingPosition: &pos})
	if err != nil {
		return nil, err
	}
	s := &subStream{stream: out.GetStream()}
	t.Cleanup(func() { s.stream.Close() })
	return s, nil
}

// next returns the next event, or nil when the stream ended (err says why, nil when cleanly).
func (s *subStream) next(t *testing.T) (*types.SubscribeToShardEvent, error) {
	t.Helper()
	select {
	case ev, ok := <-s.stream.Events():
		if !ok {
			return nil, s.stream.Err()
		}
		e, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
		if !isEvent {
			t.Fatalf("unexpected event %T", ev)
		}
		return &e.Value, nil
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	return nil, nil
}

// until reads events until one carries records or the stream ends.
func (s *subStream) until(t *testing.T, want int) (recs []types.Record, last *types.SubscribeToShardEvent) {
	t.Helper()
	for len(recs) < want {
		ev, err := s.next(t)
		if ev == nil {
			t.Fatalf("stream ended after %d of %d records: %v", len(recs), want, err)
		}
		recs = append(recs, ev.Records...)
		last = ev
	}
	return recs, last
}

var fanOutCases = []conformanceCase{
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_RegisterStreamConsumer.html
	{name: "ConsumersRegisterListDescribeDeregister", mock: true, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		arn := tg.registerConsumer(t, name, "c1")
		_, err := tg.client.RegisterStreamConsumer(ctxT(t), &kinesis.RegisterStreamConsumerInput{StreamARN: tg.arn(t, name), ConsumerName: aws.String("c1")})
		wantCode(t, err, CodeResourceInUse)
		list, err := tg.client.ListStreamConsumers(ctxT(t), &kinesis.ListStreamConsumersInput{StreamARN: tg.arn(t, name)})
		if err != nil || len(list.Consumers) != 1 || aws.ToString(list.Consumers[0].ConsumerARN) != arn {
			t.Fatalf("ListStreamConsumers: %v %+v", err, list)
		}
		if _, err := tg.client.DeregisterStreamConsumer(ctxT(t), &kinesis.DeregisterStreamConsumerInput{ConsumerARN: aws.String(arn)}); err != nil {
			t.Fatal(err)
		}
		for range 200 {
			_, err = tg.client.DescribeStreamConsumer(ctxT(t), &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(arn)})
			if err != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		wantCode(t, err, CodeResourceNotFound)
	}},
	{name: "ConsumerPassesThroughCreating", opts: Options{Durations: Durations{RegisterStreamConsumer: 5 * time.Second}}, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		out, err := tg.client.RegisterStreamConsumer(ctxT(t), &kinesis.RegisterStreamConsumerInput{StreamARN: tg.arn(t, name), ConsumerName: aws.String("c")})
		if err != nil || out.Consumer.ConsumerStatus != types.ConsumerStatusCreating {
			t.Fatalf("RegisterStreamConsumer: %v %+v; want CREATING", err, out)
		}
		_, err = tg.subscribe(t, aws.ToString(out.Consumer.ConsumerARN), "shardId-000000000000", types.StartingPosition{Type: types.ShardIteratorTypeLatest})
		wantCode(t, err, CodeResourceInUse)
		tg.clock.Advance(5 * time.Second)
		d, err := tg.client.DescribeStreamConsumer(ctxT(t), &kinesis.DescribeStreamConsumerInput{ConsumerARN: out.Consumer.ConsumerARN})
		if err != nil || d.ConsumerDescription.ConsumerStatus != types.ConsumerStatusActive {
			t.Fatalf("after the duration: %v %+v; want ACTIVE", err, d)
		}
	}},
	{name: "SubscribeToShardDeliversRecords", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		tg.put(t, name, entry("k", "r0"), entry("k", "r1"))
		arn := tg.registerConsumer(t, name, "c")
		s, err := tg.subscribe(t, arn, "shardId-000000000000", types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		recs, last := s.until(t, 2)
		if string(recs[0].Data) != "r0" || string(recs[1].Data) != "r1" {
			t.Fatalf("records %q %q", recs[0].Data, recs[1].Data)
		}
		if aws.ToString(last.ContinuationSequenceNumber) != aws.ToString(recs[1].SequenceNumber) || aws.ToInt64(last.MillisBehindLatest) != 0 || len(last.ChildShards) != 0 {
			t.Fatalf("event: continuation %s (last record %s), behind %d, children %v", aws.ToString(last.ContinuationSequenceNumber), aws.ToString(recs[1].SequenceNumber), aws.ToInt64(last.MillisBehindLatest), last.ChildShards)
		}
		// Records written later arrive on the open subscription.
		tg.put(t, name, entry("k", "r2"))
		more, _ := s.until(t, 1)
		if string(more[0].Data) != "r2" {
			t.Fatalf("later record %q", more[0].Data)
		}
	}},
	{name: "SubscribeToShardContinuationResumesAfterLastRecord", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		arn := tg.registerConsumer(t, name, "c")
		s, err := tg.subscribe(t, arn, "shardId-000000000000", types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		// Before any record, the continuation starts a new subscription at the first record.
		tg.clock.Advance(time.Second) // the subscription sends an event each second on its clock
		ev, err := s.next(t)
		if ev == nil {
			t.Fatal(err)
		}
		s.stream.Close()
		tg.put(t, name, entry("k", "first"))
		tg.clock.Advance(subscriptionTakeover)
		s2, err := tg.subscribe(t, arn, "shardId-000000000000", types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: ev.ContinuationSequenceNumber})
		if err != nil {
			t.Fatal(err)
		}
		recs, _ := s2.until(t, 1)
		if string(recs[0].Data) != "first" {
			t.Fatalf("resumed at %q, want the first record", recs[0].Data)
		}
	}},
	{name: "SubscribeToShardSecondSubscriptionWithinFiveSecondsIsResourceInUse", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		arn := tg.registerConsumer(t, name, "c")
		first, err := tg.subscribe(t, arn, "shardId-000000000000", types.StartingPosition{Type: types.ShardIteratorTypeLatest})
		if err != nil {
			t.Fatal(err)
		}
		_, err = tg.subscribe(t, arn, "shardId-000000000000", types.StartingPosition{Type: types.ShardIteratorTypeLatest})
		wantCode(t, err, CodeResourceInUse)
		// Five seconds on, a new subscription takes over and the first subscription fails.
		tg.clock.Advance(subscriptionTakeover)
		if _, err := tg.subscribe(t, arn, "shardId-000000000000", types.StartingPosition{Type: types.ShardIteratorTypeLatest}); err != nil {
			t.Fatalf("subscription after five seconds: %v", err)
		}
		for {
			ev, err := first.next(t)
			if ev == nil {
				var inUse *types.ResourceInUseException
				if !errors.As(err, &inUse) {
					t.Fatalf("the replaced subscription ended with %v, want ResourceInUseException", err)
				}
				return
			}
		}
	}},
	{name: "SubscribeToShardEndsAfterFiveMinutes", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		arn := tg.registerConsumer(t, name, "c")
		s, err := tg.subscribe(t, arn, "shardId-000000000000", types.StartingPosition{Type: types.ShardIteratorTypeLatest})
		if err != nil {
			t.Fatal(err)
		}
		tg.clock.Advance(subscriptionLifetime - time.Second)
		if ev, err := s.next(t); ev == nil {
			t.Fatalf("subscription ended before five minutes: %v", err)
		}
		tg.clock.Advance(time.Second)
		for {
			ev, err := s.next(t)
			if ev == nil {
				if err != nil {
					t.Fatalf("subscription ended with %v, want a clean end", err)
				}
				return
			}
		}
	}},
	{name: "SubscribeToShardEndsWithChildShards", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		tg.put(t, name, entry("k", "before split"))
		parent := tg.openShards(t, name)[0]
		split(t, tg, name, parent)
		arn := tg.registerConsumer(t, name, "c")
		s, err := tg.subscribe(t, arn, aws.ToString(parent.ShardId), types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		var recs []types.Record
		for {
			ev, err := s.next(t)
			if ev == nil {
				t.Fatalf("stream ended without a shard-end event: %v", err)
			}
			recs = append(recs, ev.Records...)
			if len(ev.ChildShards) > 0 {
				if ev.ContinuationSequenceNumber != nil || len(ev.ChildShards) != 2 || len(recs) != 1 {
					t.Fatalf("shard-end event: continuation %v, %d children, %d records", ev.ContinuationSequenceNumber, len(ev.ChildShards), len(recs))
				}
				break
			}
		}
		if ev, err := s.next(t); ev != nil || err != nil {
			t.Fatalf("after the shard-end event: %v, %v; want the stream closed", ev, err)
		}
	}},
	{name: "SubscribeToShardLimitsEachConsumerShardToTwoMiBPerSecond", opts: Options{Limits: Limits{ShardWriteBytesPerSecond: 8 << 20}}, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		// Sixteen records of exactly 256 KiB with their keys: 4 MiB.
		recs := make([]types.PutRecordsRequestEntry, 16)
		for i := range recs {
			recs[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("k%02d", i)), Data: make([]byte, 256<<10-3)}
		}
		tg.put(t, name, recs...)
		arn := tg.registerConsumer(t, name, "c")
		s, err := tg.subscribe(t, arn, "shardId-000000000000", types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		first, _ := s.until(t, 1)
		if len(first) != 8 {
			t.Fatalf("first event carried %d records of 256 KiB, want 8 (2 MiB)", len(first))
		}
		// Nothing more until the clock has moved a second.
		select {
		case ev := <-s.stream.Events():
			t.Fatalf("event %T before the consumer-shard's 2 MiB/s allowed one", ev)
		case <-time.After(200 * time.Millisecond):
		}
		tg.clock.Advance(1100 * time.Millisecond)
		rest, _ := s.until(t, 8)
		if len(rest) != 8 {
			t.Fatalf("then %d records", len(rest))
		}
	}},
}

// Close ends open fan-out subscriptions instead of waiting out their five minutes.
func TestCloseEndsSubscriptions(t *testing.T) {
	srv := NewServer(Options{})
	tg := &target{client: srv.Client(), srv: srv}
	name := tg.stream(t, 1)
	arn := tg.registerConsumer(t, name, "c")
	s, err := tg.subscribe(t, arn, "shardId-000000000000", types.StartingPosition{Type: types.ShardIteratorTypeLatest})
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on an open subscription")
	}
	for {
		select {
		case _, ok := <-s.stream.Events():
			if !ok {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the subscription's event stream did not end after Close")
		}
	}
}
