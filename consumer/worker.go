package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/shardline/shardline/checkpoint"
)

// Worker consumes a Kinesis stream as one member of a fleet: workers of the same application
// share the stream's shards through leases in a lease table, each processing the shards it
// holds with a RecordProcessor. See the package documentation for the model.
type Worker struct {
	cfg    Config
	store  checkpoint.Store
	ddb    *checkpoint.DynamoDBStore // nil when Config.LeaseStore is used
	log    *slog.Logger
	m      *workerMetrics
	source atomic.Pointer[sourceBox]
	stats  counters

	taker   *leaseTaker
	renewer *leaseRenewer
	syncer  *shardSyncer

	started  atomic.Bool
	killOnce sync.Once
	killCh   chan struct{}

	// hardCtx ends when the worker is killed or Run has returned; every request the worker
	// makes runs under it.
	hardCtx    context.Context
	hardCancel context.CancelFunc

	mu        sync.Mutex
	consumers map[string]*shardConsumer
	view      map[string]checkpoint.Lease
	viewCh    chan struct{}
	// lastScan is the taker's last listing of this stream's leases and when it started;
	// the shard syncer uses it instead of a listing of its own while it is fresh.
	lastScan      []checkpoint.Lease
	lastScanStart time.Time
	finished      map[string]bool // shards this worker processed to SHARD_END
	fatal         error
	fatalCh       chan struct{}
	leaseTime     struct {
		last  time.Time
		hours float64
	}
	wg sync.WaitGroup
}

// New returns a worker for cfg. It makes no request; Run starts it.
func New(cfg Config) (*Worker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	w := &Worker{
		cfg:       cfg,
		log:       cfg.Logger.With("worker", cfg.WorkerID, "stream", cfg.StreamName),
		killCh:    make(chan struct{}),
		consumers: map[string]*shardConsumer{},
		view:      map[string]checkpoint.Lease{},
		viewCh:    make(chan struct{}),
		finished:  map[string]bool{},
		fatalCh:   make(chan struct{}),
	}
	w.store = cfg.LeaseStore
	if w.store == nil {
		w.ddb, err = checkpoint.NewDynamoDBStore(cfg.DynamoDB, checkpoint.DynamoDBConfig{
			TableName: cfg.LeaseTableName,
			Logger:    cfg.Logger,
			Metrics:   cfg.Metrics,
		})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		w.store = w.ddb
	}
	w.m = newWorkerMetrics(cfg.Metrics, cfg.StreamName, cfg.WorkerID)
	w.taker = newLeaseTaker(w)
	w.renewer = newLeaseRenewer(w)
	w.syncer = newShardSyncer(w)
	w.setSources(w.pollingSources())
	return w, nil
}

// WorkerID returns the worker's identifier in the lease table.
func (w *Worker) WorkerID() string { return w.cfg.WorkerID }

// Run processes the stream until ctx ends, then shuts down gracefully: it stops taking
// leases, asks every processor to shut down (each may checkpoint), and releases the leases
// so that other workers take them at once instead of after the failover time. The shutdown
// is bounded by Config.ShutdownTimeout. Run returns nil after a graceful shutdown,
// ErrKilled after Kill, an error matching ErrStreamNotFound when the stream disappears,
// ErrLeaseTableNotFound when the lease table does, or
// the error that kept it from starting (the lease table could not be created, for example).
// All goroutines the worker started have ended when Run returns. Run may be called once.
func (w *Worker) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return ErrAlreadyStarted
	}
	w.hardCtx, w.hardCancel = context.WithCancel(context.WithoutCancel(ctx))
	// Deferred calls run last first: cancel everything, then wait for the goroutines.
	defer w.wg.Wait()
	defer w.hardCancel()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		select {
		case <-w.killCh:
			w.stopAll(stopKilled)
			w.hardCancel()
		case <-w.hardCtx.Done():
		}
	}()

	// runCtx ends with ctx or Kill.
	runCtx, runCancel := context.WithCancel(ctx)
	defer runCancel()
	stopRun := context.AfterFunc(w.hardCtx, runCancel)
	defer stopRun()

	if err := w.start(runCtx); err != nil {
		if w.killed() {
			return ErrKilled
		}
		if ctx.Err() != nil && !errors.Is(err, ErrStreamNotFound) {
			return nil
		}
		return err
	}
	w.log.Info("consumer: worker started", "retrieval", w.sources().mode().String(), "failover", w.cfg.FailoverTime)

	takeCtx, takeCancel := context.WithCancel(runCtx)
	defer takeCancel()
	var loops sync.WaitGroup
	loops.Add(2)
	go func() { defer loops.Done(); w.taker.run(takeCtx) }()
	go func() { defer loops.Done(); w.syncer.run(takeCtx) }()
	renewCtx, renewCancel := context.WithCancel(w.hardCtx)
	defer renewCancel()
	renewDone := make(chan struct{})
	go func() { defer close(renewDone); w.renewer.run(renewCtx) }()

	var runErr error
	select {
	case <-runCtx.Done():
	case <-w.fatalCh:
		w.mu.Lock()
		runErr = w.fatal
		w.mu.Unlock()
	}
	takeCancel()
	loops.Wait()
	if !w.killed() {
		w.taker.releasePending(w.hardCtx)
	}
	if w.killed() {
		w.stopAll(stopKilled)
		w.waitConsumers(context.Background())
		renewCancel()
		<-renewDone
		w.log.Info("consumer: worker killed")
		return ErrKilled
	}

	// Graceful shutdown: processors checkpoint, then leases are released. Renewals go on
	// meanwhile, so the leases stay this worker's until it lets go of them.
	w.log.Info("consumer: shutting down", "leases", len(w.heldKeys()))
	w.stopAll(stopShutdown)
	sctx, scancel := context.WithTimeout(w.hardCtx, w.cfg.ShutdownTimeout)
	if !w.waitConsumers(sctx) {
		w.log.Warn("consumer: shutdown timed out; abandoning the remaining shards", "timeout", w.cfg.ShutdownTimeout)
		w.stopAll(stopKilled)
		w.waitConsumers(context.Background())
	}
	scancel()
	renewCancel()
	<-renewDone
	w.log.Info("consumer: worker stopped")
	return runErr
}

