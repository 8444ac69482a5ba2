package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/compression"
)

// Producer writes user records to one Kinesis data stream. It is safe for concurrent use.
// See the package documentation for the pipeline and its guarantees.
type Producer struct {
	cfg    Config
	client Client
	log    *slog.Logger
	stream string // StreamName, or StreamARN without a name: the metrics' StreamName value
	base   time.Time

	callOpts  []func(*kinesis.Options)
	callCtx   context.Context // parent of every call; cancelled when Close gives up
	cancelAll context.CancelFunc

	room     *room
	epochMu  sync.Mutex
	epoch    atomic.Pointer[epoch]
	retired  []*epoch // retired epochs not yet seen drained, guarded by epochMu
	flushing atomic.Int32

	closed    atomic.Bool
	closing   chan struct{} // closed by Close: wakes puts waiting for room
	aborted   atomic.Bool   // Close's context ended: fail instead of retry
	abortErr  atomic.Pointer[error]
	closeOnce sync.Once

	// maxRecordSize is the stream's maximum record size (learnRecordSize); recordSizeKnown,
	// used by the refresher only, says it was learned.
	maxRecordSize   atomic.Int64
	recordSizeKnown bool
	// sizeAsked is closed once the first attempt to learn the limit has ended, however it
	// ended: a put of a record over 1 MiB waits for it (awaitRecordSize).
	sizeAsked     chan struct{}
	sizeAskedOnce sync.Once

	keys     *keyHashCache
	table    atomic.Pointer[table]
	unrouted *shard // holds records while no open shard is known for their hash key

	// Dispatcher state, guarded by mu. Lock order: a shard's mu, then mu; never a shard's mu
	// while holding mu.
	mu           sync.Mutex
	readyShards  []*shard
	readyCount   int
	readyBytes   int
	inflightReqs int
	rr           int
	readyWake    int64 // when the dispatcher will next look at the ready queues by itself
	// holdSince is when the dispatcher began holding back a request that rate limits kept
	// short (holdForTokens); zero while it holds none.
	holdSince   int64
	freeBatches []*batch

	// nextWake is when the dispatcher will next look by itself; MaxInt64: never, or not
	// known yet because it is looking now.
	nextWake atomic.Int64
	wakes    atomic.Int64 // dispatcher rounds, for tests that it sleeps while it has to
	wakeCh   chan struct{}
	batches  chan *batch
	stop     chan struct{}
	wg       sync.WaitGroup

	refreshReq chan struct{}
	parkMu     sync.Mutex
	parked     []*resendGroup        // groups waiting for a refresh, guarded by parkMu
	misrouted  atomic.Bool           // a result landed off its predicted shard: refresh soon
	routeErr   atomic.Pointer[error] // last ListShards failure, the cause of unroutable expiries

	bodies          bodyBufs
	madeAggs        bodyBufs // the memory senders make deferred aggregates in, lent per call
	freeKRecords    freeList[kRecord]
	freeAggregators freeList[aggregation.Aggregator]

	m     *streamMetrics
	stats counters
}

// sdkNoRetry turns the SDK's own retries off for one call. A package-level slice keeps the
// variadic argument from allocating.
var sdkNoRetry = []func(*kinesis.Options){func(o *kinesis.Options) { o.RetryMaxAttempts = 1 }}

