package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/cenkalti/backoff/v4"

	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/metrics"
)

// stopReason says why a shardConsumer stops before its shard ends. Higher values win: a lease
// lost during a graceful stop turns it into a hard one.
type stopReason int32

const (
	stopNone      stopReason = iota
	stopHandoff              // graceful: another worker asked for the lease
	stopShutdown             // graceful: the worker shuts down
	stopLeaseLost            // hard: the lease is someone else's (or renewals failed)
	stopKilled               // hard: Kill, nothing more may be written
)

// Shard states reported in ShardStats.State.
const (
	StateWaitingOnParents = "waiting-on-parents"
	StateInitializing     = "initializing"
	StateProcessing       = "processing"
	StateShardEnding      = "shard-ending"
	StateShuttingDown     = "shutting-down"
)

// holdState is the renewer's bookkeeping for one lease.
type holdState struct {
	mu             sync.Mutex
	lastRenewed    time.Time // start of the last ownership write that succeeded (take, renewal, checkpoint)
	lastCheckpoint time.Time // start of the last checkpoint write that succeeded
	lastReport     time.Time // start of the last renewal, which reports throughput
	nextRenew      time.Time
	renewing       bool
}

func (h *holdState) lastRenewedAt() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastRenewed
}

// wrote records a successful checkpoint write that started at t.
func (h *holdState) wrote(t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t.After(h.lastCheckpoint) {
		h.lastCheckpoint = t
	}
	if t.After(h.lastRenewed) {
		h.lastRenewed = t
	}
}

// shardConsumer processes one shard for as long as the worker holds its lease: it waits until
// the shard's parents are finished, runs the record processor through its contract (see
// RecordProcessor), reads records through the configured retrieval, and at the end of the
// shard makes the processor checkpoint SHARD_END and releases the lease so the children can
// start.
type shardConsumer struct {
	w       *Worker
	shardID string
	initial checkpoint.Lease
	holder  *checkpoint.LeaseHolder
	cp      *checkpoint.Checkpointer
	ucp     *Checkpointer
	log     *slog.Logger
	hold    holdState

	// ctx ends on a hard stop; stopCtx on any stop request.
	ctx        context.Context
	cancel     context.CancelFunc
	stopCtx    context.Context
	stopCancel context.CancelFunc
	reason     atomic.Int32
	done       chan struct{}

	released atomic.Bool // this worker let go of the lease itself
	stored   atomic.Pointer[checkpoint.ExtendedSequenceNumber]
	fetched  atomic.Int64 // Kinesis bytes read since the last throughput report
	tpMu     sync.Mutex
	tpSince  time.Time
	records  atomic.Int64
	behind   atomic.Int64
	state    atomic.Value // string
	m        shardMetrics
	children []string
}

func newShardConsumer(w *Worker, l checkpoint.Lease, holder *checkpoint.LeaseHolder, takenAt time.Time) *shardConsumer {
	c := &shardConsumer{
		w:       w,
		shardID: l.Key,
		initial: l,
		holder:  holder,
		cp:      checkpoint.NewCheckpointer(holder),
		log:     w.log.With("shard", l.Key),
		done:    make(chan struct{}),
		tpSince: takenAt,
		m:       w.m.forShard(l.Key),
	}
	c.ucp = &Checkpointer{shardID: l.Key, cp: c.cp, holder: holder, onWrite: func(start time.Time) {
		c.hold.wrote(start)
		cp := c.cp.Checkpointed()
		c.stored.Store(&cp)
	}}
	cp := l.Checkpoint
	c.stored.Store(&cp)
	c.hold.lastRenewed, c.hold.lastReport = takenAt, takenAt
	c.hold.nextRenew = takenAt.Add(w.cfg.RenewInterval)
	c.ctx, c.cancel = context.WithCancel(w.hardCtx)
	c.stopCtx, c.stopCancel = context.WithCancel(c.ctx)
	c.state.Store(StateInitializing)
	return c
}

// requestStop asks the consumer to stop for r. Graceful reasons let the processor checkpoint
// and release the lease; hard ones cancel every call in progress.
func (c *shardConsumer) requestStop(r stopReason) {
	for {
		cur := stopReason(c.reason.Load())
		if r <= cur {
			return
		}
		if c.reason.CompareAndSwap(int32(cur), int32(r)) {
			break
		}
	}
	c.stopCancel()
	if r >= stopLeaseLost {
		c.cancel()
	}
}

