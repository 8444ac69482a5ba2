package agent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/compression"
	"github.com/shardline/shardline/producer"
)

// ProducerConfig returns the producer configuration for one stream: base with StreamName set
// and the buffer settings of the flows that write to the stream mapped onto it, as the
// package documentation describes. Flows of other streams are ignored. When several flows
// share the stream, the smallest value of each setting wins: the tightest latency and
// request size that any of them asks for.
func ProducerConfig(base producer.Config, stream string, flows []Flow) producer.Config {
	c := base
	c.StreamName = stream
	c.StreamARN = ""
	var age time.Duration
	var recs, bytes int
	for i := range flows {
		f := flows[i]
		if f.KinesisStream != stream {
			continue
		}
		f.applyDefaults()
		if age == 0 || f.MaxBufferAge < age {
			age = f.MaxBufferAge
		}
		if recs == 0 || f.MaxBufferSizeRecords < recs {
			recs = f.MaxBufferSizeRecords
		}
		if bytes == 0 || f.MaxBufferSizeBytes < bytes {
			bytes = f.MaxBufferSizeBytes
		}
	}
	if age > 0 {
		c.Linger = age
	}
	if recs > 0 {
		c.MaxBatchRecords = min(recs, producer.MaxBatchRecords)
	}
	if bytes > 0 {
		c.MaxBatchBytes = min(bytes, producer.MaxBatchBytes)
	}
	// A record may wait up to Linger by design before its first attempt, so the producer's
	// patience for delivering it starts after that; otherwise a maxBufferAgeMillis longer
	// than the TTL would expire every record of a quiet file before it was ever sent.
	ttl := c.RecordTTL
	if ttl <= 0 {
		ttl = producer.DefaultRecordTTL
	}
	if c.Linger > 0 {
		ttl += c.Linger
	}
	c.RecordTTL = ttl
	return c
}

// recordProducer is what ProducerSink needs of a *producer.Producer; tests substitute fakes
// to look at the sink alone.
type recordProducer interface {
	PutAsync(ctx context.Context, rec *producer.Record, done producer.Callback) error
	TryPutAsync(rec *producer.Record, done producer.Callback) error
	Flush(ctx context.Context) error
	Close(ctx context.Context) error
	Stats() producer.Stats
}

// ProducerSink is the Sink that writes records to Kinesis through the producer package: one
// producer per stream, so each stream gets its own shard map, aggregation and rate limits,
// and every producer shares one client. Create it with NewProducerSink, call Update with the
// new configuration before Agent.Reload, and Close it after Agent.Run returns.
//
// Send blocks while the stream's producer buffer is full (producer.Config.MaxBufferedRecords
// and MaxBufferedBytes), which pauses reading; together with the agent's in-flight bounds this
// keeps memory bounded while the stream throttles or cannot be reached. A producer result
// becomes the record's Ack: success acknowledges it, and any failure (the record expired after
// its RecordTTL, the service refused it, the producer was closed) hands it back to the agent,
// which sends it again after its backoff.
type ProducerSink struct {
	base        producer.Config
	newProducer func(producer.Config) (recordProducer, error)
	// maxRecordSize asks a stream for its maximum record size; nil when the client cannot
	// (producer.StreamSummarizer), and then records stay within 1 MiB.
	maxRecordSize func(ctx context.Context, stream string) (int, error)

	mu      sync.RWMutex
	flows   []Flow
	streams map[string]*streamProducer
	closed  bool
	retired sync.WaitGroup // producers replaced by Update, closing in the background

	inFlights inFlights
	done      producer.Callback // deliverResult, made once
}

type streamProducer struct {
	p      recordProducer
	cfg    producer.Config
	hurrys coalescer
}

// hurry flushes the producer when its buffer is full: the records in it cannot be joined by
// more until some are delivered, so waiting out Linger would only stall the stream.
func (sp *streamProducer) hurry() {
	sp.hurrys.request(func() { briefFlush(sp.p) })
}

// briefFlushFor bounds a flush started because a buffer is full. The flush only has to get
// what is buffered on its way; while it lasts, every new record is sealed at once too, with
// whatever has joined it, so it is kept short.
const briefFlushFor = 50 * time.Millisecond

func briefFlush(f Flusher) {
	ctx, cancel := context.WithTimeout(context.Background(), briefFlushFor)
	defer cancel()
	_ = f.Flush(ctx) // failures reach the records' results; this only hurries them
}