// New returns a Producer for the stream named in cfg, writing through client. It starts the
// producer's goroutines and loads the shard map in the background; records put before the
// map is known wait for it (within their TTL). Call Close to stop it.
func New(client Client, cfg Config) (*Producer, error) {
	if client == nil {
		return nil, errors.New("producer: nil Client")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Producer{
		cfg:        cfg,
		client:     client,
		log:        cfg.Logger.With("stream", streamLabel(cfg)),
		stream:     streamLabel(cfg),
		base:       time.Now(),
		room:       newRoom(int64(cfg.MaxBufferedRecords), cfg.MaxBufferedBytes),
		keys:       sharedKeyHashes(),
		closing:    make(chan struct{}),
		sizeAsked:  make(chan struct{}),
		wakeCh:     make(chan struct{}, 1),
		batches:    make(chan *batch, cfg.MaxConcurrentRequests),
		stop:       make(chan struct{}),
		refreshReq: make(chan struct{}, 1),
	}
	if !cfg.SDKRetries {
		p.callOpts = sdkNoRetry
	}
	p.callCtx, p.cancelAll = context.WithCancel(context.Background())
	p.epoch.Store(newEpoch())
	p.maxRecordSize.Store(aggregation.MaxRecordSize)
	p.m = newStreamMetrics(cfg.Metrics, p.stream)
	p.unrouted = &shard{unrouted: true}
	p.table.Store(&table{})
	p.nextWake.Store(math.MaxInt64)
	p.readyWake = math.MaxInt64
	p.freeKRecords.make = func() *kRecord { return new(kRecord) }
	p.freeAggregators.make = func() *aggregation.Aggregator {
		// Without compression an aggregate's bytes are made only when it is sent (see
		// makeAggregates): a sealed aggregate that waits for its shard's limit holds no copy
		// of its records' data. Compression needs the bytes at once, to know the size.
		return &aggregation.Aggregator{MaxSize: cfg.AggregationMaxSize, UnwrapSingle: true, DeferData: cfg.Compression == compression.None}
	}

	p.wg.Add(2 + cfg.MaxConcurrentRequests)
	go p.dispatchLoop()
	go p.refreshLoop()
	for range cfg.MaxConcurrentRequests {
		go p.sendLoop()
	}
	p.requestRefresh()
	return p, nil
}

func streamLabel(cfg Config) string {
	if cfg.StreamName != "" {
		return cfg.StreamName
	}
	return cfg.StreamARN
}

// now is the producer's clock: monotonic nanoseconds since New.
func (p *Producer) now() int64 { return int64(time.Since(p.base)) }

// Put puts one record and waits for its result. The error is the result's Err, or the
// reason the record was not accepted (validation, ErrClosed, ctx). While it waits, the
// producer sends what it holds without waiting for Linger, as Flush does, so a Put takes
// about one PutRecords round trip rather than Linger. Put copies rec.Data, so the caller may
// reuse its buffer as soon as Put returns. When ctx ends after the record was accepted, Put
// returns ctx's error but the record stays in the pipeline and may still be written: its
// outcome is unknown to the caller, as with any timed-out write.
func (p *Producer) Put(ctx context.Context, rec Record) (Result, error) {
	w := syncPool.Get().(*syncWaiter)
	w.buf = append(w.buf[:0], rec.Data...)
	w.rec = rec
	if rec.Data != nil {
		w.rec.Data = w.buf
	}
	w.rec.Meta = w
	if err := p.PutAsync(ctx, &w.rec, syncDone); err != nil {
		w.rec = Record{}
		syncPool.Put(w)
		return Result{}, err
	}
	p.flushing.Add(1)
	defer p.flushing.Add(-1)
	p.signal()
	select {
	case res := <-w.ch:
		w.rec = Record{}
		syncPool.Put(w)
		return res, res.Err
	case <-ctx.Done():
		// The result will still arrive on w.ch; w, and the copy of the data the pipeline
		// still reads, are left to the garbage collector.
		return Result{}, fmt.Errorf("producer: gave up waiting for the result: %w", ctx.Err())
	}
}

type syncWaiter struct {
	rec Record
	buf []byte // the copy of the data
	ch  chan Result
}

var syncPool = sync.Pool{New: func() any { return &syncWaiter{ch: make(chan Result, 1)} }}

func syncDone(rec *Record, res Result) { rec.Meta.(*syncWaiter).ch <- res }

// PutAll puts records and waits for their results, which it returns in the same order: one
// Result per record, with Err set for a record that was not accepted (a *ValidationError,
// ErrClosed, ErrBufferFull never: it waits for room) as well as for one that failed. Like Put
// it sends without waiting for Linger while it waits, and it copies the records' data, so the
// caller may reuse recs and their buffers once it returns. When ctx ends first, the records
// without a result get ctx's error (wrapped); those already accepted may still be written.
func (p *Producer) PutAll(ctx context.Context, recs []Record) []Result {
	out := make([]Result, len(recs))
	if len(recs) == 0 {
		return out
	}
	size := 0
	for i := range recs {
		size += len(recs[i].Data)
	}
	b := &batchWaiter{res: make([]Result, len(recs)), left: len(recs), done: make(chan struct{})}
	own := make([]Record, len(recs))
	data := make([]byte, 0, size)
	for i := range recs {
		own[i] = Record{PartitionKey: recs[i].PartitionKey, ExplicitHashKey: recs[i].ExplicitHashKey, Meta: i}
		if recs[i].Data != nil {
			data = append(data, recs[i].Data...)
			own[i].Data = data[len(data)-len(recs[i].Data) : len(data) : len(data)]
		}
	}
	p.flushing.Add(1)
	defer p.flushing.Add(-1)
	for i := range own {
		if err := p.PutAsync(ctx, &own[i], b.callback); err != nil {
			b.callback(&own[i], Result{Err: err})
		}
	}
	p.signal()
	select {
	case <-b.done:
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gone = true
	for i := range out {
		if b.got(i) {
			out[i] = b.res[i]
		} else {
			out[i] = Result{Err: fmt.Errorf("producer: gave up waiting for the result: %w", ctx.Err())}
		}
	}
	return out
}

// batchWaiter collects PutAll's results.
type batchWaiter struct {
	mu   sync.Mutex
	res  []Result
	seen []bool
	left int
	gone bool // PutAll returned: later results are dropped
	done chan struct{}
}

func (b *batchWaiter) got(i int) bool { return b.seen != nil && b.seen[i] }

func (b *batchWaiter) callback(rec *Record, res Result) {
	i := rec.Meta.(int)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gone {
		return
	}
	if b.seen == nil {
		b.seen = make([]bool, len(b.res))
	}
	b.res[i], b.seen[i] = res, true
	if b.left--; b.left == 0 {
		close(b.done)
	}
}

// PutAsync accepts rec for sending and returns without waiting for the result, which goes
// to done (or Config.OnResult when done is nil) exactly once. It blocks while the buffer is
// full, until there is room or ctx ends. A non-nil error means the record was not accepted
// and done will not be called: a *ValidationError naming the field and limit, ErrClosed, or
// ctx's error (also when ctx is already done on entry: the record is then not written). ctx
// bounds only that wait; after acceptance the record's life is bounded by
// RecordTTL. See Record for who owns rec and its Data meanwhile.
func (p *Producer) PutAsync(ctx context.Context, rec *Record, done Callback) error {
	if err := ctx.Err(); err != nil {
		return err // a put whose context is over is not accepted, even with room to spare
	}
	if err := p.awaitRecordSize(ctx, rec); err != nil {
		return err
	}
	u, err := p.admit(rec, done)
	if err != nil {
		return err
	}
	if !p.room.tryAcquire(u.size) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if p.closed.Load() {
			return ErrClosed
		}
		if err := p.room.wait(ctx, u.size, p.closing); err != nil {
			return err
		}
	}
	return p.accept(&u)
}

// TryPutAsync is PutAsync without waiting: when the buffer is full it returns ErrBufferFull
// at once.
func (p *Producer) TryPutAsync(rec *Record, done Callback) error {
	u, err := p.admit(rec, done)
	if err != nil {
		return err
	}
	if !p.room.tryAcquire(u.size) {
		if p.closed.Load() {
			return ErrClosed
		}
		return ErrBufferFull
	}
	return p.accept(&u)
}

// admit validates a record and computes its hash key.
func (p *Producer) admit(rec *Record, done Callback) (pending, error) {
	if rec == nil {
		return pending{}, errors.New("producer: nil Record")
	}
	if err := aggregation.ValidatePartitionKey(rec.PartitionKey); err != nil {
		return pending{}, err
	}
	var hash aggregation.HashKey
	if rec.ExplicitHashKey == "" {
		hash = p.keys.hash(rec.PartitionKey)
	} else {
		var err error
		if hash, err = aggregation.EffectiveHashKey(rec.PartitionKey, rec.ExplicitHashKey); err != nil {
			return pending{}, err
		}
	}
	if p.cfg.Compression == compression.None {
		// Until the stream was asked for its limit, a record over 1 MiB that TryPutAsync
		// cannot wait for (PutAsync waits, awaitRecordSize) is taken up to the largest limit
		// a stream can have, and checked against the stream's own when it is encoded
		// (encode), which happens only after that question: a put made right after New is
		// not refused for a limit not yet known.
		if n := len(rec.Data) + len(rec.PartitionKey); n > aggregation.MaxRecordSize && n > p.admitLimit() {
			return pending{}, p.sizeError(n)
		}
	} else if len(rec.Data) > compression.MaxDecodedSize {
		return pending{}, &ValidationError{Field: "Data", Limit: fmt.Sprintf("at most %d bytes before compression", compression.MaxDecodedSize),
			Actual: fmt.Sprintf("%d bytes", len(rec.Data))}
	}
	return pending{rec: rec, done: done, data: rec.Data, hash: hash, size: int64(len(rec.Data) + len(rec.PartitionKey))}, nil
}

// maxRecord is the stream's maximum record size, data plus partition key.
func (p *Producer) maxRecord() int { return int(p.maxRecordSize.Load()) }

// admitLimit is the largest record a put accepts: the stream's maximum record size once the
// stream was asked (1 MiB when the answer did not come), the largest any stream takes before.
func (p *Producer) admitLimit() int {
	select {
	case <-p.sizeAsked:
		return p.maxRecord()
	default:
		return MaxStreamRecordSize
	}
}

// awaitRecordSize waits, for a record over 1 MiB, until the stream was asked for its
// maximum record size, so that the record is validated against the stream's limit when the
// put returns. It returns ctx's error if ctx ends first, and nil at once when the record is
// small, compressed (the limit applies after compression) or the question was answered.
func (p *Producer) awaitRecordSize(ctx context.Context, rec *Record) error {
	if rec == nil || p.cfg.Compression != compression.None || len(rec.Data)+len(rec.PartitionKey) <= aggregation.MaxRecordSize {
		return nil
	}
	select {
	case <-p.sizeAsked:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.closing:
		return nil // admit refuses or accepts it as it stands
	}
}

func (p *Producer) markSizeAsked() { p.sizeAskedOnce.Do(func() { close(p.sizeAsked) }) }

// sizeError reports a Kinesis record of n bytes over the stream's maximum record size.
func (p *Producer) sizeError(n int) error {
	return &ValidationError{Field: "Data",
		Limit:  fmt.Sprintf("data plus partition key of at most %d bytes (the stream's maximum record size)", p.maxRecord()),
		Actual: fmt.Sprintf("%d bytes", n)}
}

// learnRecordSize asks the stream for its maximum record size, once it answers.
func (p *Producer) learnRecordSize(ctx context.Context) {
	if p.recordSizeKnown {
		return
	}
	defer p.markSizeAsked()
	ds, ok := p.client.(StreamSummarizer)
	if !ok {
		p.recordSizeKnown = true
		return
	}
	in := &kinesis.DescribeStreamSummaryInput{}
	if p.cfg.StreamName != "" {
		in.StreamName = &p.cfg.StreamName
	}
	if p.cfg.StreamARN != "" {
		in.StreamARN = &p.cfg.StreamARN
	}
	out, err := ds.DescribeStreamSummary(ctx, in)
	if err != nil {
		p.log.Debug("DescribeStreamSummary failed; records stay limited to 1 MiB for now", "error", err)
		return
	}
	p.recordSizeKnown = true
	p.maxRecordSize.Store(int64(MaxRecordSizeOf(out)))
}

// accept enters an admitted record that holds room into the pipeline.
func (p *Producer) accept(u *pending) error {
	ep := p.epoch.Load()
	ep.n.Add(1)
	// Checked after counting, so that Close, which sets closed before it waits for the
	// buffer to empty, either sees this record or this put sees closed.
	if p.closed.Load() {
		ep.sub(1)
		p.room.release(1, u.size)
		return ErrClosed
	}
	u.ep = ep
	p.m.received.Add(1)
	p.route(u)
	return nil
}

// Flush sends every buffered record without waiting for Linger and returns when all records
// accepted before the call have their results, or ctx ends. Records put while it waits are
// sent promptly too but not waited for.
func (p *Producer) Flush(ctx context.Context) error {
	if p.closed.Load() {
		return ErrClosed
	}
	p.flushing.Add(1)
	defer p.flushing.Add(-1)
	eps := p.rotateEpoch()
	p.signal()
	for _, e := range eps {
		select {
		case <-e.done:
		case <-ctx.Done():
			return fmt.Errorf("producer: flush: %w", ctx.Err())
		}
	}
	return nil
}

// rotateEpoch starts a new epoch and returns the retired ones still outstanding.
func (p *Producer) rotateEpoch() []*epoch {
	p.epochMu.Lock()
	defer p.epochMu.Unlock()
	old := p.epoch.Swap(newEpoch())
	old.retire()
	kept := p.retired[:0]
	for _, e := range p.retired {
		if !e.isDone() {
			kept = append(kept, e)
		}
	}
	p.retired = append(kept, old)
	return append([]*epoch(nil), p.retired...)
}

// Close stops accepting records, sends everything buffered and returns when every accepted
// record has its result and the producer's goroutines have stopped. When ctx ends first,
// Close gives up: in-flight calls are cancelled and every record without a result gets one
// whose error matches ErrClosed and ctx's error; Close then returns ctx's error. Calls after
// the first return ErrClosed.
func (p *Producer) Close(ctx context.Context) error {
	first := false
	p.closeOnce.Do(func() { first = true })
	if !first {
		return ErrClosed
	}
	p.closed.Store(true)
	close(p.closing)
	p.signal()

	var err error
	if !p.waitDrained(ctx) {
		err = fmt.Errorf("producer: close: %w", ctx.Err())
		cause := ctx.Err()
		p.abortErr.Store(&cause)
		p.aborted.Store(true)
		p.cancelAll()
		p.signal()
		p.waitDrained(context.Background())
	}
	// Every record has its result, so no PutRecords call is in flight; cancelling the
	// calls' context ends a shard map refresh that might be, rather than waiting for it.
	p.cancelAll()
	close(p.stop)
	p.wg.Wait()
	return err
}

// waitDrained waits until no accepted record is without its result.
func (p *Producer) waitDrained(ctx context.Context) bool {
	for p.room.recs.Load() != 0 {
		select {
		case <-p.room.drained:
		case <-ctx.Done():
			return p.room.recs.Load() == 0
		}
	}
	return true
}

func (p *Producer) abortCause() error {
	if e := p.abortErr.Load(); e != nil {
		return *e
	}
	return nil
}

// signal wakes the dispatcher.
func (p *Producer) signal() {
	select {
	case p.wakeCh <- struct{}{}:
	default:
	}
}

// requestRefresh asks the refresher for a new shard map; requests coalesce.
func (p *Producer) requestRefresh() {
	select {
	case p.refreshReq <- struct{}{}:
	default:
	}
}