// loseLease stops processing because the lease is gone or could not be renewed in time.
func (c *shardConsumer) loseLease(err error) {
	if stopReason(c.reason.Load()) >= stopLeaseLost || c.released.Load() {
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	c.log.Warn("consumer: lease lost, stopping the shard", "error", err)
	c.w.stats.leasesLost.Add(1)
	c.w.m.leasesLost.Add(1)
	c.requestStop(stopLeaseLost)
}

// stopping returns why the consumer is stopping, stopNone while it is not. A context ended
// without a reason (the worker's own, at the end of Run) counts as a kill.
func (c *shardConsumer) stopping() stopReason {
	r := stopReason(c.reason.Load())
	if r == stopNone && c.stopCtx.Err() != nil {
		return stopKilled
	}
	return r
}

// throughputKBps returns the shard's read throughput since the last call.
func (c *shardConsumer) throughputKBps(now time.Time) float64 {
	c.tpMu.Lock()
	defer c.tpMu.Unlock()
	dt := now.Sub(c.tpSince).Seconds()
	b := c.fetched.Swap(0)
	c.tpSince = now
	if dt <= 0 {
		return 0
	}
	return float64(b) / 1024 / dt
}

// run is the consumer's goroutine.
func (c *shardConsumer) run() {
	defer c.w.shardDone(c)
	defer close(c.done)
	defer c.cancel()
	c.process()
}

func (c *shardConsumer) process() {
	cfg := &c.w.cfg
	l := c.initial
	if l.Checkpoint.IsShardEnd() {
		c.release("already processed to SHARD_END")
		return
	}
	if !c.waitForParents() {
		c.finish(nil)
		return
	}
	var proc RecordProcessor
	if err := c.invoke("NewProcessor", func() error { proc = cfg.Processor.NewProcessor(c.shardID); return nil }); err != nil || proc == nil {
		c.log.Error("consumer: the processor factory gave no processor; releasing the lease", "error", err)
		c.finish(nil)
		return
	}
	c.state.Store(StateInitializing)
	if !c.retry("Initialize", func() error {
		return proc.Initialize(c.ctx, InitializeInput{ShardID: c.shardID, Checkpoint: l.Checkpoint, PendingCheckpoint: l.PendingCheckpoint})
	}) {
		c.finish(proc)
		return
	}
	from := positionFor(l.Checkpoint, cfg.atTimestamp())
	src, err := c.w.sources().open(c.stopCtx, c.shardID, from)
	if err != nil {
		c.log.Error("consumer: opening the shard failed", "error", err)
		c.finish(proc)
		return
	}
	defer src.close()
	c.log.Debug("consumer: processing shard", "from", from.String(), "retrieval", c.w.sources().mode().String())
	c.state.Store(StateProcessing)
	dec := newRecordDecoder(l.HashKeyRange, l.Checkpoint)
	for c.stopping() == stopNone {
		res, err := src.next(c.stopCtx)
		if err != nil {
			if c.stopping() != stopNone {
				break
			}
			if errors.Is(err, errResourceNotFound) {
				gone, rerr := c.resolveNotFound(err)
				switch {
				case errors.Is(rerr, ErrStreamNotFound):
					c.w.reportFatal(rerr)
					<-c.stopCtx.Done()
				case gone:
					// The KCL's KinesisDataFetcher turns ResourceNotFoundException into its
					// TERMINAL_RESULT, and ShutdownTask then runs the SHARD_END path with no
					// child shards: the processor checkpoints SHARD_END, so the shard's
					// children may start, and the lease is cleaned up as garbage
					// (LeaseCleanupManager.cleanupLeaseForGarbageShard).
					c.log.Warn("consumer: the stream no longer has this shard; ending it as the KCL does so its children can start", "error", err)
					c.w.stats.vanishedShards.Add(1)
					c.shardEnd(proc, nil)
					return
				default:
					c.log.Warn("consumer: the shard is listed but could not be read; retrying", "error", err, "check", rerr)
					_ = sleepCtx(c.stopCtx, time.Second)
					continue
				}
				break
			}
			c.log.Error("consumer: reading the shard failed", "error", err)
			_ = sleepCtx(c.stopCtx, time.Second)
			continue
		}
		if !c.handleBatch(proc, dec, &res) {
			break
		}
		if res.shardEnded {
			if res.shardGone {
				c.log.Warn("consumer: the stream no longer has this shard; ending it as the KCL does so its children can start")
				c.w.stats.vanishedShards.Add(1)
			}
			c.shardEnd(proc, res.childShards)
			return
		}
	}
	c.finish(proc)
}

// resolveNotFound tells a vanished shard from a vanished stream after a read of the shard
// answered ResourceNotFoundException, by listing the stream's shards: when the listing fails
// with ResourceNotFoundException too, the stream is gone (an error matching ErrStreamNotFound,
// which stops the worker); when the stream exists and does not list the shard, the shard is
// gone (true); when it lists it, the refusal was passing and the read is retried.
func (c *shardConsumer) resolveNotFound(readErr error) (bool, error) {
	w := c.w
	shards, err := listStreamShards(c.stopCtx, w.cfg.Kinesis, w.cfg.stream(), w.cfg.kinesisCallTimeout())
	if err != nil {
		if errors.Is(err, ErrStreamNotFound) {
			return false, fmt.Errorf("%w: %s (reading shard %s: %w)", ErrStreamNotFound, w.cfg.StreamName, c.shardID, err)
		}
		return false, err
	}
	for i := range shards {
		if deref(shards[i].ShardId) == c.shardID {
			return false, nil
		}
	}
	return true, nil
}

// handleBatch decodes one batch and hands it to the processor. It returns false when the
// consumer is stopping.
func (c *shardConsumer) handleBatch(proc RecordProcessor, dec *recordDecoder, res *fetchResult) bool {
	recs := dec.decode(res.records)
	c.fetched.Add(dec.stats.bytes)
	c.behind.Store(res.millisBehindLatest)
	c.m.behind.Set(float64(res.millisBehindLatest))
	c.countDecode(&dec.stats)
	if len(res.records) > 0 {
		if err := c.cp.SetLastDelivered(dec.stats.last.SequenceNumber, dec.stats.last.SubSequenceNumber); err != nil {
			c.log.Error("consumer: record with an invalid sequence number", "error", err)
		}
	}
	if len(recs) == 0 {
		if p, ok := proc.(idleProcessor); ok && c.stopping() == stopNone {
			if err := p.idle(c.ctx, c.ucp); err != nil && c.stopping() == stopNone {
				c.log.Warn("consumer: checkpoint of an idle shard failed", "error", err)
			}
		}
		return true
	}
	return c.deliver(proc, recs, res.millisBehindLatest, dec.stats.userBytes)
}

// idleProcessor is a processor that wants to hear of reads that brought no records (RecordFunc,
// to checkpoint progress its cadence held back).
type idleProcessor interface {
	idle(ctx context.Context, cp *Checkpointer) error
}

// deliver hands one batch to the processor, again after a pause while it fails. It returns
// false when the consumer is stopping.
func (c *shardConsumer) deliver(proc RecordProcessor, recs []Record, behind int64, userBytes int64) bool {
	w := c.w
	in := ProcessRecordsInput{ShardID: c.shardID, Records: recs, MillisBehindLatest: behind, Checkpointer: c.ucp}
	ok := c.retry("ProcessRecords", func() error {
		if c.stopping() >= stopLeaseLost {
			// The lease is gone: another worker may be processing these records already.
			return context.Cause(c.ctx)
		}
		start := time.Now()
		err := proc.ProcessRecords(c.ctx, in)
		took := time.Since(start)
		c.m.processing.ObserveDuration(took)
		w.stats.processingNanos.Add(int64(took))
		w.stats.batches.Add(1)
		return err
	})
	if ok {
		n := int64(len(recs))
		c.records.Add(n)
		w.stats.recordsProcessed.Add(n)
		w.stats.bytesProcessed.Add(userBytes)
		c.m.records.Add(n)
		c.m.bytes.Add(userBytes)
	}
	return ok
}

// retry calls fn until it succeeds, pausing with backoff after each failure. It returns false
// when the consumer is asked to stop first.
func (c *shardConsumer) retry(call string, fn func() error) bool {
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(c.w.cfg.MaxProcessingBackoff),
		backoff.WithMaxElapsedTime(0))
	for {
		err := c.invoke(call, fn)
		if err == nil {
			return true
		}
		if c.stopping() != stopNone {
			return false
		}
		c.w.stats.processorErrors.Add(1)
		c.w.m.processorErrors.Add(1)
		d := bo.NextBackOff()
		c.log.Warn("consumer: record processor failed, calling it again", "error", &ProcessorError{ShardID: c.shardID, Call: call, Err: err}, "backoff", d)
		if sleepCtx(c.stopCtx, d) != nil {
			return false
		}
	}
}