// coalescer runs a function in one goroutine at a time for any number of requests. A request
// made while it runs makes it run again afterwards, so none is lost: a flush that ended just
// before a buffer filled up again must not leave that buffer to wait out its Linger.
type coalescer struct{ reqs atomic.Int64 }

func (c *coalescer) request(fn func()) {
	if c.reqs.Add(1) != 1 {
		return // the running goroutine sees this request
	}
	go func() {
		for {
			n := c.reqs.Load()
			fn()
			if c.reqs.Add(-n) == 0 {
				return
			}
		}
	}()
}

// NewProducerSink returns a sink writing through client, with one producer per stream named
// by cfg's flows; each producer's configuration is ProducerConfig(base, stream, cfg.Flows).
// base carries what agent.json does not say (Logger, Metrics, Compression, rate limits);
// StreamName and StreamARN in it are ignored. A record for a stream no flow names, which a
// flow removed by a reload may still re-send, gets a producer on first use.
func NewProducerSink(client producer.Client, base producer.Config, cfg *Config) (*ProducerSink, error) {
	if client == nil {
		return nil, errors.New("agent: nil producer client")
	}
	s := newProducerSink(base, func(c producer.Config) (recordProducer, error) { return producer.New(client, c) })
	if ds, ok := client.(producer.StreamSummarizer); ok {
		s.maxRecordSize = func(ctx context.Context, stream string) (int, error) {
			out, err := ds.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: &stream})
			if err != nil {
				return 0, err
			}
			return producer.MaxRecordSizeOf(out), nil
		}
	}
	if err := s.Update(cfg); err != nil {
		_ = s.Close(context.Background())
		return nil, err
	}
	return s, nil
}

func newProducerSink(base producer.Config, newProducer func(producer.Config) (recordProducer, error)) *ProducerSink {
	s := &ProducerSink{base: base, newProducer: newProducer, streams: map[string]*streamProducer{}}
	s.done = s.deliverResult
	return s
}

// Update makes the sink match cfg: it creates the producers of streams that have none yet,
// and replaces a producer whose mapped buffer settings changed; the replaced one is closed in
// the background once its records have their results. Producers of streams no flow names any
// more are kept until Close, since records of a removed flow may still be re-sent. The
// daemon calls Update before Agent.Reload, so that new flows find their producers ready.
func (s *ProducerSink) Update(cfg *Config) error {
	if cfg == nil {
		return errors.New("agent: nil configuration")
	}
	if err := s.checkRecordSizes(cfg.Flows); err != nil {
		return err
	}
	flows := append([]Flow(nil), cfg.Flows...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSinkClosed
	}
	s.flows = flows
	var errs []error
	for _, stream := range streamsOf(flows) {
		want := ProducerConfig(s.base, stream, flows)
		old := s.streams[stream]
		if old != nil && sameMapping(old.cfg, want) {
			continue
		}
		p, err := s.newProducer(want)
		if err != nil {
			errs = append(errs, fmt.Errorf("agent: producer for stream %s: %w", stream, err))
			continue
		}
		s.streams[stream] = &streamProducer{p: p, cfg: want}
		if old != nil {
			s.retire(old)
		}
	}
	return errors.Join(errs...)
}

// retire closes a replaced producer once its records have their results; Send calls that
// still hold it see ErrClosed and move to its successor.
func (s *ProducerSink) retire(old *streamProducer) {
	s.retired.Add(1)
	go func() {
		defer s.retired.Done()
		_ = old.p.Close(context.Background()) // bounded by the records' TTL
	}()
}

func sameMapping(a, b producer.Config) bool {
	return a.Linger == b.Linger && a.MaxBatchRecords == b.MaxBatchRecords &&
		a.MaxBatchBytes == b.MaxBatchBytes && a.RecordTTL == b.RecordTTL
}

func streamsOf(flows []Flow) []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range flows {
		if f.KinesisStream == "" {
			continue // a Firehose flow
		}
		if !seen[f.KinesisStream] {
			seen[f.KinesisStream] = true
			out = append(out, f.KinesisStream)
		}
	}
	sort.Strings(out)
	return out
}

// describeTimeout bounds the DescribeStreamSummary call that checks a flow's record size.
const describeTimeout = 30 * time.Second

