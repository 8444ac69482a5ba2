package consumer

import (
	"context"
	"time"

	"github.com/shardline/shardline/checkpoint"
)

// Record is one user record as the processor sees it: decompressed and, when it arrived
// inside a KPL aggregate, unpacked.
//
// A processor may keep a record, Data included, past ProcessRecords: the worker never writes
// to a record's Data again. Polling reads through the SDK's *kinesis.Client decode the Data of
// all the records of one GetRecords answer into one buffer allocated for that answer, so a
// record kept keeps its whole answer's Data in memory; a processor that keeps a few records
// of many answers for long copies their Data instead.
type Record struct {
	// Data is the payload.
	Data []byte
	// PartitionKey is the user record's partition key (the Kinesis record's for a record that
	// was not aggregated).
	PartitionKey string
	// ExplicitHashKey is the user record's explicit hash key; empty when none was set.
	ExplicitHashKey string
	// SequenceNumber is the Kinesis record's sequence number, shared by every user record of
	// one aggregate. Compare sequence numbers as integers, never as strings.
	SequenceNumber string
	// SubSequenceNumber is the user record's index inside its aggregate; 0 for a record that
	// was not aggregated.
	SubSequenceNumber int64
	// ApproximateArrivalTimestamp is when Kinesis accepted the Kinesis record.
	ApproximateArrivalTimestamp time.Time
	// Aggregated reports whether the record came out of a KPL aggregate. A corrupt aggregate
	// is delivered whole, as one record with Aggregated false (and counted).
	Aggregated bool
}

// Position returns where the record sits in its shard, the value a checkpoint at this record
// stores.
func (r *Record) Position() checkpoint.ExtendedSequenceNumber {
	return checkpoint.ExtendedSequenceNumber{SequenceNumber: r.SequenceNumber, SubSequenceNumber: r.SubSequenceNumber}
}

// RecordProcessor processes the records of one shard for as long as this worker holds the
// shard's lease. The worker creates one per lease it takes (see ProcessorFactory) and calls
// it from one goroutine, in this order: Initialize once, ProcessRecords any number of times,
// then exactly one of LeaseLost, ShardEnded or ShutdownRequested. A processor is never reused
// after that last call.
//
// Who checkpoints when:
//
//	call               when                                                may/must checkpoint
//	Initialize         before the first batch                              no (nothing delivered)
//	ProcessRecords     for each non-empty batch                            may, up to the batch's last record
//	LeaseLost          another worker took the lease, or renewals failed   cannot (the lease is gone)
//	ShardEnded         every record of a closed shard was delivered         must: Checkpoint at SHARD_END
//	ShutdownRequested  worker shutdown, or the lease moves to another      may; the lease is released after
//	                   worker (graceful handoff)                           it returns
//
// Records after the last checkpoint are delivered again to whoever processes the shard next,
// so a processor that checkpoints after the work it does is at-least-once. The context of
// each call is cancelled when the lease is lost or the worker is killed.
type RecordProcessor interface {
	// Initialize prepares for the shard. An error is logged and Initialize is called again
	// after a pause.
	Initialize(ctx context.Context, in InitializeInput) error
	// ProcessRecords handles one batch. An error makes the worker deliver the same batch
	// again after a pause (backing off up to Config.MaxProcessingBackoff), so returning an
	// error never skips records; a processor that wants to skip returns nil.
	ProcessRecords(ctx context.Context, in ProcessRecordsInput) error
	// LeaseLost tells the processor that another worker now processes the shard; any
	// checkpoint it tries fails. It should drop its state for the shard.
	LeaseLost(ctx context.Context, in LeaseLostInput)
	// ShardEnded tells the processor the shard is closed (split or merged) and every record
	// was delivered. It must call in.Checkpointer.Checkpoint: the children of the shard do not
	// start before that. Returning without it (or with an error) is logged, counted as
	// ErrShardEndNotCheckpointed and ShardEnded is called again after a pause.
	ShardEnded(ctx context.Context, in ShardEndedInput) error
	// ShutdownRequested tells the processor the worker stops processing the shard while it is
	// still open: the worker is shutting down, or the lease is being handed to another worker.
	// It may checkpoint; the records after its last checkpoint go to the next owner.
	ShutdownRequested(ctx context.Context, in ShutdownRequestedInput) error
}

