package fanout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
	"github.com/cenkalti/backoff/v4"
)

// SubscribeAPI is the part of the Kinesis client that a Subscriber uses; *kinesis.Client
// implements it. GetShardIterator and GetRecords serve only to finish a closed shard whose
// subscription cannot (see the package documentation).
type SubscribeAPI interface {
	SubscribeToShard(ctx context.Context, in *kinesis.SubscribeToShardInput, optFns ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error)
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// Batch is what one event of a shard subscription carries, in shard order.
type Batch struct {
	// Records are the shard's records, possibly none: Kinesis also sends empty events, which
	// still move ContinuationSequenceNumber and MillisBehindLatest on.
	Records []types.Record
	// MillisBehindLatest is how far the batch is behind the tip of the shard.
	MillisBehindLatest int64
	// ContinuationSequenceNumber is how far the shard has been read: a subscription that
	// starts AFTER_SEQUENCE_NUMBER of it continues with the next record. Unlike a record's
	// sequence number it moves on while no records arrive. It is empty in the last batch of
	// a shard.
	ContinuationSequenceNumber string
	// ShardEnded marks the last batch of a closed shard: every record of the shard has been
	// delivered, and Next returns io.EOF from now on.
	ShardEnded bool
	// ChildShards are the shards that continue this one, set when ShardEnded is.
	ChildShards []types.ChildShard
	// ShardGone is set with ShardEnded when the stream no longer lists the shard at all (it
	// expired past the stream's retention, or never was the stream's): the subscription
	// answered ResourceNotFoundException or stayed idle, and a listing did not have it. The
	// KCL ends such a shard too (its FanOutRecordsPublisher turns ResourceNotFoundException
	// into the end of the shard).
	ShardGone bool
}

// Config describes one shard subscription.
type Config struct {
	// Client is the Kinesis client. Against an emulator that omits the initial-response event,
	// its HTTP client must use EmulatorTransport.
	Client SubscribeAPI
	// ConsumerARN is the registered consumer (EnsureConsumer).
	ConsumerARN string
	// ShardID is the shard to read.
	ShardID string
	// StreamARN is the consumer's stream; empty means derived from ConsumerARN, whose prefix
	// it is.
	StreamARN string
	// StartingPosition is where the first subscription starts: TRIM_HORIZON, LATEST,
	// AT_TIMESTAMP (with Timestamp), AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER (with
	// SequenceNumber). Later subscriptions continue after the last delivered batch.
	StartingPosition types.StartingPosition
	// BufferSize is how many batches are read ahead of Next; zero means 2. Reading stops while
	// the buffer is full, so a slow caller slows the subscription down instead of piling up
	// memory.
	BufferSize int
	// IdleTimeout ends a subscription that has sent nothing for that long, and a
	// SubscribeToShard call unanswered for that long; zero means 30 s. Kinesis keeps sending
	// (empty) events to an idle subscription, so a long silence means a connection that died
	// without being closed, which nothing else in the SDK or net/http would notice.
	IdleTimeout time.Duration
	// ShardCheckInterval is the shortest time between two ListShards calls that look for the
	// shard's closing while the subscription is idle or refused; zero means 10 s, negative
	// disables the checks. Kinesis reports a shard's end in the subscription itself; emulators
	// may not, and then only these checks find it.
	ShardCheckInterval time.Duration
	// NewBackOff returns the backoff between failed subscriptions; nil means exponential from
	// 250 ms to 5 s, never giving up. A subscription within 5 s of the previous one for the
	// same consumer and shard is refused with ResourceInUseException, which the backoff rides
	// out.
	NewBackOff func() backoff.BackOff
	// OnRetry, when set, is told of every failure that is retried and of the wait before the
	// retry, for logs and metrics. It runs on the subscriber's goroutine and must return
	// quickly.
	OnRetry func(err error, wait time.Duration)
}

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("fanout: subscriber closed")

// Stats counts what a Subscriber did.
type Stats struct {
	// Subscriptions is the number of SubscribeToShard calls that opened an event stream.
	Subscriptions int64
	// Retries is the number of failures that were followed by a wait and a new attempt.
	Retries int64
	// ShardChecks is the number of ListShards calls made to find the shard's end.
	ShardChecks int64
	// PolledBatches is the number of batches read with GetRecords to finish a closed shard.
	PolledBatches int64
}

// Subscriber reads one shard through enhanced fan-out and hands its batches to Next in order.
// It renews the subscription when Kinesis ends it (every 5 minutes) and after failures,
// continuing after the last batch it read, so nothing is skipped and nothing is repeated.
//
// ResourceInUseException is retried like any passing failure, because Kinesis answers it to a
// subscription within 5 s of the previous one. It is also what the previous holder of a
// subscription gets when another process subscribes the same consumer to the same shard: a
// worker that loses a shard's lease must Close its Subscriber, or the two take the
// subscription from each other in turn.
type Subscriber struct {
	cfg    Config
	out    chan Batch
	cancel context.CancelFunc
	done   chan struct{}
	closed atomic.Bool
	err    error // why the run ended; written before out is closed

	closeOnce sync.Once

	subscriptions, retries, shardChecks, polledBatches atomic.Int64
}

// Subscribe validates cfg and starts reading the shard in the background. The reading lasts
// until the shard ends, a failure that retrying cannot cure, Close, or the end of ctx.
func Subscribe(ctx context.Context, cfg Config) (*Subscriber, error) {
	if cfg.Client == nil || cfg.ConsumerARN == "" || cfg.ShardID == "" {
		return nil, errors.New("fanout: Client, ConsumerARN and ShardID are required")
	}
	if err := validatePosition(cfg.StartingPosition); err != nil {
		return nil, err
	}
	if cfg.StreamARN == "" {
		i := strings.Index(cfg.ConsumerARN, "/consumer/")
		if i < 0 {
			return nil, fmt.Errorf("fanout: cannot derive the stream ARN from consumer ARN %q; set StreamARN", cfg.ConsumerARN)
		}
		cfg.StreamARN = cfg.ConsumerARN[:i]
	}
	if cfg.BufferSize <= 0 {
		cfg.BufferSize = 2
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.ShardCheckInterval == 0 {
		cfg.ShardCheckInterval = 10 * time.Second
	}
	if cfg.NewBackOff == nil {
		cfg.NewBackOff = defaultBackOff
	}
	runCtx, cancel := context.WithCancel(ctx)
	s := &Subscriber{
		cfg:    cfg,
		out:    make(chan Batch, cfg.BufferSize),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go s.run(runCtx)
	return s, nil
}

func defaultBackOff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 250 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	b.MaxElapsedTime = 0
	return b
}

func validatePosition(p types.StartingPosition) error {
	switch p.Type {
	case types.ShardIteratorTypeTrimHorizon, types.ShardIteratorTypeLatest:
	case types.ShardIteratorTypeAtTimestamp:
		if p.Timestamp == nil {
			return errors.New("fanout: AT_TIMESTAMP needs a Timestamp")
		}
	case types.ShardIteratorTypeAtSequenceNumber, types.ShardIteratorTypeAfterSequenceNumber:
		if aws.ToString(p.SequenceNumber) == "" {
			return fmt.Errorf("fanout: %s needs a SequenceNumber", p.Type)
		}
	default:
		return fmt.Errorf("fanout: unknown starting position type %q", p.Type)
	}
	return nil
}

// Next returns the next batch, waiting for it until ctx ends. After the batch that has
// ShardEnded it returns io.EOF; after Close, ErrClosed; after a failure that retrying cannot
// cure, that failure.
func (s *Subscriber) Next(ctx context.Context) (Batch, error) {
	if s.closed.Load() {
		return Batch{}, ErrClosed
	}
	select {
	case b, ok := <-s.out:
		if !ok {
			if s.closed.Load() {
				return Batch{}, ErrClosed
			}
			return Batch{}, s.err
		}
		return b, nil
	case <-ctx.Done():
		return Batch{}, ctx.Err()
	}
}

// Close stops the subscription and waits until its goroutines have ended. It is safe to call
// more than once and concurrently with Next.
func (s *Subscriber) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.cancel()
	})
	<-s.done
	return nil
}

