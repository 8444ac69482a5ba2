package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/internal/fanout"
)

// FanOutAPI is what the Kinesis client must offer, besides KinesisAPI, for enhanced fan-out:
// SubscribeToShard and the stream-consumer registration calls. *kinesis.Client offers it. A
// Config.Kinesis without it makes a worker configured for FanOut poll instead.
type FanOutAPI interface {
	KinesisAPI
	fanout.SubscribeAPI
	fanout.RegistrationAPI
}

// registrationTimeout bounds the registration of the application's stream consumer at start.
const registrationTimeout = time.Minute

// setupFanOut registers (or finds) the application's stream consumer and switches the worker
// to enhanced fan-out. When that is impossible it stays with polling, says so in the log and
// counts it in RetrievalFallbacks; a missing stream is an error.
func (w *Worker) setupFanOut(ctx context.Context) error {
	cfg := &w.cfg
	fallback := func(why string, err error) {
		w.log.Warn("consumer: enhanced fan-out unavailable, reading by polling", "reason", why, "error", err)
		w.stats.retrievalFallbacks.Add(1)
		w.m.retrievalFallbacks.Add(1)
	}
	client, ok := cfg.Kinesis.(FanOutAPI)
	if !ok {
		fallback("the Kinesis client has no SubscribeToShard", nil)
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, registrationTimeout)
	defer cancel()
	streamARN, err := cfg.StreamARN, error(nil)
	if streamARN == "" {
		streamARN, err = fanout.StreamARN(rctx, client, cfg.StreamName)
	}
	if err != nil {
		if err := classifyKinesisError(err); errors.Is(err, ErrStreamNotFound) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fallback("describing the stream failed", err)
		return nil
	}
	consumerARN, err := fanout.EnsureConsumer(rctx, client, streamARN, cfg.ConsumerName)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fallback("registering the stream consumer failed", err)
		return nil
	}
	poll := w.pollingSources()
	w.setSources(&fanoutFactory{
		w: w, client: client, streamARN: streamARN, consumerARN: consumerARN, polling: poll,
		checkInterval: cfg.FanOutShardCheckInterval,
	})
	w.log.Info("consumer: reading with enhanced fan-out", "consumer", cfg.ConsumerName, "consumer_arn", consumerARN)
	return nil
}

// fanoutFactory opens enhanced fan-out subscriptions, one per shard.
type fanoutFactory struct {
	w                      *Worker
	client                 FanOutAPI
	streamARN, consumerARN string
	polling                *pollingFactory
	checkInterval          time.Duration
}

func (f *fanoutFactory) mode() Retrieval { return FanOut }

func (f *fanoutFactory) open(ctx context.Context, shardID string, from startPosition) (shardSource, error) {
	log := f.w.log.With("shard", shardID)
	sub, err := fanout.Subscribe(ctx, fanout.Config{
		Client:             f.client,
		ConsumerARN:        f.consumerARN,
		StreamARN:          f.streamARN,
		ShardID:            shardID,
		StartingPosition:   startingPosition(from),
		ShardCheckInterval: f.checkInterval,
		OnRetry: func(err error, wait time.Duration) {
			log.Debug("consumer: subscription failed, subscribing again", "error", err, "wait", wait)
		},
	})
	if err != nil {
		f.fellBack(shardID, err)
		return f.polling.open(ctx, shardID, from)
	}
	return &fanoutSource{f: f, sub: sub, shardID: shardID, from: from}, nil
}

// fellBack reports a shard read by polling although fan-out is configured.
func (f *fanoutFactory) fellBack(shardID string, err error) {
	f.w.log.Warn("consumer: enhanced fan-out failed for the shard, reading it by polling", "shard", shardID, "error", err)
	f.w.stats.retrievalFallbacks.Add(1)
	f.w.m.retrievalFallbacks.Add(1)
}

func startingPosition(p startPosition) types.StartingPosition {
	sp := types.StartingPosition{Type: p.kind}
	switch p.kind {
	case types.ShardIteratorTypeAtSequenceNumber, types.ShardIteratorTypeAfterSequenceNumber:
		sp.SequenceNumber = aws.String(p.seq)
	case types.ShardIteratorTypeAtTimestamp:
		sp.Timestamp = aws.Time(p.ts)
	}
	return sp
}

// fanoutSource reads a shard from its subscription. A failure the subscription cannot recover
// from (the consumer deregistered, access denied) does not stop the shard: the rest of it is
// read by polling, after the last record delivered.
type fanoutSource struct {
	f        *fanoutFactory
	sub      *fanout.Subscriber
	shardID  string
	from     startPosition
	lastSeq  string
	fallback shardSource
}

func (s *fanoutSource) next(ctx context.Context) (fetchResult, error) {
	if s.fallback != nil {
		return s.fallback.next(ctx)
	}
	b, err := s.sub.Next(ctx)
	switch {
	case err == nil:
		if n := len(b.Records); n > 0 {
			s.lastSeq = deref(b.Records[n-1].SequenceNumber)
		}
		return fetchResult{records: b.Records, millisBehindLatest: b.MillisBehindLatest, shardEnded: b.ShardEnded, shardGone: b.ShardGone, childShards: b.ChildShards}, nil
	case ctx.Err() != nil:
		return fetchResult{}, ctx.Err()
	case errors.Is(err, io.EOF):
		return fetchResult{shardEnded: true}, nil
	}
	s.f.fellBack(s.shardID, err)
	_ = s.sub.Close()
	from := s.from
	if s.lastSeq != "" {
		from = startPosition{kind: types.ShardIteratorTypeAfterSequenceNumber, seq: s.lastSeq}
	}
	src, oerr := s.f.polling.open(ctx, s.shardID, from)
	if oerr != nil {
		return fetchResult{}, fmt.Errorf("consumer: falling back to polling: %w", oerr)
	}
	s.fallback = src
	return src.next(ctx)
}

func (s *fanoutSource) close() {
	_ = s.sub.Close()
	if s.fallback != nil {
		s.fallback.close()
	}
}
