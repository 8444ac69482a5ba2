package fanout

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/cenkalti/backoff/v4"
)

// callTimeout bounds each control-plane call the subscriber makes on its own.
const callTimeout = 15 * time.Second

// pollInterval spaces GetRecords calls while finishing a closed shard: Kinesis allows 5 per
// second per shard, shared with any polling consumer of the stream.
const pollInterval = 200 * time.Millisecond

// shardWatch decides when to ask ListShards whether the shard has closed.
type shardWatch struct {
	interval    time.Duration
	last        time.Time // of the last check
	closedSince time.Time // when a check first found the shard closed
}

func (w *shardWatch) due(now time.Time) bool {
	return w.interval > 0 && (w.last.IsZero() || now.Sub(w.last) >= w.interval)
}

// closedLongEnough is true once the shard has been seen closed for a whole interval. A live
// subscription on Kinesis reports a closed shard's end by itself within moments, so only a
// subscription that stays silent about it that long is taken over by polling.
func (w *shardWatch) closedLongEnough(now time.Time) bool {
	return !w.closedSince.IsZero() && now.Sub(w.closedSince) >= w.interval
}

type shardState struct {
	closed   bool // the shard has an ending sequence number: it takes no more records
	gone     bool // the shard is no longer listed: it expired past the retention period
	children []types.ChildShard
}

// checkShard asks ListShards about the subscribed shard.
func (s *Subscriber) checkShard(ctx context.Context, w *shardWatch) (shardState, error) {
	now := time.Now()
	w.last = now
	s.shardChecks.Add(1)
	shards, err := s.listShards(ctx)
	if err != nil {
		return shardState{}, err
	}
	st := shardState{children: childrenOf(s.cfg.ShardID, shards), gone: true}
	for _, sh := range shards {
		if aws.ToString(sh.ShardId) != s.cfg.ShardID {
			continue
		}
		st.gone = false
		if sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil {
			st.closed = true
			if w.closedSince.IsZero() {
				w.closedSince = now
			}
		}
	}
	return st, nil
}

func (s *Subscriber) listShards(ctx context.Context) ([]types.Shard, error) {
	var shards []types.Shard
	in := &kinesis.ListShardsInput{StreamARN: aws.String(s.cfg.StreamARN)}
	for {
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		out, err := s.cfg.Client.ListShards(callCtx, in)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("fanout: list shards: %w", err)
		}
		shards = append(shards, out.Shards...)
		if aws.ToString(out.NextToken) == "" {
			return shards, nil
		}
		// A follow-up page names only the token: ListShards rejects it with the stream too.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// childrenFromListing finds the children of the shard for a last batch that came without
// them; a failed listing leaves them unknown rather than holding the end back.
func (s *Subscriber) childrenFromListing(ctx context.Context) []types.ChildShard {
	shards, err := s.listShards(ctx)
	if err != nil {
		return nil
	}
	return childrenOf(s.cfg.ShardID, shards)
}

// childrenOf returns the shards that name parent as a parent: two after a split, one after a
// merge.
func childrenOf(parent string, shards []types.Shard) []types.ChildShard {
	var children []types.ChildShard
	for _, sh := range shards {
		p, adj := aws.ToString(sh.ParentShardId), aws.ToString(sh.AdjacentParentShardId)
		if p != parent && adj != parent {
			continue
		}
		c := types.ChildShard{ShardId: sh.ShardId, HashKeyRange: sh.HashKeyRange}
		for _, id := range []string{p, adj} {
			if id != "" {
				c.ParentShards = append(c.ParentShards, id)
			}
		}
		children = append(children, c)
	}
	return children
}

// finishClosed reads the rest of a closed shard with GetRecords from pos, delivers it, and
// ends with the shard's last batch. It serves when subscriptions cannot finish the shard: an
// emulator that never reports the end in the stream, or subscriptions that are refused.
// Polling starts exactly where the last subscription stopped, so nothing is read twice.
func (s *Subscriber) finishClosed(ctx context.Context, pos types.StartingPosition) error {
	bo := s.cfg.NewBackOff()
	retry := func(err error) error {
		wait := bo.NextBackOff()
		if wait == backoff.Stop {
			return fmt.Errorf("fanout: read closed shard %s: giving up: %w", s.cfg.ShardID, err)
		}
		s.retries.Add(1)
		if s.cfg.OnRetry != nil {
			s.cfg.OnRetry(err, wait)
		}
		return sleep(ctx, wait)
	}
	var iterator *string
	for {
		if iterator == nil {
			callCtx, cancel := context.WithTimeout(ctx, callTimeout)
			out, err := s.cfg.Client.GetShardIterator(callCtx, &kinesis.GetShardIteratorInput{
				StreamARN:              aws.String(s.cfg.StreamARN),
				ShardId:                aws.String(s.cfg.ShardID),
				ShardIteratorType:      pos.Type,
				StartingSequenceNumber: pos.SequenceNumber,
				Timestamp:              pos.Timestamp,
			})
			cancel()
			switch {
			case err == nil && out.ShardIterator == nil:
				return s.deliverEnd(ctx, Batch{ChildShards: s.childrenFromListing(ctx)})
			case err == nil:
				iterator = out.ShardIterator
			case isCode(err, "ResourceNotFoundException"):
				return fmt.Errorf("fanout: read closed shard %s: %w", s.cfg.ShardID, err)
			case ctx.Err() != nil:
				return ctx.Err()
			default:
				if err := retry(err); err != nil {
					return err
				}
				continue
			}
		}
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		out, err := s.cfg.Client.GetRecords(callCtx, &kinesis.GetRecordsInput{
			ShardIterator: iterator,
			StreamARN:     aws.String(s.cfg.StreamARN),
		})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if isCode(err, "ExpiredIteratorException") {
				iterator = nil
				continue
			}
			if fatalSubscribeError(err) || isCode(err, "ResourceNotFoundException") {
				return fmt.Errorf("fanout: read closed shard %s: %w", s.cfg.ShardID, err)
			}
			if err := retry(err); err != nil {
				return err
			}
			continue
		}
		bo.Reset()
		b := Batch{Records: out.Records, MillisBehindLatest: aws.ToInt64(out.MillisBehindLatest)}
		if n := len(out.Records); n > 0 {
			last := aws.ToString(out.Records[n-1].SequenceNumber)
			pos = types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(last)}
			b.ContinuationSequenceNumber = last
		}
		if out.NextShardIterator == nil {
			s.polledBatches.Add(1)
			b.ChildShards = out.ChildShards
			if len(b.ChildShards) == 0 {
				b.ChildShards = s.childrenFromListing(ctx)
			}
			return s.deliverEnd(ctx, b)
		}
		if len(b.Records) > 0 {
			s.polledBatches.Add(1)
			if err := s.deliver(ctx, b); err != nil {
				return err
			}
		}
		iterator = out.NextShardIterator
		if err := sleep(ctx, pollInterval); err != nil {
			return err
		}
	}
}
