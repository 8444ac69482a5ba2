package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/cenkalti/backoff/v4"

	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/internal/kinesisjson"
)

// Retrieval selects how a worker reads records.
type Retrieval int

const (
	// Polling reads with GetRecords, sharing each shard's 2 MB/s read throughput with every
	// other application reading the stream. The default.
	Polling Retrieval = iota
	// FanOut reads with enhanced fan-out (SubscribeToShard): a dedicated 2 MB/s per shard for
	// this application and records pushed within about 70 ms. A worker falls back to Polling,
	// with a log line and the RetrievalFallbacks metric, when fan-out is unavailable.
	FanOut
)

// String names the retrieval mode.
func (r Retrieval) String() string {
	switch r {
	case Polling:
		return "polling"
	case FanOut:
		return "fan-out"
	}
	return fmt.Sprintf("Retrieval(%d)", int(r))
}

// startPosition is where a shard reader starts.
type startPosition struct {
	kind types.ShardIteratorType
	seq  string    // for AT_ and AFTER_SEQUENCE_NUMBER
	ts   time.Time // for AT_TIMESTAMP
}

func (p startPosition) String() string {
	switch p.kind {
	case types.ShardIteratorTypeAtSequenceNumber, types.ShardIteratorTypeAfterSequenceNumber:
		return string(p.kind) + " " + p.seq
	case types.ShardIteratorTypeAtTimestamp:
		return string(p.kind) + " " + p.ts.Format(time.RFC3339Nano)
	}
	return string(p.kind)
}

// positionFor returns where to read a shard from its checkpoint. A checkpoint at a sequence
// number resumes AT that record, and the decoder drops what the checkpoint covers: the record
// itself when it was not an aggregate, or its user records up to the checkpointed subsequence
// number when it was. A checkpoint (S, 0) cannot tell a plain record from the first user
// record of an aggregate, and AFTER_SEQUENCE_NUMBER would skip the rest of that aggregate;
// reading S again costs one record and is right in both cases.
//
// The lease table stores AT_TIMESTAMP without a time: the KCL keeps the time in its
// configuration (InitialPositionInStreamExtended) and IteratorBuilder fills it in from there,
// so initialTS is the worker's Config.InitialTimestamp when it is configured AtTimestamp and
// zero otherwise. A KCL worker without an AT_TIMESTAMP configuration has no time for such a
// lease (its getTimestamp() is null, and the shard never starts); Shardline reads the shard
// from TRIM_HORIZON instead, which delivers every record the AT_TIMESTAMP position would have,
// and more, rather than guessing a time or skipping records as LATEST would.
func positionFor(cp checkpoint.ExtendedSequenceNumber, initialTS time.Time) startPosition {
	switch cp.SequenceNumber {
	case checkpoint.SentinelTrimHorizon:
		return startPosition{kind: types.ShardIteratorTypeTrimHorizon}
	case checkpoint.SentinelLatest:
		return startPosition{kind: types.ShardIteratorTypeLatest}
	case checkpoint.SentinelAtTimestamp:
		if initialTS.IsZero() {
			return startPosition{kind: types.ShardIteratorTypeTrimHorizon}
		}
		return startPosition{kind: types.ShardIteratorTypeAtTimestamp, ts: initialTS}
	}
	return startPosition{kind: types.ShardIteratorTypeAtSequenceNumber, seq: cp.SequenceNumber}
}

// fetchResult is one batch from a shard.
type fetchResult struct {
	records            []types.Record
	millisBehindLatest int64
	// shardEnded is set on the last batch of a closed shard; childShards then lists the
	// shards that replaced it when the source knows them.
	shardEnded  bool
	childShards []types.ChildShard
	// shardGone is set with shardEnded when the stream no longer lists the shard.
	shardGone bool
}

// shardSource reads one shard. The shardConsumer asks for batches one at a time and delivers
// each before asking for the next, so a source holds no more than one batch ahead. Retrieval
// implementations (polling here, enhanced fan-out elsewhere) plug in behind this interface.
type shardSource interface {
	// next blocks until the next batch (possibly empty), the end of the shard or ctx ends. It
	// retries what it can recover from (throttling, expired iterators, network errors) and
	// returns only errors it cannot: ctx's, and ones matching errResourceNotFound (the shard
	// or the whole stream is gone; the shardConsumer tells which).
	next(ctx context.Context) (fetchResult, error)
	// close releases the source's resources.
	close()
}

// sourceFactory opens shard sources.
type sourceFactory interface {
	open(ctx context.Context, shardID string, from startPosition) (shardSource, error)
	mode() Retrieval
}

// retrievalHooks lets a source report what it recovered from.
type retrievalHooks struct {
	log           *slog.Logger
	throttled     func()
	expired       func()
	retriedErrors func()
}

// pollingFactory opens GetRecords-based sources.
type pollingFactory struct {
	client    KinesisAPI
	stream    streamRef
	limit     int32
	idle      time.Duration
	minSpace  time.Duration
	callLimit time.Duration
	hooks     retrievalHooks
}

