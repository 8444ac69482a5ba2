package fanout_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/shardline/shardline/internal/fanout"
	"github.com/shardline/shardline/internal/testenv"
	"github.com/shardline/shardline/kinesistest"
)

func TestConsumerRegistration(t *testing.T) {
	t.Parallel()
	kc, _ := newClient(t, nil)
	stream := testenv.CreateStream(t, kc, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	streamARN, err := fanout.StreamARN(ctx, kc, stream)
	if err != nil {
		t.Fatal(err)
	}

	first, err := fanout.EnsureConsumer(ctx, kc, streamARN, "app")
	if err != nil {
		t.Fatal(err)
	}
	second, err := fanout.EnsureConsumer(ctx, kc, streamARN, "app")
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Fatalf("second registration gave %s, the first %s", second, first)
	}
	d, err := kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(first)})
	if err != nil || d.ConsumerDescription.ConsumerStatus != types.ConsumerStatusActive {
		t.Fatalf("consumer after EnsureConsumer: %+v, %v", d, err)
	}

	// Workers racing to register all end up with the one consumer.
	other := make(chan string, 4)
	for range 4 {
		go func() {
			arn, err := fanout.EnsureConsumer(ctx, kc, streamARN, "racing")
			if err != nil {
				t.Error(err)
			}
			other <- arn
		}()
	}
	racing := <-other
	for range 3 {
		if arn := <-other; arn != racing {
			t.Fatalf("racing registrations gave %s and %s", racing, arn)
		}
	}

	if err := fanout.DeregisterConsumer(ctx, kc, streamARN, "app"); err != nil {
		t.Fatal(err)
	}
	d, err = kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(first)})
	var notFound *types.ResourceNotFoundException
	if !errors.As(err, &notFound) && (err != nil || d.ConsumerDescription.ConsumerStatus != types.ConsumerStatusDeleting) {
		t.Fatalf("consumer after DeregisterConsumer: %+v, %v; want DELETING or ResourceNotFoundException", d, err)
	}
	// Again, while it is DELETING or gone, and for a name never registered.
	for _, name := range []string{"app", "never"} {
		if err := fanout.DeregisterConsumer(ctx, kc, streamARN, name); err != nil {
			t.Fatalf("deregistering %s again: %v", name, err)
		}
	}
}

// TestSubscribeDeliversInOrder reads what was written before and during the subscription, and
// checks that Close leaves nothing running. It does not run in parallel because of the leak
// check.
func TestSubscribeDeliversInOrder(t *testing.T) {
	f := setup(t, 1, nil)
	shard := aws.ToString(f.shards(t)[0].ShardId)
	before := f.put(t, "before", 150)

	sub := f.subscribe(t, fanout.Config{ShardID: shard})
	var got received
	readRecords(t, sub, &got, len(before), 30*time.Second)
	sameStrings(t, "records written before subscribing", got.data, before)

	during := f.put(t, "during", 60)
	readRecords(t, sub, &got, len(before)+len(during), 30*time.Second)
	sameStrings(t, "all records", got.data, append(append([]string{}, before...), during...))

	// Every batch names the last record it delivered as the continuation point, which is why a
	// new subscription starts AFTER_SEQUENCE_NUMBER with it.
	for _, b := range got.batches {
		if n := len(b.Records); n > 0 && aws.ToString(b.Records[n-1].SequenceNumber) != b.ContinuationSequenceNumber {
			t.Fatalf("continuation %s differs from the batch's last record %s", b.ContinuationSequenceNumber, aws.ToString(b.Records[n-1].SequenceNumber))
		}
	}

	// Empty events arrive while the shard is idle: the stream stays open and says so.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := sub.Next(ctx)
	if err != nil || len(b.Records) != 0 || b.ContinuationSequenceNumber != got.seqs[len(got.seqs)-1] {
		t.Fatalf("idle batch: %+v, %v", b, err)
	}

	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Next(context.Background()); !errors.Is(err, fanout.ErrClosed) {
		t.Fatalf("Next after Close: %v, want ErrClosed", err)
	}
	if st := sub.Stats(); st.Subscriptions != 1 || st.Retries != 0 {
		t.Fatalf("stats of an undisturbed subscription: %+v", st)
	}
	f.transport.CloseIdleConnections()
	checkNoLeaks(t)
}

