package checkpoint

import (
	"context"
	"fmt"
	"sync"
)

// Checkpointer is what an application's record processor uses to record its progress in one
// shard. It refuses, with a *CheckpointError, any checkpoint that would move backwards or past
// the records the consumer delivered, so an application bug cannot skip unprocessed records.
// A checkpoint equal to the stored one is accepted without a write. Safe for concurrent use.
//
// The consumer tells it what was delivered (SetLastDelivered after each batch, SetShardEnded
// when the shard is exhausted); the application calls Checkpoint, CheckpointAt or
// CheckpointShardEnd.
type Checkpointer struct {
	holder *LeaseHolder

	mu           sync.Mutex
	delivered    ExtendedSequenceNumber
	hasDelivered bool
}

// NewCheckpointer returns a checkpointer writing through holder.
func NewCheckpointer(holder *LeaseHolder) *Checkpointer {
	return &Checkpointer{holder: holder}
}

// ShardKey returns the key of the lease being checkpointed.
func (c *Checkpointer) ShardKey() string { return c.holder.Key() }

// SetLastDelivered tells the checkpointer that the consumer handed the application every
// record up to sequence number seq, user record subseq inside it (0 for a record that is not a
// KPL aggregate, or the last user record's index for one that is). The bound only rises: a
// lower value (records delivered again after a retry) is ignored.
func (c *Checkpointer) SetLastDelivered(seq string, subseq int64) error {
	e := ExtendedSequenceNumber{SequenceNumber: seq, SubSequenceNumber: subseq}
	if err := e.Validate(); err != nil {
		return err
	}
	if e.IsSentinel() {
		return fmt.Errorf("%w: %s is not a record's sequence number (use SetShardEnded for the end of a shard)", ErrInvalidSequenceNumber, seq)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.hasDelivered || e.Compare(c.delivered) > 0 {
		c.delivered, c.hasDelivered = e, true
	}
	return nil
}

// SetShardEnded tells the checkpointer that every record of the shard was delivered, which
// permits CheckpointShardEnd.
func (c *Checkpointer) SetShardEnded() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.delivered, c.hasDelivered = ShardEnd, true
}

// LastDelivered returns the highest delivered position, and false when nothing was delivered.
func (c *Checkpointer) LastDelivered() (ExtendedSequenceNumber, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.delivered, c.hasDelivered
}

// Checkpointed returns the stored checkpoint as of the last write or renewal.
func (c *Checkpointer) Checkpointed() ExtendedSequenceNumber { return c.holder.Lease().Checkpoint }

// Checkpoint records that every record delivered so far was processed: it checkpoints at the
// last delivered position (SHARD_END once the shard ended).
func (c *Checkpointer) Checkpoint(ctx context.Context) error {
	c.mu.Lock()
	at, ok := c.delivered, c.hasDelivered
	c.mu.Unlock()
	if !ok {
		return &CheckpointError{Key: c.holder.Key(), Current: c.Checkpointed(), Err: ErrCheckpointBeyondDelivered}
	}
	return c.checkpoint(ctx, at)
}

// CheckpointAt records that every record up to sequence number seq, user record subseq inside
// it, was processed. With subseq the application can checkpoint in the middle of a KPL
// aggregate. seq must be a record's sequence number, not a sentinel.
func (c *Checkpointer) CheckpointAt(ctx context.Context, seq string, subseq int64) error {
	at := ExtendedSequenceNumber{SequenceNumber: seq, SubSequenceNumber: subseq}
	err := at.Validate()
	if err == nil && at.IsSentinel() {
		err = fmt.Errorf("%w: %s is a sentinel, not a record's sequence number", ErrInvalidSequenceNumber, seq)
	}
	if err != nil {
		return &CheckpointError{Key: c.holder.Key(), Requested: at, Current: c.Checkpointed(), Err: err}
	}
	return c.checkpoint(ctx, at)
}

// CheckpointShardEnd records that the shard was processed to its end, which lets its child
// shards start. It is refused until the consumer called SetShardEnded.
func (c *Checkpointer) CheckpointShardEnd(ctx context.Context) error {
	return c.checkpoint(ctx, ShardEnd)
}

// CheckpointAtNextRenewal records, like CheckpointAt, that every record up to seq and subseq
// was processed, but writes nothing now: the lease's next renewal writes the checkpoint in
// its place (one UpdateCheckpoint instead of a RenewLease), so a shard checkpointing this way
// costs the lease table no request beyond its renewals. The same checks apply at once. The
// checkpoint is durable only after that renewal, within the renewal interval; one that waits
// when the lease is lost is dropped, and the next owner processes those records again.
// Checkpoints that must be durable at once (shard end, a handoff, shutdown) use the other
// methods, which also write any checkpoint waiting.
func (c *Checkpointer) CheckpointAtNextRenewal(seq string, subseq int64) error {
	at := ExtendedSequenceNumber{SequenceNumber: seq, SubSequenceNumber: subseq}
	err := at.Validate()
	if err == nil && at.IsSentinel() {
		err = fmt.Errorf("%w: %s is a sentinel, not a record's sequence number", ErrInvalidSequenceNumber, seq)
	}
	if err != nil {
		return &CheckpointError{Key: c.holder.Key(), Requested: at, Current: c.Checkpointed(), Err: err}
	}
	return c.holder.deferIf(at, c.check(at))
}

// check returns the ordering check of a checkpoint at at.
func (c *Checkpointer) check(at ExtendedSequenceNumber) func(Lease) error {
	c.mu.Lock()
	delivered, ok := c.delivered, c.hasDelivered
	c.mu.Unlock()
	return func(l Lease) error {
		cur := l.Checkpoint
		ce := &CheckpointError{Key: l.Key, Requested: at, Current: cur, LastDelivered: delivered}
		switch cmp := at.Compare(cur); {
		case cmp < 0:
			ce.Err = ErrCheckpointRegression
			return ce
		case cmp == 0:
			return errSkipWrite
		case !ok || at.Compare(delivered) > 0:
			ce.Err = ErrCheckpointBeyondDelivered
			return ce
		}
		return nil
	}
}

func (c *Checkpointer) checkpoint(ctx context.Context, at ExtendedSequenceNumber) error {
	_, err := c.holder.checkpointIf(ctx, at, c.check(at))
	return err
}