// invoke calls fn, turning a panic into an error so that one bad record cannot bring the
// worker down.
func (c *shardConsumer) invoke(call string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("consumer: record processor panicked", "call", call, "panic", r, "stack", string(debug.Stack()))
			err = &panicError{v: r}
		}
	}()
	return fn()
}

// finish ends the consumer for the reason it was stopped: a processor is told its lease is
// lost, or asked to shut down and the lease then released for the next owner.
func (c *shardConsumer) finish(proc RecordProcessor) {
	w := c.w
	switch c.stopping() {
	case stopKilled:
		return
	case stopLeaseLost:
		if proc != nil {
			ctx, cancel := context.WithTimeout(w.hardCtx, w.cfg.ShutdownTimeout)
			_ = c.invoke("LeaseLost", func() error { proc.LeaseLost(ctx, LeaseLostInput{ShardID: c.shardID}); return nil })
			cancel()
		}
		return
	case stopHandoff, stopShutdown:
		c.state.Store(StateShuttingDown)
		cause := CauseWorkerShutdown
		if c.stopping() == stopHandoff {
			cause = CauseHandoff
		}
		if proc != nil {
			err := c.invoke("ShutdownRequested", func() error {
				return proc.ShutdownRequested(c.ctx, ShutdownRequestedInput{ShardID: c.shardID, Cause: cause, Checkpointer: c.ucp})
			})
			if err != nil {
				c.log.Warn("consumer: processor failed to shut down cleanly", "error", &ProcessorError{ShardID: c.shardID, Call: "ShutdownRequested", Err: err})
			}
		}
		if c.stopping() >= stopLeaseLost {
			return
		}
		c.release(cause.String())
	default:
		// Nothing asked the consumer to stop: it gave up on its own (no processor). Release
		// the lease so that another worker, or this one later, tries again.
		c.release("consumer stopped")
	}
}