// ProcessorFactory creates the processor for one shard.
type ProcessorFactory interface {
	NewProcessor(shardID string) RecordProcessor
}

// ProcessorFactoryFunc adapts a function to ProcessorFactory.
type ProcessorFactoryFunc func(shardID string) RecordProcessor

// NewProcessor calls f.
func (f ProcessorFactoryFunc) NewProcessor(shardID string) RecordProcessor { return f(shardID) }

// InitializeInput is what Initialize gets.
type InitializeInput struct {
	ShardID string // the shard to process
	// Checkpoint is where processing resumes: a sentinel (TRIM_HORIZON, LATEST,
	// AT_TIMESTAMP) for a shard never checkpointed, else the last checkpoint.
	Checkpoint checkpoint.ExtendedSequenceNumber
	// PendingCheckpoint is a prepared but uncommitted checkpoint (KCL two-phase
	// checkpointing) found on the lease; nil when none.
	PendingCheckpoint *checkpoint.ExtendedSequenceNumber
}

// ProcessRecordsInput is one batch.
type ProcessRecordsInput struct {
	ShardID string // the shard the records come from
	// Records are the batch's user records, in shard order. The slice is reused after the
	// call returns; the records themselves, Data included, may be kept (see Record).
	Records []Record
	// MillisBehindLatest is how far the batch lags the tip of the shard, as Kinesis reported.
	MillisBehindLatest int64
	// Checkpointer records progress; it accepts positions up to the batch's last record.
	Checkpointer *Checkpointer
}

// LeaseLostInput is what LeaseLost gets.
type LeaseLostInput struct {
	ShardID string // the shard whose lease was lost
}

// ShardEndedInput is what ShardEnded gets.
type ShardEndedInput struct {
	ShardID string // the shard that ended
	// ChildShardIDs are the shards that replaced this one, when known.
	ChildShardIDs []string
	// Checkpointer must be used to checkpoint at SHARD_END (Checkpoint does).
	Checkpointer *Checkpointer
}

// ShutdownCause says why a processor is asked to shut down.
type ShutdownCause int

const (
	// CauseWorkerShutdown: the worker is shutting down gracefully.
	CauseWorkerShutdown ShutdownCause = iota + 1
	// CauseHandoff: another worker asked for the lease to balance the load.
	CauseHandoff
)

// String names the cause.
func (c ShutdownCause) String() string {
	switch c {
	case CauseWorkerShutdown:
		return "worker shutdown"
	case CauseHandoff:
		return "handoff"
	}
	return "unknown"
}

// ShutdownRequestedInput is what ShutdownRequested gets.
type ShutdownRequestedInput struct {
	ShardID string        // the shard to stop processing
	Cause   ShutdownCause // why
	// Checkpointer may be used to checkpoint what was processed.
	Checkpointer *Checkpointer
}

// Checkpointer records a processor's progress in its shard. It is the checkpoint package's
// Checkpointer bound to the worker's hold on the lease: a checkpoint before the stored one, or
// after the last record delivered, is refused with a *checkpoint.CheckpointError, and one
// after the lease was lost fails with an error matching checkpoint.ErrLeaseLost. Safe for
// concurrent use.
type Checkpointer struct {
	shardID string
	cp      *checkpoint.Checkpointer
	holder  *checkpoint.LeaseHolder
	onWrite func(start time.Time) // told of every checkpoint written, with when it started
}

// wrote tells onWrite about a checkpoint that reached the table. A checkpoint equal to the
// stored one is accepted without a write, and only a write moves the counter that shows the
// other workers this one is alive.
func (c *Checkpointer) wrote(start time.Time, counterBefore int64) {
	if c.onWrite != nil && c.holder != nil && c.holder.Lease().Counter > counterBefore {
		c.onWrite(start)
	}
}

func (c *Checkpointer) counter() int64 {
	if c.holder == nil {
		return 0
	}
	return c.holder.Lease().Counter
}

// ShardID returns the shard whose progress this checkpointer records.
func (c *Checkpointer) ShardID() string { return c.shardID }

// Checkpoint records that every record delivered so far was processed; in ShardEnded it
// checkpoints at SHARD_END.
func (c *Checkpointer) Checkpoint(ctx context.Context) error {
	start, before := time.Now(), c.counter()
	err := c.cp.Checkpoint(ctx)
	if err == nil {
		c.wrote(start, before)
	}
	return err
}