func (f *pollingFactory) mode() Retrieval { return Polling }

func (f *pollingFactory) open(ctx context.Context, shardID string, from startPosition) (shardSource, error) {
	s := &pollingSource{f: f, shardID: shardID, from: from, log: f.hooks.log.With("shard", shardID)}
	s.dec.FreshData = true
	return s, nil
}

// Consecutive failures of unknown cause after which a poller suspects its iterator and asks
// for a new one: kinesis-mock answers a malformed iterator with a bare HTTP 500.
const badIteratorSuspicion = 3

// pollingSource reads a shard with GetShardIterator and GetRecords.
type pollingSource struct {
	f       *pollingFactory
	shardID string
	log     *slog.Logger

	from     startPosition // where the shard started, used until a record is read
	lastSeq  string        // sequence number of the last record read
	iterator *string
	ended    bool

	lastCall  time.Time
	lastEmpty bool
	failures  int
	bo        *backoff.ExponentialBackOff

	// dec decodes the GetRecords answers when the client is the SDK's (its option does
	// nothing on another KinesisAPI, whose answers are used as they come). FreshData keeps
	// each answer's Data, which the records a processor gets alias, from ever being
	// overwritten: a processor may keep Record.Data, as with the SDK's own decoder, at one
	// allocation per answer rather than one per record.
	dec kinesisjson.GetRecordsDecoder
}

func (s *pollingSource) close() {}

// resume is where a new iterator starts: after the last record read, or the start position.
func (s *pollingSource) resume() startPosition {
	if s.lastSeq != "" {
		return startPosition{kind: types.ShardIteratorTypeAfterSequenceNumber, seq: s.lastSeq}
	}
	return s.from
}

func (s *pollingSource) getIterator(ctx context.Context) error {
	p := s.resume()
	in := &kinesis.GetShardIteratorInput{
		ShardId:           aws.String(s.shardID),
		ShardIteratorType: p.kind,
	}
	in.StreamName, in.StreamARN = s.f.stream.input()
	switch p.kind {
	case types.ShardIteratorTypeAtSequenceNumber, types.ShardIteratorTypeAfterSequenceNumber:
		in.StartingSequenceNumber = aws.String(p.seq)
	case types.ShardIteratorTypeAtTimestamp:
		in.Timestamp = aws.Time(p.ts)
	}
	cctx, cancel := context.WithTimeout(ctx, s.f.callLimit)
	defer cancel()
	out, err := s.f.client.GetShardIterator(cctx, in)
	if err != nil {
		return fmt.Errorf("consumer: GetShardIterator %s %s: %w", s.shardID, p, err)
	}
	s.iterator = out.ShardIterator
	if s.iterator == nil {
		// A closed shard whose records are all before the position has no iterator.
		s.ended = true
	}
	return nil
}

func (s *pollingSource) next(ctx context.Context) (fetchResult, error) {
	if s.ended {
		return fetchResult{shardEnded: true}, nil
	}
	if s.bo == nil {
		s.bo = backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(100*time.Millisecond),
			backoff.WithMaxInterval(5*time.Second),
			backoff.WithMaxElapsedTime(0))
	}
	for {
		wait := time.Duration(0)
		if !s.lastCall.IsZero() {
			gap := s.f.minSpace
			if s.lastEmpty {
				gap = s.f.idle
			}
			wait = time.Until(s.lastCall.Add(gap))
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return fetchResult{}, err
		}
		res, err := s.poll(ctx)
		if err == nil {
			s.failures = 0
			s.bo.Reset()
			return res, nil
		}
		if ctx.Err() != nil {
			return fetchResult{}, ctx.Err()
		}
		if errors.Is(err, errResourceNotFound) {
			return fetchResult{}, err
		}
		s.failures++
		d := s.bo.NextBackOff()
		s.log.Warn("consumer: reading shard failed, retrying", "error", err, "attempt", s.failures, "backoff", d)
		if err := sleepCtx(ctx, d); err != nil {
			return fetchResult{}, err
		}
	}
}

