package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardline/shardline/checkpoint"
)

// StreamConfig is one stream of a multi-stream application: the KCL's StreamConfig.
type StreamConfig struct {
	// StreamName or StreamARN names the stream; an ARN also serves streams of other accounts.
	StreamName string
	StreamARN  string // see StreamName
	// Identifier is the KCL's serialized StreamIdentifier, "account:stream:creationEpoch",
	// which prefixes the stream's lease keys. Default: built from DescribeStreamSummary (the
	// account of the stream's ARN and its creation time in seconds), which is what a KCL
	// application built from the stream's ARN and creation time uses too.
	Identifier string
	// InitialPosition and InitialTimestamp are where the stream's shards without a
	// checkpoint start, as Config's. Default: Latest.
	InitialPosition  InitialPosition
	InitialTimestamp time.Time
}

// StreamListFunc returns the streams a multi-stream worker consumes. It is called at start
// and every StreamListInterval, as the KCL calls MultiStreamTracker.streamConfigList, so the
// list may change while the application runs.
type StreamListFunc func(ctx context.Context) ([]StreamConfig, error)

// DefaultStreamListInterval is how often a multi-stream worker reads its stream list, the
// KCL's interval between stream checks.
const DefaultStreamListInterval = time.Minute

// MultiStreamConfig configures a MultiStreamWorker.
type MultiStreamConfig struct {
	// Config holds what every stream shares: ApplicationName (and so the one lease table),
	// WorkerID, the clients, the lease timings and the retrieval. Its StreamName, StreamARN,
	// InitialPosition and InitialTimestamp must be left zero: StreamConfig has them per stream.
	// Processor serves every stream unless ProcessorFor is set.
	Config
	// Streams lists the streams to consume. Required.
	Streams StreamListFunc
	// ProcessorFor, when set, returns the processor factory of one stream.
	ProcessorFor func(StreamConfig) ProcessorFactory
	// StreamListInterval is the time between calls of Streams. Default:
	// DefaultStreamListInterval.
	StreamListInterval time.Duration
	// FormerStreamLeaseDeletionDelay decides what becomes of a stream that leaves the list.
	// Zero (the default) is the KCL's NoLeaseDeletionStrategy: its leases stay, and the
	// worker goes on processing them as the KCL processes such "orphaned" streams, new
	// shards starting at LATEST. A positive delay is the KCL's
	// AutoDetectionAndDeferredDeletionStrategy: once the stream has been absent from the list
	// for the delay, the worker stops processing it and deletes its leases, unless it came
	// back meanwhile. Every worker of the fleet should use the same setting, as in the KCL.
	FormerStreamLeaseDeletionDelay time.Duration
}

// MultiStreamWorker consumes several streams with one lease table, as a KCL 3.x multi-stream
// application does (see the package documentation): each stream's leases are keyed
// "account:stream:creationEpoch:shardId", so a KCL multi-stream application's table carries
// over in either direction. Within it each stream runs as a Worker of its own over that
// stream's leases, sharing the table, the clients and the worker ID.
type MultiStreamWorker struct {
	cfg   MultiStreamConfig
	store checkpoint.Store
	log   *slog.Logger

	started  atomic.Bool
	killOnce sync.Once
	killCh   chan struct{}

	ended chan struct{} // a unit's Run returned

	mu    sync.Mutex
	units map[string]*streamUnit // by stream identifier
	ids   map[string]string      // stream name or ARN -> identifier, once resolved
}

// streamUnit is one stream's Worker inside a MultiStreamWorker.
type streamUnit struct {
	id      string
	sc      StreamConfig
	orphan  bool // in the lease table but not in the list
	w       *Worker
	cancel  context.CancelFunc
	done    chan struct{}
	err     error
	absent  time.Time // when the stream was first missing from the list; zero while listed
	stopped bool      // stopped on purpose (removed from the list)
}