// CheckpointRecord records that every record up to and including r was processed.
func (c *Checkpointer) CheckpointRecord(ctx context.Context, r *Record) error {
	return c.CheckpointAt(ctx, r.SequenceNumber, r.SubSequenceNumber)
}

// CheckpointAt records that every record up to sequence number seq, user record subseq inside
// it, was processed.
func (c *Checkpointer) CheckpointAt(ctx context.Context, seq string, subseq int64) error {
	start, before := time.Now(), c.counter()
	err := c.cp.CheckpointAt(ctx, seq, subseq)
	if err == nil {
		c.wrote(start, before)
	}
	return err
}

// CheckpointAtNextRenewal records, like CheckpointAt, that every record up to seq and subseq
// was processed, with the checks applied at once, but writes it with the lease's next renewal
// instead of a write of its own: at most RenewInterval later, and at no cost to the lease
// table beyond the renewals. A checkpoint still waiting when the lease is lost is dropped (the
// next owner processes those records again); any later Checkpoint or CheckpointAt, as in
// ShardEnded or ShutdownRequested, writes at once.
func (c *Checkpointer) CheckpointAtNextRenewal(seq string, subseq int64) error {
	return c.cp.CheckpointAtNextRenewal(seq, subseq)
}

// Checkpointed returns the stored checkpoint as of the last write or renewal.
func (c *Checkpointer) Checkpointed() checkpoint.ExtendedSequenceNumber { return c.cp.Checkpointed() }

// LastDelivered returns the position of the last record delivered to the processor, and false
// when none was delivered yet.
func (c *Checkpointer) LastDelivered() (checkpoint.ExtendedSequenceNumber, bool) {
	return c.cp.LastDelivered()
}

// RecordFunc returns a ProcessorFactory for the common case: fn is called for each record in
// order, and the worker checkpoints what fn processed without error on a cadence. By default
// the checkpoint rides on the lease's renewal (Checkpointer.CheckpointAtNextRenewal): after
// each batch the position is handed to the renewer, and the next renewal, every
// RenewInterval, writes it in place of a bare renewal, so a busy shard costs the lease table
// no more than an idle one. CheckpointInterval, CheckpointEveryRecords and
// CheckpointEveryBatch write checkpoints of their own instead. Whatever the cadence, the
// checkpoint is written at once at shard end, at a graceful shutdown or handoff, and before a
// batch is delivered again after a failure. When fn fails, the records before the failing one
// are checkpointed and the batch is delivered again from the failing record after a pause, so
// a record is skipped only when fn returns nil for it. Records after the last checkpoint may
// be passed to fn again after a failover (with the default, those of up to one RenewInterval):
// fn should be idempotent, and a longer cadence means more such records.
func RecordFunc(fn func(ctx context.Context, r Record) error, opts ...RecordFuncOption) ProcessorFactory {
	var cad cadence
	for _, o := range opts {
		o(&cad)
	}
	return ProcessorFactoryFunc(func(string) RecordProcessor { return &recordFuncProcessor{fn: fn, cadence: cad} })
}

// RecordFuncOption sets how often RecordFunc checkpoints.
type RecordFuncOption func(*cadence)

// CheckpointInterval makes RecordFunc write a checkpoint at most once per d while records
// flow, as KCL applications checkpoint every few seconds to a minute: the lease table then
// takes one checkpoint write per shard and interval besides the renewals, and after a
// failover up to about d of records are processed again. Processed records are also
// checkpointed when the shard goes idle for d (on the next empty read), so none wait for the
// next record. With CheckpointEveryRecords too, whichever comes first checkpoints. d <= 0
// keeps the default, the checkpoint riding on the renewal.
func CheckpointInterval(d time.Duration) RecordFuncOption {
	return func(c *cadence) { c.interval = max(d, 0) }
}

// CheckpointEveryRecords makes RecordFunc checkpoint once at least n records were processed
// since the last checkpoint, checked at the end of each batch. n <= 0 keeps the default.
func CheckpointEveryRecords(n int) RecordFuncOption {
	return func(c *cadence) { c.records = max(n, 0) }
}