// TestResumePosition shows why a subscription resumes AFTER_SEQUENCE_NUMBER with the
// continuation sequence number: AT_SEQUENCE_NUMBER would deliver the last record again.
func TestResumePosition(t *testing.T) {
	t.Parallel()
	f := setup(t, 1, nil)
	shard := aws.ToString(f.shards(t)[0].ShardId)
	data := f.put(t, "r", 20)

	first := f.subscribe(t, fanout.Config{ShardID: shard})
	var got received
	readRecords(t, first, &got, len(data), 30*time.Second)
	cont := got.batches[len(got.batches)-1].ContinuationSequenceNumber
	_ = first.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		typ  types.ShardIteratorType
		want string
	}{
		{types.ShardIteratorTypeAtSequenceNumber, data[len(data)-1]},
		{types.ShardIteratorTypeAfterSequenceNumber, "more-0"},
	} {
		// A consumer of its own, so that kinesis-mock does not refuse the subscription as a
		// duplicate of the one just closed.
		consumer, err := fanout.EnsureConsumer(ctx, f.kc, f.streamARN, "resume-"+string(tc.typ))
		if err != nil {
			t.Fatal(err)
		}
		sub := f.subscribe(t, fanout.Config{ShardID: shard, ConsumerARN: consumer,
			StartingPosition: types.StartingPosition{Type: tc.typ, SequenceNumber: aws.String(cont)}})
		if tc.typ == types.ShardIteratorTypeAfterSequenceNumber {
			f.put(t, "more", 1)
		}
		var r received
		readRecords(t, sub, &r, 1, 30*time.Second)
		if r.data[0] != tc.want {
			t.Fatalf("%s continuation: first record %q, want %q", tc.typ, r.data[0], tc.want)
		}
	}
}

// TestResubscribeAfterFailures breaks subscriptions in the middle of an event and fails
// SubscribeToShard calls, and checks that every record still arrives once, in order.
func TestResubscribeAfterFailures(t *testing.T) {
	t.Parallel()
	frames := &frameTransport{cuts: 3, cutAfter: 2}
	f, srv := setupKinesistest(t, 1, kinesistest.Options{Seed: 7}, func(rt http.RoundTripper) http.RoundTripper {
		frames.base = rt
		return frames
	})
	shard := aws.ToString(f.shards(t)[0].ShardId)
	srv.AddFault(kinesistest.FaultRule{Operation: "SubscribeToShard", Reset: true, Times: 2})
	srv.AddFault(kinesistest.FaultRule{Operation: "SubscribeToShard", Error: kinesistest.CodeInternalFailure, Times: 1})

	var retries atomic.Int64
	sub := f.subscribe(t, fanout.Config{ShardID: shard, OnRetry: func(error, time.Duration) { retries.Add(1) }})
	var want []string
	var got received
	// Records keep coming while streams break: each write lands in some later event.
	for round := range 6 {
		want = append(want, f.put(t, "round"+string(rune('a'+round)), 25)...)
		readRecords(t, sub, &got, len(want), 45*time.Second)
	}
	sameStrings(t, "records across broken subscriptions", got.data, want)
	if frames.cutCount() != 3 {
		t.Fatalf("%d streams cut, want 3", frames.cutCount())
	}
	if n := srv.FaultCount("SubscribeToShard"); n != 3 {
		t.Fatalf("%d injected SubscribeToShard failures, want 3", n)
	}
	st := sub.Stats()
	t.Logf("stats %+v", st)
	if st.Subscriptions < 4 || retries.Load() < 6 || st.Retries != retries.Load() {
		t.Fatalf("stats %+v, OnRetry calls %d: want at least 4 subscriptions and 6 retries", st, retries.Load())
	}
}