// describeAPI is the Kinesis call a multi-stream worker needs besides KinesisAPI, to learn a
// stream's identifier; *kinesis.Client has it.
type describeAPI interface {
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

// streamIdentifierPattern is the KCL's StreamIdentifier pattern for a serialized multi-stream
// identifier.
var streamIdentifierPattern = regexp.MustCompile(`^([0-9]+):([^:]+):([0-9]+)$`)

// NewMultiStream returns a multi-stream worker for cfg. It makes no request; Run starts it.
func NewMultiStream(cfg MultiStreamConfig) (*MultiStreamWorker, error) {
	switch {
	case cfg.Streams == nil:
		return nil, fmt.Errorf("%w: Streams is required", ErrInvalidConfig)
	case cfg.StreamName != "" || cfg.StreamARN != "":
		return nil, fmt.Errorf("%w: StreamName and StreamARN go in each StreamConfig of a multi-stream worker", ErrInvalidConfig)
	case cfg.InitialPosition != Latest || !cfg.InitialTimestamp.IsZero():
		return nil, fmt.Errorf("%w: InitialPosition and InitialTimestamp go in each StreamConfig of a multi-stream worker", ErrInvalidConfig)
	case cfg.FormerStreamLeaseDeletionDelay < 0:
		return nil, fmt.Errorf("%w: negative FormerStreamLeaseDeletionDelay", ErrInvalidConfig)
	case cfg.Processor == nil && cfg.ProcessorFor == nil:
		return nil, fmt.Errorf("%w: Processor or ProcessorFor is required", ErrInvalidConfig)
	}
	// Check the shared settings once, with a placeholder stream.
	probe := cfg.Config
	probe.StreamName = "multi-stream"
	if probe.Processor == nil {
		probe.Processor = ProcessorFactoryFunc(func(string) RecordProcessor { return nil })
	}
	checked, err := probe.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg.WorkerID, cfg.LeaseTableName, cfg.Logger = checked.WorkerID, checked.LeaseTableName, checked.Logger
	if cfg.StreamListInterval <= 0 {
		cfg.StreamListInterval = DefaultStreamListInterval
	}
	m := &MultiStreamWorker{
		cfg:    cfg,
		log:    cfg.Logger.With("worker", cfg.WorkerID),
		killCh: make(chan struct{}),
		ended:  make(chan struct{}, 1),
		units:  map[string]*streamUnit{},
		ids:    map[string]string{},
	}
	m.store = cfg.LeaseStore
	if m.store == nil {
		m.store, err = checkpoint.NewDynamoDBStore(cfg.DynamoDB, checkpoint.DynamoDBConfig{TableName: cfg.LeaseTableName, Logger: cfg.Logger, Metrics: cfg.Metrics})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	return m, nil
}

// WorkerID returns the worker's identifier in the lease table, the same for every stream.
func (m *MultiStreamWorker) WorkerID() string { return m.cfg.WorkerID }

// Kill stops every stream at once, as a crash would (see Worker.Kill). Run returns ErrKilled.
func (m *MultiStreamWorker) Kill() { m.killOnce.Do(func() { close(m.killCh) }) }

// Stats returns each running stream's Stats, by stream identifier.
func (m *MultiStreamWorker) Stats() map[string]Stats {
	m.mu.Lock()
	units := make([]*streamUnit, 0, len(m.units))
	for _, u := range m.units {
		units = append(units, u)
	}
	m.mu.Unlock()
	out := make(map[string]Stats, len(units))
	for _, u := range units {
		out[u.id] = u.w.Stats()
	}
	return out
}

// Run consumes the listed streams until ctx ends, then shuts every stream down gracefully,
// as Worker.Run does. It reads the stream list at start and every StreamListInterval, starts
// a stream that appears (and, at start, every stream the lease table has leases of, as the KCL
// picks up orphaned streams), and handles a stream that leaves the list by
// FormerStreamLeaseDeletionDelay. A stream deleted from Kinesis stops; when it is no longer
// listed its leases are deleted, as the KCL deletes the leases of deleted streams. Run
// returns nil after a graceful shutdown, ErrKilled after Kill, an error matching
// ErrLeaseTableNotFound when the table disappears, or the error that kept it from starting.
func (m *MultiStreamWorker) Run(ctx context.Context) error {
	if !m.started.CompareAndSwap(false, true) {
		return ErrAlreadyStarted
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-m.killCh:
			cancel()
		case <-runCtx.Done():
		}
	}()
	if err := m.store.EnsureTable(runCtx); err != nil {
		m.stopAll()
		if m.killed() {
			return ErrKilled
		}
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	firstList := true
	t := time.NewTimer(0)
	defer t.Stop()
	var fatal error
	for fatal == nil {
		select {
		case <-runCtx.Done():
		case <-t.C:
			fatal = m.sync(runCtx, firstList)
			if fatal == nil {
				firstList = false
				t.Reset(min(m.cfg.StreamListInterval, m.nextDeletion()))
			}
			continue
		case <-m.ended:
			fatal = m.reap(runCtx)
			continue
		}
		break
	}
	m.stopAll()
	switch {
	case m.killed():
		return ErrKilled
	case fatal != nil:
		return fatal
	}
	return nil
}

func (m *MultiStreamWorker) killed() bool {
	select {
	case <-m.killCh:
		return true
	default:
		return false
	}
}

// nextDeletion is the time until the earliest removed stream is due for deletion.
func (m *MultiStreamWorker) nextDeletion() time.Duration {
	d := m.cfg.StreamListInterval
	if m.cfg.FormerStreamLeaseDeletionDelay == 0 {
		return d
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range m.units {
		if !u.absent.IsZero() {
			d = min(d, max(time.Until(u.absent.Add(m.cfg.FormerStreamLeaseDeletionDelay)), 10*time.Millisecond))
		}
	}
	return d
}

// sync reads the stream list and starts, keeps or retires streams accordingly.
func (m *MultiStreamWorker) sync(ctx context.Context, first bool) error {
	lctx, cancel := context.WithTimeout(ctx, m.cfg.kinesisTimeout())
	list, err := m.cfg.Streams(lctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("consumer: reading the stream list failed; keeping the current streams", "error", err)
		}
		return nil
	}
	listed := map[string]StreamConfig{}
	for _, sc := range list {
		id, err := m.identify(ctx, sc)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("consumer: cannot identify a listed stream; skipping it for now", "stream", sc.StreamName+sc.StreamARN, "error", err)
			}
			continue
		}
		listed[id] = sc
	}
	if first {
		// The KCL's syncStreamsFromLeaseTableOnAppInit: streams with leases but not in the
		// list are orphans, processed with new shards at LATEST.
		leases, err := m.store.ListLeases(ctx)
		if err != nil {
			if errors.Is(err, checkpoint.ErrTableNotFound) {
				return fmt.Errorf("%w: %s: %w", ErrLeaseTableNotFound, m.cfg.LeaseTableName, err)
			}
			m.log.Warn("consumer: listing leases for orphaned streams failed", "error", err)
		}
		for _, l := range leases {
			id := l.StreamIdentifier
			if g := streamIdentifierPattern.FindStringSubmatch(id); g != nil {
				if _, ok := listed[id]; !ok && m.unit(id) == nil {
					m.start(id, StreamConfig{StreamName: g[2], Identifier: id}, true)
				}
			}
		}
	}
	now := time.Now()
	for id, sc := range listed {
		u := m.unit(id)
		switch {
		case u == nil:
			m.start(id, sc, false)
		case !u.absent.IsZero():
			m.log.Info("consumer: stream is listed again", "stream_id", id)
			m.mu.Lock()
			u.absent = time.Time{}
			m.mu.Unlock()
		}
	}
	delay := m.cfg.FormerStreamLeaseDeletionDelay
	m.mu.Lock()
	var due []*streamUnit
	for id, u := range m.units {
		if _, ok := listed[id]; ok {
			continue
		}
		if u.absent.IsZero() {
			u.absent = now
			if delay > 0 {
				m.log.Info("consumer: stream left the list; its leases are deleted if it stays away", "stream_id", id, "delay", delay)
			} else {
				m.log.Info("consumer: stream left the list; its leases stay and are still processed", "stream_id", id)
			}
		}
		if delay > 0 && now.Sub(u.absent) >= delay {
			due = append(due, u)
		}
	}
	m.mu.Unlock()
	for _, u := range due {
		m.retire(ctx, u, "left the stream list")
	}
	return nil
}