// start creates the lease table when needed and runs the first shard sync, retrying
// failures other than a missing stream until ctx ends.
func (w *Worker) start(ctx context.Context) error {
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(500*time.Millisecond),
		backoff.WithMaxInterval(30*time.Second),
		backoff.WithMaxElapsedTime(0))
	for {
		err := w.store.EnsureTable(ctx)
		if err == nil {
			err = w.syncer.sync(ctx)
		}
		if err == nil {
			if w.cfg.Retrieval == FanOut {
				return w.setupFanOut(ctx)
			}
			return nil
		}
		if errors.Is(err, ErrStreamNotFound) || errors.Is(err, checkpoint.ErrTableSchema) || ctx.Err() != nil {
			return err
		}
		d := bo.NextBackOff()
		w.log.Warn("consumer: starting failed, retrying", "error", err, "retry_in", d)
		if sleepCtx(ctx, d) != nil {
			return err
		}
	}
}

// Kill stops the worker at once, as a crash would: no processor is told, nothing is
// checkpointed and no lease is released, so other workers take the leases only after they
// expire. Calls in progress get a cancelled context. Run returns ErrKilled. Kill is for tests
// of failover; a service stops a worker by ending Run's context.
func (w *Worker) Kill() {
	w.killOnce.Do(func() { close(w.killCh) })
}

func (w *Worker) killed() bool {
	select {
	case <-w.killCh:
		return true
	default:
		return false
	}
}

// reportFatal makes Run shut down and return err.
func (w *Worker) reportFatal(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fatal != nil {
		return
	}
	w.fatal = err
	w.log.Error("consumer: stopping the worker", "error", err)
	close(w.fatalCh)
}

// checkTableGone stops the worker with ErrLeaseTableNotFound when err says the lease table
// does not exist, and reports whether it did. Without the table no lease can be renewed or
// taken, so carrying on would only log warnings while the shards go unprocessed.
func (w *Worker) checkTableGone(err error) bool {
	if !errors.Is(err, checkpoint.ErrTableNotFound) {
		return false
	}
	w.reportFatal(fmt.Errorf("%w: %s: %w", ErrLeaseTableNotFound, w.cfg.LeaseTableName, err))
	return true
}

// startShard begins processing a lease this worker just took.
func (w *Worker) startShard(l checkpoint.Lease, takenAt time.Time) {
	holder, err := checkpoint.NewLeaseHolder(w.store, l)
	if err != nil {
		w.log.Error("consumer: cannot hold lease", "lease", l.Key, "error", err)
		return
	}
	c := newShardConsumer(w, l, holder, takenAt)
	w.mu.Lock()
	if _, dup := w.consumers[l.Key]; dup || w.hardCtx.Err() != nil {
		w.mu.Unlock()
		return
	}
	w.consumers[l.Key] = c
	n := len(w.consumers)
	w.mu.Unlock()
	w.stats.leasesTaken.Add(1)
	w.m.leasesTaken.Add(1)
	w.m.leasesHeld.Set(float64(n))
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		c.run()
	}()
}