// CheckpointEveryBatch makes RecordFunc write a checkpoint after every batch, so that a
// failover processes no record of an earlier batch again, at up to five writes a second per
// shard (18,000 a shard-hour) instead of none beyond the renewals.
func CheckpointEveryBatch() RecordFuncOption {
	return func(c *cadence) { c.everyBatch = true }
}

// cadence is when RecordFunc checkpoints during processing; the zero value rides on the
// renewals.
type cadence struct {
	interval   time.Duration
	records    int
	everyBatch bool
}

// deferred reports whether checkpoints ride on the renewals.
func (c cadence) deferred() bool { return c.interval == 0 && c.records == 0 && !c.everyBatch }

type recordFuncProcessor struct {
	fn      func(context.Context, Record) error
	cadence cadence
	// done is the position of the last record fn accepted, so a batch delivered again after a
	// failure resumes at the failing record.
	done    checkpoint.ExtendedSequenceNumber
	hasDone bool
	// Progress since the last checkpoint, for the cadence.
	lastCheckpoint time.Time
	pending        int // records accepted since the last checkpoint
}

func (p *recordFuncProcessor) Initialize(context.Context, InitializeInput) error {
	p.lastCheckpoint = time.Now()
	return nil
}

// due reports whether the cadence asks for a checkpoint now.
func (p *recordFuncProcessor) due(now time.Time) bool {
	c := p.cadence
	if c.everyBatch {
		return true
	}
	return (c.records > 0 && p.pending >= c.records) || (c.interval > 0 && now.Sub(p.lastCheckpoint) >= c.interval)
}

// checkpointDone checkpoints the last record fn accepted.
func (p *recordFuncProcessor) checkpointDone(ctx context.Context, cp *Checkpointer) error {
	if err := cp.CheckpointAt(ctx, p.done.SequenceNumber, p.done.SubSequenceNumber); err != nil {
		return err
	}
	p.lastCheckpoint, p.pending = time.Now(), 0
	return nil
}

// idle is called by the shard consumer after a read that brought no records: progress
// waiting for the interval is checkpointed once it is due, so an idle shard does not keep
// processed records unrecorded.
func (p *recordFuncProcessor) idle(ctx context.Context, cp *Checkpointer) error {
	if p.pending == 0 || p.cadence.interval == 0 || time.Since(p.lastCheckpoint) < p.cadence.interval {
		return nil
	}
	return p.checkpointDone(ctx, cp)
}

func (p *recordFuncProcessor) ProcessRecords(ctx context.Context, in ProcessRecordsInput) error {
	// The records are in shard order: once one is past done, so are the rest, and done moves
	// to the last record fn accepted when the loop ends or fails.
	seeking := p.hasDone
	last := -1
	for i := range in.Records {
		r := &in.Records[i]
		if seeking {
			if r.Position().Compare(p.done) <= 0 {
				continue
			}
			seeking = false
		}
		if err := p.fn(ctx, *r); err != nil {
			if last >= 0 {
				p.done, p.hasDone = in.Records[last].Position(), true
			}
			if p.hasDone && p.pending > 0 {
				// Keep what was done; the failing record comes again.
				if cerr := p.checkpointDone(ctx, in.Checkpointer); cerr != nil {
					return cerr
				}
			}
			return err
		}
		last = i
		p.pending++
	}
	if last >= 0 {
		p.done, p.hasDone = in.Records[last].Position(), true
	}
	if p.pending == 0 {
		return nil
	}
	if p.cadence.deferred() {
		// pending stays: until a write of its own, ShutdownRequested writes the position at
		// once rather than trust a renewal that may not come.
		return in.Checkpointer.CheckpointAtNextRenewal(p.done.SequenceNumber, p.done.SubSequenceNumber)
	}
	if !p.due(time.Now()) {
		return nil
	}
	return p.checkpointDone(ctx, in.Checkpointer)
}

func (p *recordFuncProcessor) LeaseLost(context.Context, LeaseLostInput) {}

func (p *recordFuncProcessor) ShardEnded(ctx context.Context, in ShardEndedInput) error {
	return in.Checkpointer.Checkpoint(ctx)
}

func (p *recordFuncProcessor) ShutdownRequested(ctx context.Context, in ShutdownRequestedInput) error {
	if !p.hasDone || p.pending == 0 {
		return nil
	}
	return p.checkpointDone(ctx, in.Checkpointer)
}