// reap handles units whose Run returned on its own.
func (m *MultiStreamWorker) reap(ctx context.Context) error {
	m.mu.Lock()
	var ended []*streamUnit
	for _, u := range m.units {
		select {
		case <-u.done:
			ended = append(ended, u)
		default:
		}
	}
	m.mu.Unlock()
	for _, u := range ended {
		switch {
		case errors.Is(u.err, ErrLeaseTableNotFound), errors.Is(u.err, checkpoint.ErrTableSchema):
			return u.err
		case errors.Is(u.err, ErrStreamNotFound) && !u.absent.IsZero():
			// A deleted stream that is no longer listed: its leases go, as the KCL's
			// DeletedStreamListProvider has them deleted.
			m.deleteLeases(ctx, u.id)
			m.forget(u)
		default:
			// Listed, but gone or failing: try again at the next listing.
			m.log.Warn("consumer: a stream stopped; it is started again at the next stream listing", "stream_id", u.id, "error", u.err)
			m.forget(u)
		}
	}
	return nil
}

func (m *MultiStreamWorker) unit(id string) *streamUnit {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.units[id]
}

func (m *MultiStreamWorker) forget(u *streamUnit) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.units[u.id] == u {
		delete(m.units, u.id)
	}
}

// identify returns a stream's identifier, asking Kinesis once per stream when the
// configuration does not give it.
func (m *MultiStreamWorker) identify(ctx context.Context, sc StreamConfig) (string, error) {
	if sc.Identifier != "" {
		if !streamIdentifierPattern.MatchString(sc.Identifier) {
			return "", fmt.Errorf("%w: StreamConfig.Identifier %q is not account:stream:creationEpoch", ErrInvalidConfig, sc.Identifier)
		}
		return sc.Identifier, nil
	}
	ref := streamRef{name: sc.StreamName, arn: sc.StreamARN}
	key := ref.String()
	if key == "" {
		return "", fmt.Errorf("%w: a StreamConfig needs StreamName or StreamARN", ErrInvalidConfig)
	}
	m.mu.Lock()
	id, ok := m.ids[key]
	m.mu.Unlock()
	if ok {
		return id, nil
	}
	describe, ok := m.cfg.Kinesis.(describeAPI)
	if !ok {
		return "", fmt.Errorf("%w: StreamConfig %s needs an Identifier: the Kinesis client has no DescribeStreamSummary", ErrInvalidConfig, key)
	}
	in := &kinesis.DescribeStreamSummaryInput{}
	in.StreamName, in.StreamARN = ref.input()
	dctx, cancel := context.WithTimeout(ctx, m.cfg.kinesisTimeout())
	out, err := describe.DescribeStreamSummary(dctx, in)
	cancel()
	if err != nil {
		return "", classifyKinesisError(err)
	}
	d := out.StreamDescriptionSummary
	if d == nil || d.StreamARN == nil || d.StreamCreationTimestamp == nil {
		return "", fmt.Errorf("consumer: DescribeStreamSummary %s: no ARN or creation time in the answer", key)
	}
	parts := strings.SplitN(aws.ToString(d.StreamARN), ":", 6)
	if len(parts) != 6 {
		return "", fmt.Errorf("consumer: DescribeStreamSummary %s: malformed ARN %q", key, aws.ToString(d.StreamARN))
	}
	id = parts[4] + ":" + aws.ToString(d.StreamName) + ":" + strconv.FormatInt(d.StreamCreationTimestamp.Unix(), 10)
	m.mu.Lock()
	m.ids[key] = id
	m.mu.Unlock()
	return id, nil
}