// shardDone forgets a consumer that ended.
func (w *Worker) shardDone(c *shardConsumer) {
	w.mu.Lock()
	if w.consumers[c.shardID] == c {
		delete(w.consumers, c.shardID)
	}
	n := len(w.consumers)
	w.mu.Unlock()
	w.m.leasesHeld.Set(float64(n))
	w.m.dropShard(c.shardID)
}

// shardFinished notes that this worker processed a shard to SHARD_END, wakes children
// waiting on it and asks for a shard sync.
func (w *Worker) shardFinished(shardID string) {
	w.mu.Lock()
	w.finished[shardID] = true
	if l, ok := w.view[shardID]; ok {
		l.Checkpoint = checkpoint.ShardEnd
		w.view[shardID] = l
	}
	close(w.viewCh)
	w.viewCh = make(chan struct{})
	w.mu.Unlock()
	w.syncer.requestSync()
}

// noteScan keeps the taker's listing for the shard syncer.
func (w *Worker) noteScan(leases []checkpoint.Lease, started time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastScan, w.lastScanStart = leases, started
}

// recentScan returns a copy of the taker's last listing when it started after since and no
// longer than TakeInterval ago, so a shard sync needs no Scan of its own: the listing is as
// fresh as the one the taker acts on, and one that began before the syncer's own last writes
// is never used.
func (w *Worker) recentScan(since time.Time) ([]checkpoint.Lease, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lastScan == nil || !w.lastScanStart.After(since) || time.Since(w.lastScanStart) > w.cfg.TakeInterval {
		return nil, false
	}
	return slices.Clone(w.lastScan), true
}

// publishView replaces the worker's view of the lease table after a scan.
func (w *Worker) publishView(leases []observedLease) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.view = make(map[string]checkpoint.Lease, len(leases))
	for _, ol := range leases {
		w.view[ol.lease.Key] = ol.lease
	}
	close(w.viewCh)
	w.viewCh = make(chan struct{})
}

// viewChanged returns a channel closed at the next change of the view.
func (w *Worker) viewChanged() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.viewCh
}

// unfinishedParents returns the parents that are not finished yet and, when some are only
// absent, how long until the absence counts as finished.
func (w *Worker) unfinishedParents(parents []string, absentSince map[string]time.Time, now time.Time) ([]string, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var pending []string
	var recheck time.Duration
	for _, p := range parents {
		if w.finished[p] {
			continue
		}
		l, ok := w.view[p]
		if ok {
			delete(absentSince, p)
			if !l.Checkpoint.IsShardEnd() {
				pending = append(pending, p)
			}
			continue
		}
		since, seen := absentSince[p]
		if !seen {
			absentSince[p] = now
			since = now
		}
		if left := w.cfg.FailoverTime - now.Sub(since); left > 0 {
			pending = append(pending, p)
			if recheck == 0 || left < recheck {
				recheck = left
			}
		}
	}
	return pending, recheck
}

func (w *Worker) holds(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.consumers[key]
	return ok
}

func (w *Worker) heldKeys() map[string]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]bool, len(w.consumers))
	for k := range w.consumers {
		out[k] = true
	}
	return out
}

func (w *Worker) heldConsumers() []*shardConsumer {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*shardConsumer, 0, len(w.consumers))
	for _, c := range w.consumers {
		out = append(out, c)
	}
	return out
}

func (w *Worker) stopAll(r stopReason) {
	for _, c := range w.heldConsumers() {
		c.requestStop(r)
	}
}

// waitConsumers waits until every shard consumer ended, or ctx ends (false).
func (w *Worker) waitConsumers(ctx context.Context) bool {
	for {
		cs := w.heldConsumers()
		if len(cs) == 0 {
			return true
		}
		select {
		case <-cs[0].done:
		case <-ctx.Done():
			return false
		}
	}
}

// accountLeaseTime integrates the number of leases held over time, for the lease-table
// requests per shard-hour.
func (w *Worker) accountLeaseTime(now time.Time) {
	n := len(w.heldKeys())
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.leaseTime.last.IsZero() {
		w.leaseTime.hours += float64(n) * now.Sub(w.leaseTime.last).Hours()
	}
	w.leaseTime.last = now
	if w.ddb != nil && w.leaseTime.hours > 0 {
		w.m.requestsPerShardHour.Set(float64(totalRequests(w.ddb.Stats())) / w.leaseTime.hours)
	}
}

func totalRequests(s checkpoint.DynamoDBStats) int64 {
	var n int64
	for _, v := range s.Requests {
		n += v
	}
	return n
}
