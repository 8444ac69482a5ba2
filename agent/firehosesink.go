package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"
)

// FirehoseClient is the part of the Amazon Data Firehose API that FirehoseSink uses;
// *firehose.Client implements it, and tests substitute it.
type FirehoseClient interface {
	PutRecordBatch(ctx context.Context, in *firehose.PutRecordBatchInput, optFns ...func(*firehose.Options)) (*firehose.PutRecordBatchOutput, error)
}

// FirehoseCallTimeout bounds one PutRecordBatch call, the SDK's own retries included.
const FirehoseCallTimeout = 30 * time.Second

// FirehoseRecordError is the error a record gets when Firehose refused it within a
// PutRecordBatch call that otherwise succeeded.
type FirehoseRecordError struct {
	DeliveryStream string
	Code, Message  string
}

// Error says which delivery stream refused the record, and why.
func (e *FirehoseRecordError) Error() string {
	return fmt.Sprintf("firehose %s refused the record: %s: %s", e.DeliveryStream, e.Code, e.Message)
}

// ErrFirehoseRecordTooLarge is the error (wrapped) of a record over MaxFirehoseRecordSize,
// which Firehose would refuse.
var ErrFirehoseRecordTooLarge = errors.New("agent: record larger than Firehose accepts")

// FirehoseSink is the Sink of Firehose flows: per delivery stream it gathers records into
// PutRecordBatch calls, as the Amazon Kinesis Agent's FirehoseSender does, of at most
// maxBufferSizeRecords (500) records and maxBufferSizeBytes (4 MiB), sent when full or when
// the oldest record is maxBufferAgeMillis old. Where flows share a delivery stream the
// smallest value of each setting wins.
//
// Each record's Ack is its result: nil once Firehose accepted it, or the error. A record
// refused in a call that otherwise succeeded gets a FirehoseRecordError; a call that failed
// (after the SDK's own retries) fails all of its records. The agent re-sends failed records
// one by one after its backoff (retryInitialBackoffMillis to retryMaxBackoffMillis), so a
// file's checkpoint, as with Kinesis flows, never passes a record Firehose did not accept.
// Memory is bounded by the agent's maxInFlightRecords and maxInFlightBytes, which count every
// record the sink holds, so Send does not block.
type FirehoseSink struct {
	client FirehoseClient
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	queues  map[string]*deliveryQueue
	flows   []Flow
	closed  bool
	loops   sync.WaitGroup
	putOK   atomic.Int64
	putFail atomic.Int64
	calls   atomic.Int64
}

// FirehoseStats are a FirehoseSink's counters, summed over its delivery streams.
type FirehoseStats struct {
	RecordsPut, RecordsFailed, Calls int64
}