// TestBackpressure stops reading and checks that the subscription stops reading the event
// stream too, although kinesis-mock keeps sending an event every second.
func TestBackpressure(t *testing.T) {
	t.Parallel()
	frames := &frameTransport{}
	f := setup(t, 1, func(rt http.RoundTripper) http.RoundTripper {
		frames.base = rt
		return frames
	})
	shard := aws.ToString(f.shards(t)[0].ShardId)
	sub := f.subscribe(t, fanout.Config{ShardID: shard, BufferSize: 1})

	// Without calls to Next, kinesis-mock's events (one a second) fill the pipeline: one
	// event in the buffer, one held by the subscriber, one in each of the SDK's two decoding
	// goroutines. Then reading stops.
	deadline := time.Now().Add(20 * time.Second)
	for frames.read.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	early := frames.read.Load()
	time.Sleep(3 * time.Second)
	late := frames.read.Load()
	if early != 4 || late != early {
		t.Fatalf("messages read without Next: %d, then %d 3 s later; want 4 both times", early, late)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		if _, err := sub.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for frames.read.Load() <= late {
		if ctx.Err() != nil {
			t.Fatal("reading resumed no event stream messages after Next")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestShardEndAfterSplit splits a shard while records are still unread and checks that the
// parent's records all arrive, then its end with the children, although kinesis-mock never
// reports the end in the subscription; and that a reader whose subscriptions are refused ends
// the same way.
func TestShardEndAfterSplit(t *testing.T) {
	t.Parallel()
	f := setup(t, 1, nil)
	parent := f.shards(t)[0]
	parentID := aws.ToString(parent.ShardId)
	want := f.put(t, "early", 40)

	sub := f.subscribe(t, fanout.Config{ShardID: parentID, BufferSize: 1, ShardCheckInterval: 500 * time.Millisecond})
	var got received
	readRecords(t, sub, &got, 1, 30*time.Second)
	// Not read yet when the shard closes.
	want = append(want, f.put(t, "late", 40)...)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := f.kc.SplitShard(ctx, &kinesis.SplitShardInput{
		StreamARN:          aws.String(f.streamARN),
		ShardToSplit:       aws.String(parentID),
		NewStartingHashKey: aws.String("170141183460469231731687303715884105728"),
	})
	if err != nil {
		t.Fatal(err)
	}
	children := f.put(t, "child", 10)

	last := readToEnd(t, sub, &got, 45*time.Second)
	sameStrings(t, "parent records", got.data, want)
	checkChildren(t, last, parentID, 2)
	if _, err := sub.Next(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("Next after the shard's end: %v, want io.EOF", err)
	}
	st := sub.Stats()
	t.Logf("reader during the split: %+v", st)
	if st.ShardChecks == 0 {
		t.Fatalf("stats %+v: the end was not found through ListShards", st)
	}

	// A reader of the closed parent whose subscriptions are all refused, as Kinesis refuses a
	// second subscription within 5 s, finishes it by polling.
	refused := f.subscribe(t, fanout.Config{ShardID: parentID, Client: refusingClient{f.kc},
		ShardCheckInterval: 500 * time.Millisecond})
	var reread received
	last = readToEnd(t, refused, &reread, 30*time.Second)
	t.Logf("reader refused after the split: %+v", refused.Stats())
	sameStrings(t, "parent records read after the split", reread.data, want)
	checkChildren(t, last, parentID, 2)
	if st := refused.Stats(); st.Subscriptions != 0 || st.PolledBatches == 0 {
		t.Fatalf("stats of the refused reader: %+v", st)
	}

	// The children hold what was written after the split.
	var childData []string
	for _, c := range last.ChildShards {
		cs := f.subscribe(t, fanout.Config{ShardID: aws.ToString(c.ShardId)})
		var r received
		deadline, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for len(childData)+len(r.data) < len(children) {
			b, err := cs.Next(deadline)
			if err != nil {
				break // this child has no more; the other one holds the rest
			}
			r.add(b)
			if len(b.Records) == 0 {
				break
			}
		}
		cancel()
		childData = append(childData, r.data...)
	}
	if len(childData) != len(children) {
		t.Fatalf("children hold %d records, want %d", len(childData), len(children))
	}
}

// refusingClient refuses every subscription as Kinesis does within 5 s of another one.
type refusingClient struct{ *kinesis.Client }

func (refusingClient) SubscribeToShard(context.Context, *kinesis.SubscribeToShardInput, ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error) {
	return nil, &types.ResourceInUseException{Message: aws.String("refused by the test")}
}

func checkChildren(t *testing.T, last fanout.Batch, parent string, n int) {
	t.Helper()
	if !last.ShardEnded || last.ContinuationSequenceNumber != "" {
		t.Fatalf("last batch: %+v", last)
	}
	if len(last.ChildShards) != n {
		t.Fatalf("%d child shards, want %d", len(last.ChildShards), n)
	}
	for _, c := range last.ChildShards {
		if len(c.ParentShards) == 0 || c.ParentShards[0] != parent || aws.ToString(c.ShardId) == "" {
			t.Fatalf("child shard %+v does not name parent %s", c, parent)
		}
	}
}

func TestSubscribeValidation(t *testing.T) {
	t.Parallel()
	kc, _ := newClient(t, nil)
	for _, cfg := range []fanout.Config{
		{},
		{Client: kc, ConsumerARN: "arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c:1", ShardID: "shardId-000000000000"},
		{Client: kc, ConsumerARN: "arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c:1", ShardID: "shardId-000000000000",
			StartingPosition: types.StartingPosition{Type: types.ShardIteratorTypeAtSequenceNumber}},
		{Client: kc, ConsumerARN: "no-arn", ShardID: "shardId-000000000000",
			StartingPosition: types.StartingPosition{Type: types.ShardIteratorTypeLatest}},
	} {
		if sub, err := fanout.Subscribe(context.Background(), cfg); err == nil {
			_ = sub.Close()
			t.Fatalf("Subscribe accepted %+v", cfg)
		}
	}
}

// TestSubscribeUnknownConsumer checks that a failure retrying cannot cure ends the subscriber
// with that failure instead of retrying for ever.
func TestSubscribeUnknownConsumer(t *testing.T) {
	t.Parallel()
	f := setup(t, 1, nil)
	shard := aws.ToString(f.shards(t)[0].ShardId)
	sub := f.subscribe(t, fanout.Config{ShardID: shard, ConsumerARN: f.streamARN + "/consumer/missing:1", ShardCheckInterval: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := sub.Next(ctx)
	var notFound *types.ResourceNotFoundException
	if !errors.As(err, &notFound) {
		t.Fatalf("Next with an unknown consumer: %v, want ResourceNotFoundException", err)
	}
}