// release evicts the lease so another worker can take it without waiting for it to expire.
func (c *shardConsumer) release(why string) {
	ctx, cancel := context.WithTimeout(c.w.hardCtx, c.w.cfg.RenewInterval)
	defer cancel()
	c.released.Store(true)
	if _, err := c.holder.Evict(ctx); err != nil {
		if !errors.Is(err, checkpoint.ErrLeaseLost) && !errors.Is(err, checkpoint.ErrLeaseNotFound) {
			c.log.Warn("consumer: releasing the lease failed; it will expire instead", "error", err)
		}
		return
	}
	c.w.stats.leasesReleased.Add(1)
	// Releases at shutdown and at a shard's end are routine; one for any other reason (a
	// handoff, a shutdown before SHARD_END) is worth an operator's eye.
	level := slog.LevelInfo
	switch why {
	case "worker shutdown", "consumer stopped", "SHARD_END", "already processed to SHARD_END":
		level = slog.LevelDebug
	}
	c.log.Log(context.Background(), level, "consumer: released lease", "reason", why, "checkpoint", c.cp.Checkpointed().String())
}

// shardEnd makes the processor checkpoint SHARD_END, records the children and releases the
// lease, after which the children may start.
func (c *shardConsumer) shardEnd(proc RecordProcessor, children []types.ChildShard) {
	w := c.w
	c.state.Store(StateShardEnding)
	for _, ch := range children {
		if id := deref(ch.ShardId); id != "" {
			c.children = append(c.children, id)
		}
	}
	slices.Sort(c.children)
	// Leases for the children right away, rather than at the next shard sync, so whoever
	// takes them finds them waiting on this shard.
	w.syncer.createChildLeases(c.ctx, children)
	c.cp.SetShardEnded()
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(500*time.Millisecond),
		backoff.WithMaxInterval(w.cfg.MaxProcessingBackoff),
		backoff.WithMaxElapsedTime(0))
	for {
		err := c.invoke("ShardEnded", func() error {
			return proc.ShardEnded(c.ctx, ShardEndedInput{ShardID: c.shardID, ChildShardIDs: slices.Clone(c.children), Checkpointer: c.ucp})
		})
		if c.cp.Checkpointed().IsShardEnd() {
			break
		}
		if err == nil {
			err = ErrShardEndNotCheckpointed
		} else {
			err = fmt.Errorf("%w: %w", ErrShardEndNotCheckpointed, err)
		}
		w.stats.shardEndNotCheckpointed.Add(1)
		w.m.shardEndNotCheckpointed.Add(1)
		d := bo.NextBackOff()
		c.log.Error("consumer: shard ended but the processor did not checkpoint at SHARD_END; its children cannot start, calling ShardEnded again",
			"error", &ProcessorError{ShardID: c.shardID, Call: "ShardEnded", Err: err}, "backoff", d)
		if sleepCtx(c.stopCtx, d) != nil {
			if c.stopping() >= stopLeaseLost {
				c.finish(proc)
				return
			}
			// A graceful stop: the next owner reads the shard to its end again.
			c.release("shutdown before SHARD_END was checkpointed")
			return
		}
	}
	if len(c.children) > 0 {
		ctx, cancel := context.WithTimeout(c.ctx, w.cfg.RenewInterval)
		if _, err := w.store.UpdateChildShards(ctx, c.shardID, c.children); err != nil {
			c.log.Warn("consumer: recording child shards failed", "error", err)
		}
		cancel()
	}
	c.log.Info("consumer: shard processed to SHARD_END", "children", c.children)
	w.stats.shardsEnded.Add(1)
	c.release("SHARD_END")
	w.shardFinished(c.shardID)
}