// Stats returns the counters so far.
func (s *Subscriber) Stats() Stats {
	return Stats{
		Subscriptions: s.subscriptions.Load(),
		Retries:       s.retries.Load(),
		ShardChecks:   s.shardChecks.Load(),
		PolledBatches: s.polledBatches.Load(),
	}
}

// errShardEnded ends the run after the shard's last batch was delivered.
var errShardEnded = errors.New("shard ended")

// errIdle ends a subscription that stayed silent for IdleTimeout.
var errIdle = errors.New("fanout: subscription idle for too long")

// errEmptySubscription reports a subscription that ended without a single event.
var errEmptySubscription = errors.New("fanout: subscription ended before its first event")

// errShardClosed asks the run to finish the shard by polling: the shard is closed and its
// subscriptions do not report the end.
var errShardClosed = errors.New("shard closed")

func (s *Subscriber) run(ctx context.Context) {
	defer close(s.done)
	err := s.loop(ctx)
	if errors.Is(err, errShardEnded) {
		err = io.EOF
	}
	s.err = err
	close(s.out)
}

// loop subscribes again and again from the position after the last delivered batch.
func (s *Subscriber) loop(ctx context.Context) error {
	pos := s.cfg.StartingPosition
	bo := s.cfg.NewBackOff()
	watch := &shardWatch{interval: s.cfg.ShardCheckInterval}
	for {
		delivered, err := s.subscription(ctx, &pos, watch)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, errShardEnded) {
			return err
		}
		if errors.Is(err, errShardClosed) {
			return s.finishClosed(ctx, pos)
		}
		if delivered {
			bo.Reset()
		}
		if err == nil && delivered {
			// Kinesis ended the subscription after its 5 minutes: renew it at once.
			continue
		}
		if err == nil {
			// A stream that ends before its first event would otherwise be renewed in a
			// tight loop.
			err = errEmptySubscription
		}
		if missingInitialResponse(err) {
			return fmt.Errorf("fanout: subscribe to %s: %w (an emulator's stream needs EmulatorTransport)", s.cfg.ShardID, err)
		}
		if fatalSubscribeError(err) {
			return fmt.Errorf("fanout: subscribe to %s: %w", s.cfg.ShardID, err)
		}
		// A refused subscription may hide a shard that closed meanwhile, which then never
		// reports its end if the refusals go on, or one that expired past retention.
		notFound := isCode(err, "ResourceNotFoundException")
		if watch.interval > 0 && (notFound || isCode(err, "ResourceInUseException") && watch.due(time.Now())) {
			st, cerr := s.checkShard(ctx, watch)
			switch {
			case cerr == nil && st.gone:
				return s.deliverEnd(ctx, Batch{ShardEnded: true, ShardGone: true, ChildShards: st.children})
			case cerr == nil && st.closed:
				return s.finishClosed(ctx, pos)
			}
		}
		if notFound {
			// The consumer or the stream is gone.
			return fmt.Errorf("fanout: subscribe to %s: %w", s.cfg.ShardID, err)
		}
		wait := bo.NextBackOff()
		if wait == backoff.Stop {
			return fmt.Errorf("fanout: subscribe to %s: giving up: %w", s.cfg.ShardID, err)
		}
		s.retries.Add(1)
		if s.cfg.OnRetry != nil {
			s.cfg.OnRetry(err, wait)
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// subscription runs one SubscribeToShard call to its end, delivering its batches and moving
// pos after each. delivered reports whether any event arrived; a nil error means the
// subscription ended normally.
func (s *Subscriber) subscription(ctx context.Context, pos *types.StartingPosition, watch *shardWatch) (delivered bool, err error) {
	// Ending the subscription closes its connection: the SDK ties the response body to this
	// context.
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := *pos
	// A server that never answers would hold the call until ctx ends; the idle limit applies
	// to the opening as well.
	opening := time.AfterFunc(s.cfg.IdleTimeout, cancel)
	out, err := s.cfg.Client.SubscribeToShard(subCtx, &kinesis.SubscribeToShardInput{
		ConsumerARN:      aws.String(s.cfg.ConsumerARN),
		ShardId:          aws.String(s.cfg.ShardID),
		StartingPosition: &start,
	}, ownProtocol)
	if !opening.Stop() && ctx.Err() == nil {
		if err == nil {
			out.GetStream().Close()
		}
		return false, errIdle
	}
	if err != nil {
		return false, err
	}
	stream := out.GetStream()
	defer stream.Close()
	s.subscriptions.Add(1)

	idle := time.NewTimer(s.cfg.IdleTimeout)
	defer idle.Stop()
	events := stream.Events()
	for {
		select {
		case <-ctx.Done():
			return delivered, ctx.Err()
		case <-idle.C:
			return delivered, errIdle
		case ev, ok := <-events:
			if !ok {
				return delivered, stream.Err()
			}
			e, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
			if !isEvent {
				continue // a union member newer than this SDK: nothing to deliver
			}
			delivered = true
			b := batchOf(e.Value)
			if b.ShardEnded {
				if len(b.ChildShards) == 0 {
					b.ChildShards = s.childrenFromListing(ctx)
				}
				return true, s.deliverEnd(ctx, b)
			}
			// The idle timer stops while the caller is slow: a full buffer is not silence.
			idle.Stop()
			if err := s.deliver(ctx, b); err != nil {
				return true, err
			}
			*pos = types.StartingPosition{
				Type:           types.ShardIteratorTypeAfterSequenceNumber,
				SequenceNumber: aws.String(b.ContinuationSequenceNumber),
			}
			if len(b.Records) == 0 && watch.due(time.Now()) {
				st, err := s.checkShard(ctx, watch)
				if err == nil && st.closed && watch.closedLongEnough(time.Now()) {
					return true, errShardClosed
				}
				if err == nil && st.gone {
					return true, s.deliverEnd(ctx, Batch{ShardEnded: true, ShardGone: true, ChildShards: st.children})
				}
			}
			idle.Reset(s.cfg.IdleTimeout)
		}
	}
}

// ownProtocol gives a subscription a protocol instance of its own. The SDK's protocol decodes
// every event stream of a client with one codec whose scratch state is not synchronized
// (aws/smithy-go#714), so overlapping subscriptions of one client race on it. A protocol other
// than the SDK's default is left alone.
func ownProtocol(o *kinesis.Options) {
	if p, ok := o.Protocol.(*awsjson.Protocol); ok && p.ID().Name == "awsJson1_1" {
		o.Protocol = awsjson.New11(schemas.Kinesis_20131202)
	}
}

// batchOf turns an event into a Batch. A null continuation sequence number is how Kinesis marks
// the shard's last event.
func batchOf(e types.SubscribeToShardEvent) Batch {
	b := Batch{Records: e.Records, MillisBehindLatest: aws.ToInt64(e.MillisBehindLatest)}
	if e.ContinuationSequenceNumber == nil {
		b.ShardEnded = true
		b.ChildShards = e.ChildShards
		return b
	}
	b.ContinuationSequenceNumber = *e.ContinuationSequenceNumber
	return b
}

func (s *Subscriber) deliver(ctx context.Context, b Batch) error {
	select {
	case s.out <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// deliverEnd delivers the shard's last batch and reports the end of the run.
func (s *Subscriber) deliverEnd(ctx context.Context, b Batch) error {
	b.ShardEnded = true
	b.ContinuationSequenceNumber = ""
	if err := s.deliver(ctx, b); err != nil {
		return err
	}
	return errShardEnded
}