// checkRecordSizes refuses flows whose records could be larger than their stream takes: such
// a record would fail forever and hold its file's checkpoint back. Up to 1 MiB every stream
// takes; a flow allowing more is checked against its stream's maximum record size
// (DescribeStreamSummary's MaxRecordSizeInKiB, which UpdateMaxRecordSize raises up to
// 10 MiB), the limit the producer validates against too.
func (s *ProducerSink) checkRecordSizes(flows []Flow) error {
	if s.base.Compression != compression.None {
		return nil // the limit applies to the compressed record, which only the producer knows
	}
	known := map[string]int{}
	var errs []error
	for i := range flows {
		f := flows[i]
		f.applyDefaults()
		if f.DeliveryStream != "" || f.MaxRecordSizeBytes <= aggregation.MaxRecordSize {
			continue // Firehose's own limit is checked with the configuration
		}
		field := fmt.Sprintf("flows[%d].maxRecordSizeBytes", i)
		limit, ok := known[f.KinesisStream]
		if !ok {
			if s.maxRecordSize == nil {
				errs = append(errs, &ConfigError{Path: field, Problem: fmt.Sprintf("%d is more than 1 MiB (%d bytes), and the client cannot ask stream %s for its maximum record size",
					f.MaxRecordSizeBytes, aggregation.MaxRecordSize, f.KinesisStream)})
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), describeTimeout)
			n, err := s.maxRecordSize(ctx, f.KinesisStream)
			cancel()
			if err != nil {
				errs = append(errs, &ConfigError{Path: field, Problem: fmt.Sprintf("%d is more than 1 MiB (%d bytes), and stream %s's maximum record size could not be read: %v",
					f.MaxRecordSizeBytes, aggregation.MaxRecordSize, f.KinesisStream, err)})
				continue
			}
			limit, known[f.KinesisStream] = n, n
		}
		if f.MaxRecordSizeBytes > limit {
			errs = append(errs, &ConfigError{Path: field, Problem: fmt.Sprintf("%d is more than stream %s takes in one record (%d bytes, its maximum record size; UpdateMaxRecordSize raises it up to 10 MiB)",
				f.MaxRecordSizeBytes, f.KinesisStream, limit)})
		}
	}
	return errors.Join(errs...)
}

var errSinkClosed = errors.New("agent: producer sink closed")

// producerFor returns the stream's producer, creating one for a stream no flow names.
func (s *ProducerSink) producerFor(stream string) (*streamProducer, error) {
	s.mu.RLock()
	sp, closed := s.streams[stream], s.closed
	s.mu.RUnlock()
	if sp != nil {
		return sp, nil
	}
	if closed {
		return nil, errSinkClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errSinkClosed
	}
	if sp = s.streams[stream]; sp != nil {
		return sp, nil
	}
	want := ProducerConfig(s.base, stream, s.flows)
	p, err := s.newProducer(want)
	if err != nil {
		return nil, fmt.Errorf("agent: producer for stream %s: %w", stream, err)
	}
	sp = &streamProducer{p: p, cfg: want}
	s.streams[stream] = sp
	return sp, nil
}

func (s *ProducerSink) current(stream string) *streamProducer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.streams[stream]
}

// inFlight carries a record through the producer: the producer.Record it reads and the Ack
// to report its result to. Its own address is the record's Meta, so the callback finds the
// Ack without a map or a closure.
type inFlight struct {
	rec   producer.Record
	ack   Ack
	block *inFlightBlock
}

// inFlightBlock holds the inFlights of consecutive sends. The producer reports results long
// after a record was put, when its inFlight is out of the cache, and in about the order the
// records were put: handing inFlights out in order from blocks, rather than from a pool
// that returns them in any order, has the callbacks walk memory in order, which the CPU
// reads ahead of them. A block is reused once every inFlight in it is done, so one record
// that stays in flight keeps its whole block: at most maxInFlightBlocks blocks exist, and
// past them inFlights are allocated one by one.
type inFlightBlock struct {
	items [inFlightBlockLen]inFlight
	left  atomic.Int32 // inFlights handed out or still to be handed out, and not yet done
}

const (
	inFlightBlockLen  = 256
	maxInFlightBlocks = 128 // 128 blocks of 26 KiB: 3.3 MiB
)

// inFlights hands out inFlights from blocks, one block after the other.
type inFlights struct {
	mu     sync.Mutex
	cur    *inFlightBlock
	next   int
	free   []*inFlightBlock
	blocks int // made so far
}