// poll makes one GetRecords call, getting an iterator first when needed, and classifies what
// went wrong so that next can retry.
func (s *pollingSource) poll(ctx context.Context) (fetchResult, error) {
	if s.iterator == nil {
		if err := s.getIterator(ctx); err != nil {
			return fetchResult{}, classifyReadError(err)
		}
		if s.ended {
			return fetchResult{shardEnded: true}, nil
		}
	}
	s.lastCall = time.Now()
	cctx, cancel := context.WithTimeout(ctx, s.f.callLimit)
	in := &kinesis.GetRecordsInput{ShardIterator: s.iterator, Limit: aws.Int32(s.f.limit)}
	if s.f.stream.arn != "" {
		// As the KCL's KinesisDataFetcher does: a stream of another account is read by ARN.
		in.StreamARN = aws.String(s.f.stream.arn)
	}
	out, err := s.f.client.GetRecords(cctx, in, s.dec.Option())
	cancel()
	if err != nil {
		err = classifyReadError(err)
		var expired *types.ExpiredIteratorException
		var invalid *types.InvalidArgumentException
		switch {
		case errors.As(err, &expired):
			// Iterators live five minutes; a slow processor outlives them.
			s.iterator = nil
			if s.f.hooks.expired != nil {
				s.f.hooks.expired()
			}
			s.log.Debug("consumer: shard iterator expired, getting a new one", "from", s.resume())
			return fetchResult{}, fmt.Errorf("consumer: GetRecords %s: %w", s.shardID, err)
		case errors.As(err, &invalid), isBareServerError(err) && s.failures+1 >= badIteratorSuspicion:
			s.iterator = nil
			s.log.Warn("consumer: shard iterator rejected, getting a new one", "from", s.resume(), "error", err)
		case isThrottle(err):
			if s.f.hooks.throttled != nil {
				s.f.hooks.throttled()
			}
		default:
			if s.f.hooks.retriedErrors != nil {
				s.f.hooks.retriedErrors()
			}
		}
		return fetchResult{}, fmt.Errorf("consumer: GetRecords %s: %w", s.shardID, err)
	}
	res := fetchResult{records: out.Records, millisBehindLatest: aws.ToInt64(out.MillisBehindLatest)}
	if n := len(out.Records); n > 0 {
		s.lastSeq = deref(out.Records[n-1].SequenceNumber)
	}
	s.lastEmpty = len(out.Records) == 0
	s.iterator = out.NextShardIterator
	if s.iterator == nil {
		s.ended = true
		res.shardEnded = true
		res.childShards = out.ChildShards
	}
	return res, nil
}

// errResourceNotFound marks a ResourceNotFoundException from a call about one shard
// (GetShardIterator, GetRecords, SubscribeToShard): either the shard is gone (it expired past
// the stream's retention, or the lease was left by a stream of the same name that was deleted
// and created again) or the whole stream is. Only a look at the stream tells them apart; see
// shardConsumer.resolveNotFound.
var errResourceNotFound = errors.New("consumer: resource not found")

// classifyReadError marks a ResourceNotFoundException from a shard read with
// errResourceNotFound.
func classifyReadError(err error) error {
	var rnf *types.ResourceNotFoundException
	if errors.As(err, &rnf) {
		return fmt.Errorf("%w: %w", errResourceNotFound, err)
	}
	return err
}

// classifyKinesisError marks a missing stream with ErrStreamNotFound. Only for calls about the
// stream as a whole (ListShards, DescribeStreamSummary), where ResourceNotFoundException can
// mean nothing else.
func classifyKinesisError(err error) error {
	var rnf *types.ResourceNotFoundException
	if errors.As(err, &rnf) {
		return fmt.Errorf("%w: %w", ErrStreamNotFound, err)
	}
	return err
}

func isThrottle(err error) bool {
	var pte *types.ProvisionedThroughputExceededException
	var lee *types.LimitExceededException
	if errors.As(err, &pte) || errors.As(err, &lee) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		return strings.Contains(code, "Throttl") || code == "ProvisionedThroughputExceededException"
	}
	return false
}

// isBareServerError reports an HTTP 5xx without an error code the SDK knows.
func isBareServerError(err error) bool {
	var se interface{ HTTPStatusCode() int }
	if !errors.As(err, &se) || se.HTTPStatusCode() < 500 {
		return false
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		c := ae.ErrorCode()
		return c == "" || c == "UnknownError" || c == "InternalFailure" || c == "InternalError"
	}
	return true
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// pollingSources returns a polling retrieval for the worker's configuration: the default,
// and the fallback of enhanced fan-out.
func (w *Worker) pollingSources() *pollingFactory {
	cfg := &w.cfg
	hooks := retrievalHooks{
		log: w.log,
		throttled: func() {
			w.stats.readsThrottled.Add(1)
			w.m.readThrottles.Add(1)
		},
		expired: func() {
			w.stats.iteratorsExpired.Add(1)
			w.m.expiredIterators.Add(1)
		},
		retriedErrors: func() {
			w.stats.readErrors.Add(1)
			w.m.readErrors.Add(1)
		},
	}
	return &pollingFactory{
		client:    cfg.Kinesis,
		stream:    cfg.stream(),
		limit:     cfg.MaxRecords,
		idle:      cfg.IdleTimeBetweenReads,
		minSpace:  cfg.MinTimeBetweenReads,
		callLimit: cfg.kinesisCallTimeout(),
		hooks:     hooks,
	}
}

// sourceBox holds the retrieval in use; it changes once, when fan-out is set up at start.
type sourceBox struct{ f sourceFactory }

func (w *Worker) sources() sourceFactory { return w.source.Load().f }

func (w *Worker) setSources(f sourceFactory) { w.source.Store(&sourceBox{f: f}) }