// start runs a Worker for one stream.
func (m *MultiStreamWorker) start(id string, sc StreamConfig, orphan bool) {
	cfg := m.cfg.Config
	cfg.StreamName, cfg.StreamARN = sc.StreamName, sc.StreamARN
	if cfg.StreamName == "" && cfg.StreamARN == "" {
		g := streamIdentifierPattern.FindStringSubmatch(id)
		cfg.StreamName = g[2]
	}
	cfg.InitialPosition, cfg.InitialTimestamp = sc.InitialPosition, sc.InitialTimestamp
	if orphan {
		// The KCL's orphanedStreamInitialPositionInStream default.
		cfg.InitialPosition, cfg.InitialTimestamp = Latest, time.Time{}
	}
	if m.cfg.ProcessorFor != nil {
		cfg.Processor = m.cfg.ProcessorFor(sc)
	}
	cfg.LeaseStore = newScopedStore(m.store, id)
	cfg.DynamoDB = nil
	cfg.Logger = m.cfg.Logger.With("stream_id", id)
	w, err := New(cfg)
	if err != nil {
		m.log.Error("consumer: cannot start a stream", "stream_id", id, "error", err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	u := &streamUnit{id: id, sc: sc, orphan: orphan, w: w, cancel: cancel, done: make(chan struct{})}
	if orphan {
		u.absent = time.Now()
	}
	m.mu.Lock()
	m.units[id] = u
	m.mu.Unlock()
	m.log.Info("consumer: consuming stream", "stream_id", id, "orphan", orphan, "initial_position", cfg.InitialPosition.String())
	go func() {
		u.err = w.Run(ctx)
		close(u.done)
		select {
		case m.ended <- struct{}{}:
		default:
		}
	}()
}

// retire stops a stream that left the list and deletes its leases.
func (m *MultiStreamWorker) retire(ctx context.Context, u *streamUnit, why string) {
	m.log.Info("consumer: retiring stream", "stream_id", u.id, "reason", why)
	u.stopped = true
	u.cancel()
	<-u.done
	m.forget(u)
	m.deleteLeases(ctx, u.id)
}

// deleteLeases deletes every lease of one stream, as the KCL's Scheduler deletes the
// leases of former or deleted streams (deleteMultiStreamLeases).
func (m *MultiStreamWorker) deleteLeases(ctx context.Context, id string) {
	s := newScopedStore(m.store, id)
	leases, err := s.ListLeases(ctx)
	if err != nil {
		m.log.Warn("consumer: listing a former stream's leases failed; retried at the next listing", "stream_id", id, "error", err)
		return
	}
	n := 0
	for _, l := range leases {
		dctx, cancel := context.WithTimeout(ctx, m.cfg.kinesisTimeout())
		err := s.DeleteLease(dctx, l)
		cancel()
		if err == nil || errors.Is(err, checkpoint.ErrLeaseNotFound) {
			n++
		} else {
			m.log.Warn("consumer: deleting a former stream's lease failed", "lease", l.Key, "stream_id", id, "error", err)
		}
	}
	m.log.Info("consumer: deleted the leases of a former stream", "stream_id", id, "leases", n)
}

// stopAll stops every stream: gracefully, or at once after Kill.
func (m *MultiStreamWorker) stopAll() {
	m.mu.Lock()
	units := make([]*streamUnit, 0, len(m.units))
	for _, u := range m.units {
		units = append(units, u)
	}
	m.mu.Unlock()
	for _, u := range units {
		if m.killed() {
			u.w.Kill()
		}
		u.cancel()
	}
	for _, u := range units {
		<-u.done
	}
}

// kinesisTimeout bounds one control request of the multi-stream worker.
func (c MultiStreamConfig) kinesisTimeout() time.Duration {
	return max(10*time.Second, c.FailoverTime)
}