// get hands out the next inFlight of the current block, starting another block when it is
// used up.
func (s *inFlights) get() *inFlight {
	s.mu.Lock()
	if s.cur == nil || s.next == inFlightBlockLen {
		n := len(s.free)
		switch {
		case n > 0:
			s.cur, s.free = s.free[n-1], s.free[:n-1]
		case s.blocks < maxInFlightBlocks:
			s.cur = new(inFlightBlock)
			s.blocks++
		default:
			// Every block is held by records still in flight.
			s.cur = nil
			s.mu.Unlock()
			return new(inFlight)
		}
		s.cur.left.Store(inFlightBlockLen)
		s.next = 0
	}
	f := &s.cur.items[s.next]
	f.block = s.cur
	s.next++
	s.mu.Unlock()
	return f
}

// put recycles f, and its block once every inFlight of it is done.
func (s *inFlights) put(f *inFlight) {
	b := f.block
	*f = inFlight{}
	if b != nil && b.left.Add(-1) == 0 {
		s.mu.Lock()
		s.free = append(s.free, b)
		s.mu.Unlock()
	}
}

// deliverResult is the producer callback of every record the sink sends. The producer hands
// the Record back with the callback, so the inFlight can be recycled before the Ack runs.
func (s *ProducerSink) deliverResult(rec *producer.Record, res producer.Result) {
	f := rec.Meta.(*inFlight)
	ack := f.ack
	s.inFlights.put(f)
	ack.Done(res.Err)
}

// ReleasesData marks ProducerSink as a DataReleaser: the producer reads a record's data (when
// it makes the aggregate that carries it, or sends it as it is) only until the result is
// delivered, and never touches it after.
func (s *ProducerSink) ReleasesData() {}

// Send hands the record to its stream's producer, blocking while that producer's buffer is
// full. A record the producer can never accept (it breaks a Kinesis limit) is acknowledged
// with the validation error rather than refused, so that it is retried with backoff and shows
// in the failure counters instead of making its file be read again in a loop.
func (s *ProducerSink) Send(ctx context.Context, rec Record, ack Ack) error {
	for {
		sp, err := s.producerFor(rec.Stream)
		if err != nil {
			return err
		}
		f := s.inFlights.get()
		f.rec.PartitionKey = rec.PartitionKey
		f.rec.Data = rec.Data
		f.rec.Meta = f
		f.ack = ack
		err = sp.p.TryPutAsync(&f.rec, s.done)
		if errors.Is(err, producer.ErrBufferFull) {
			sp.hurry()
			err = sp.p.PutAsync(ctx, &f.rec, s.done)
		}
		if err == nil {
			return nil
		}
		s.inFlights.put(f)
		var ve *producer.ValidationError
		switch {
		case errors.As(err, &ve):
			ack.Done(err)
			return nil
		case errors.Is(err, producer.ErrClosed) && ctx.Err() == nil && s.current(rec.Stream) != sp:
			continue // replaced by Update while this send waited; its successor takes it
		}
		return err
	}
}

// Flush sends every record the producers buffer without waiting for maxBufferAgeMillis and
// returns when they have their results or ctx ends. Agent.Run calls it while stopping.
func (s *ProducerSink) Flush(ctx context.Context) error {
	return s.each(func(sp *streamProducer) error { return sp.p.Flush(ctx) })
}

// Close flushes and closes every producer. Records still without a result when ctx ends fail
// with producer.ErrClosed; their files' checkpoints stay before them. Call it after Agent.Run
// has returned, when every record the agent waited for has its result.
func (s *ProducerSink) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errSinkClosed
	}
	s.closed = true
	s.mu.Unlock()
	err := s.each(func(sp *streamProducer) error { return sp.p.Close(ctx) })
	done := make(chan struct{})
	go func() { s.retired.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("agent: replaced producers still closing: %w", ctx.Err()))
	}
	return err
}

// each runs fn on every producer at once, since each may wait for its own stream.
func (s *ProducerSink) each(fn func(*streamProducer) error) error {
	s.mu.RLock()
	all := make([]*streamProducer, 0, len(s.streams))
	for _, sp := range s.streams {
		all = append(all, sp)
	}
	s.mu.RUnlock()
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, sp := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(sp); err != nil && !errors.Is(err, producer.ErrClosed) {
				errs[i] = fmt.Errorf("stream %s: %w", sp.cfg.StreamName, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Stats returns each stream's producer statistics.
func (s *ProducerSink) Stats() map[string]producer.Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]producer.Stats, len(s.streams))
	for name, sp := range s.streams {
		out[name] = sp.p.Stats()
	}
	return out
}

// ProducerConfigs returns the configuration of each stream's producer, as the sink built them.
func (s *ProducerSink) ProducerConfigs() map[string]producer.Config {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]producer.Config, len(s.streams))
	for name, sp := range s.streams {
		out[name] = sp.cfg
	}
	return out
}