// waitForParents blocks until every parent shard of a shard that has not started yet is
// processed to SHARD_END, so that records of one partition key stay in order across a split
// or merge. A parent without a lease counts as finished once it has stayed absent for a
// failover time: its lease was deleted after its children started, or it was never leased
// (a start at LATEST skips closed shards), and the wait covers fleets creating the leases of
// a stream concurrently. It returns false when the consumer is asked to stop first.
func (c *shardConsumer) waitForParents() bool {
	parents := c.initial.ParentShardIDs
	cp := c.initial.Checkpoint
	if len(parents) == 0 || !(cp == checkpoint.TrimHorizon || cp == checkpoint.Latest || cp == checkpoint.AtTimestamp) {
		return true
	}
	absentSince := map[string]time.Time{}
	logged := false
	for {
		changed := c.w.viewChanged()
		pending, recheck := c.w.unfinishedParents(parents, absentSince, time.Now())
		if len(pending) == 0 {
			if logged {
				c.log.Debug("consumer: parent shards finished", "parents", parents)
			}
			return true
		}
		c.state.Store(StateWaitingOnParents)
		if !logged {
			c.log.Debug("consumer: waiting for parent shards to finish", "parents", pending)
			logged = true
		}
		var timeout <-chan time.Time
		var t *time.Timer
		if recheck > 0 {
			t = time.NewTimer(recheck)
			timeout = t.C
		}
		select {
		case <-changed:
		case <-timeout:
		case <-c.stopCtx.Done():
		}
		if t != nil {
			t.Stop()
		}
		if c.stopCtx.Err() != nil {
			return false
		}
	}
}

func (c *shardConsumer) countDecode(s *decodeStats) {
	w := c.w
	if s.corruptFrames > 0 {
		w.stats.corruptRecords.Add(int64(s.corruptFrames))
		w.m.corruptRecords.Add(int64(s.corruptFrames))
		c.log.Warn("consumer: records with a corrupt compression frame delivered as they are", "count", s.corruptFrames)
	}
	if s.corruptAggregates > 0 {
		w.stats.deaggregationErrors.Add(int64(s.corruptAggregates))
		w.m.deaggregationErrors.Add(int64(s.corruptAggregates))
		c.log.Warn("consumer: corrupt KPL aggregates delivered as they are", "count", s.corruptAggregates)
	}
	if s.outsideRange > 0 {
		w.stats.outsideRange.Add(int64(s.outsideRange))
		w.m.outsideRange.Add(int64(s.outsideRange))
	}
}

// shardMetrics are the handles of one shard's series.
type shardMetrics struct {
	records, bytes *metrics.Counter
	behind         *metrics.Gauge
	processing     *metrics.Distribution
}