// NewFirehoseSink returns a sink writing through client, with the batching settings of cfg's
// Firehose flows. log may be nil for slog.Default().
func NewFirehoseSink(client FirehoseClient, cfg *Config, log *slog.Logger) (*FirehoseSink, error) {
	if client == nil {
		return nil, errors.New("agent: nil Firehose client")
	}
	if log == nil {
		log = slog.Default()
	}
	s := &FirehoseSink{client: client, log: log, queues: map[string]*deliveryQueue{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.Update(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Update applies a new configuration's batching settings; the daemon calls it before
// Agent.Reload.
func (s *FirehoseSink) Update(cfg *Config) error {
	if cfg == nil {
		return errors.New("agent: nil configuration")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flows = append([]Flow(nil), cfg.Flows...)
	for name, q := range s.queues {
		q.setLimits(firehoseLimits(name, s.flows))
	}
	return nil
}

type queueLimits struct {
	linger              time.Duration
	maxRecords, maxByte int
}

// firehoseLimits maps the settings of a delivery stream's flows onto its batches.
func firehoseLimits(name string, flows []Flow) queueLimits {
	l := queueLimits{linger: DefaultMaxBufferAge, maxRecords: MaxFirehoseBatchRecords, maxByte: MaxFirehoseBatchBytes}
	first := true
	for i := range flows {
		f := flows[i]
		if f.DeliveryStream != name {
			continue
		}
		f.applyDefaults()
		if first || f.MaxBufferAge < l.linger {
			l.linger = f.MaxBufferAge
		}
		first = false
		l.maxRecords = min(l.maxRecords, f.MaxBufferSizeRecords)
		l.maxByte = min(l.maxByte, f.MaxBufferSizeBytes)
	}
	return l
}

func (s *FirehoseSink) queue(name string) (*deliveryQueue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errSinkClosed
	}
	q := s.queues[name]
	if q == nil {
		q = &deliveryQueue{s: s, name: name, wake: make(chan struct{}, 1)}
		q.cond = sync.NewCond(&q.mu)
		q.setLimits(firehoseLimits(name, s.flows))
		s.queues[name] = q
		s.loops.Add(1)
		go func() { defer s.loops.Done(); q.run() }()
	}
	return q, nil
}

// Send queues a record for its delivery stream. A record Firehose can never accept (over
// MaxFirehoseRecordSize) is acknowledged with ErrFirehoseRecordTooLarge rather than refused.
func (s *FirehoseSink) Send(ctx context.Context, rec Record, ack Ack) error {
	if rec.DeliveryStream == "" {
		return errors.New("agent: a record without a delivery stream sent to the Firehose sink")
	}
	if len(rec.Data) > MaxFirehoseRecordSize {
		ack.Done(fmt.Errorf("%w: %d bytes, at most %d", ErrFirehoseRecordTooLarge, len(rec.Data), MaxFirehoseRecordSize))
		return nil
	}
	q, err := s.queue(rec.DeliveryStream)
	if err != nil {
		return err
	}
	return q.add(fhItem{data: rec.Data, ack: ack})
}

// Flush sends every queued record without waiting for maxBufferAgeMillis and returns when
// they have their results or ctx ends.
func (s *FirehoseSink) Flush(ctx context.Context) error {
	s.mu.Lock()
	qs := make([]*deliveryQueue, 0, len(s.queues))
	for _, q := range s.queues {
		qs = append(qs, q)
	}
	s.mu.Unlock()
	for _, q := range qs {
		if err := q.flush(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Close sends what is queued and stops. When ctx ends first, the calls under way are
// cancelled and the records still queued fail; the agent keeps them for the next run.
func (s *FirehoseSink) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, q := range s.queues {
		q.mu.Lock()
		q.closing = true
		q.mu.Unlock()
		q.poke()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.loops.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		<-done
		return ctx.Err()
	}
}

// Stats returns the sink's counters.
func (s *FirehoseSink) Stats() FirehoseStats {
	return FirehoseStats{RecordsPut: s.putOK.Load(), RecordsFailed: s.putFail.Load(), Calls: s.calls.Load()}
}

// DeliveryStreams lists the delivery streams the sink has sent to, for logs.
func (s *FirehoseSink) DeliveryStreams() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.queues))
	for n := range s.queues {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

type fhItem struct {
	data []byte
	ack  Ack
}

// deliveryQueue batches one delivery stream's records; one goroutine sends its calls, one at
// a time, so records reach Firehose in the order they were queued (re-sent ones aside).
type deliveryQueue struct {
	s    *FirehoseSink
	name string
	wake chan struct{}

	mu       sync.Mutex
	cond     *sync.Cond // signalled after each call
	limits   queueLimits
	items    []fhItem
	bytes    int
	first    time.Time // when the oldest queued record arrived
	flushing int       // Flush calls waiting
	busy     bool      // a call is under way
	closing  bool
}

func (q *deliveryQueue) setLimits(l queueLimits) {
	q.mu.Lock()
	q.limits = l
	q.mu.Unlock()
	q.poke()
}

func (q *deliveryQueue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *deliveryQueue) add(it fhItem) error {
	q.mu.Lock()
	if q.closing {
		q.mu.Unlock()
		return errSinkClosed
	}
	if len(q.items) == 0 {
		q.first = time.Now()
	}
	q.items = append(q.items, it)
	q.bytes += len(it.data)
	full := len(q.items) == 1 || len(q.items) >= q.limits.maxRecords || q.bytes >= q.limits.maxByte
	q.mu.Unlock()
	if full {
		q.poke() // the first record starts the linger timer; a full batch goes at once
	}
	return nil
}

func (q *deliveryQueue) flush(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.cond.Broadcast()
		q.mu.Unlock()
	})
	defer stop()
	q.mu.Lock()
	q.flushing++
	q.mu.Unlock()
	q.poke()
	q.mu.Lock()
	defer q.mu.Unlock()
	defer func() { q.flushing-- }()
	for len(q.items) > 0 || q.busy {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		q.cond.Wait()
	}
	return nil
}

func (q *deliveryQueue) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		q.mu.Lock()
		n := len(q.items)
		if q.closing && n == 0 {
			q.mu.Unlock()
			return
		}
		wait := time.Hour
		due := false
		if n > 0 {
			age := time.Since(q.first)
			due = n >= q.limits.maxRecords || q.bytes >= q.limits.maxByte || q.flushing > 0 || q.closing || age >= q.limits.linger
			wait = q.limits.linger - age
		}
		if !due {
			q.mu.Unlock()
			timer.Reset(wait)
			select {
			case <-q.wake:
			case <-timer.C:
			case <-q.s.ctx.Done():
				q.failAll(q.s.ctx.Err())
				return
			}
			continue
		}
		batch, size := q.takeLocked()
		q.busy = true
		q.mu.Unlock()
		q.send(batch, size)
		q.mu.Lock()
		q.busy = false
		q.cond.Broadcast()
		q.mu.Unlock()
	}
}

// takeLocked removes the next batch: as many records as fit in one call's limits, at least one.
func (q *deliveryQueue) takeLocked() ([]fhItem, int) {
	n, size := 0, 0
	for n < len(q.items) && n < q.limits.maxRecords {
		l := len(q.items[n].data)
		if n > 0 && size+l > q.limits.maxByte {
			break
		}
		size += l
		n++
	}
	batch := append([]fhItem(nil), q.items[:n]...)
	clear(q.items[:n])
	q.items = q.items[n:]
	q.bytes -= size
	if len(q.items) == 0 {
		q.items = nil
	} else {
		q.first = time.Now() // the rest waits at most one more linger
	}
	return batch, size
}

func (q *deliveryQueue) failAll(err error) {
	q.mu.Lock()
	items := q.items
	q.items, q.bytes = nil, 0
	q.cond.Broadcast()
	q.mu.Unlock()
	for _, it := range items {
		it.ack.Done(err)
	}
	q.s.putFail.Add(int64(len(items)))
}

func (q *deliveryQueue) send(batch []fhItem, size int) {
	recs := make([]fhtypes.Record, len(batch))
	for i := range batch {
		recs[i].Data = batch[i].data
	}
	ctx, cancel := context.WithTimeout(q.s.ctx, FirehoseCallTimeout)
	defer cancel()
	q.s.calls.Add(1)
	out, err := q.s.client.PutRecordBatch(ctx, &firehose.PutRecordBatchInput{
		DeliveryStreamName: aws.String(q.name), Records: recs,
	})
	if err == nil && len(out.RequestResponses) != len(batch) {
		err = fmt.Errorf("answered %d records of %d", len(out.RequestResponses), len(batch))
	}
	if err != nil {
		err = fmt.Errorf("agent: firehose PutRecordBatch to %s (%d records, %d bytes): %w", q.name, len(batch), size, err)
		for _, it := range batch {
			it.ack.Done(err)
		}
		q.s.putFail.Add(int64(len(batch)))
		return
	}
	failed := 0
	for i, r := range out.RequestResponses {
		if r.ErrorCode != nil {
			failed++
			batch[i].ack.Done(&FirehoseRecordError{DeliveryStream: q.name, Code: aws.ToString(r.ErrorCode), Message: aws.ToString(r.ErrorMessage)})
			continue
		}
		batch[i].ack.Done(nil)
	}
	q.s.putOK.Add(int64(len(batch) - failed))
	q.s.putFail.Add(int64(failed))
}

// Destinations is the Sink of an agent whose flows go to Kinesis data streams and to Firehose
// delivery streams: it hands each record to the sink of its kind.
type Destinations struct {
	// Kinesis takes the records of flows with a kinesisStream (usually a ProducerSink).
	Kinesis Sink
	// Firehose takes the records of flows with a deliveryStream (usually a FirehoseSink).
	Firehose Sink
}

// Send hands rec to the sink of its destination.
func (d Destinations) Send(ctx context.Context, rec Record, ack Ack) error {
	if rec.DeliveryStream != "" {
		if d.Firehose == nil {
			return fmt.Errorf("agent: no Firehose sink for delivery stream %s", rec.DeliveryStream)
		}
		return d.Firehose.Send(ctx, rec, ack)
	}
	if d.Kinesis == nil {
		return fmt.Errorf("agent: no Kinesis sink for stream %s", rec.Stream)
	}
	return d.Kinesis.Send(ctx, rec, ack)
}

// Flush flushes both sinks that are Flushers.
func (d Destinations) Flush(ctx context.Context) error {
	var errs []error
	for _, s := range []Sink{d.Kinesis, d.Firehose} {
		if f, ok := s.(Flusher); ok && s != nil {
			errs = append(errs, f.Flush(ctx))
		}
	}
	return errors.Join(errs...)
}
