package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/cenkalti/backoff/v4"
)

// PutMetricData limits, from the CloudWatch API reference. The publisher keeps every request
// within them.
const (
	// MaxDatumsPerRequest is the most metrics one PutMetricData request may carry. The
	// publisher counts every MetricDatum, including several datums of one distribution.
	MaxDatumsPerRequest = 1000
	// MaxRequestBytes is the largest PutMetricData request body.
	MaxRequestBytes = 1 << 20
	// MaxValuesPerDatum is the most distinct values a datum's Values array may hold.
	MaxValuesPerDatum = 150
	// MaxDimensionsPerDatum is the most dimensions a metric may have.
	MaxDimensionsPerDatum = 30
)

// requestBudget is the body size the publisher aims for. Sizes are estimated for the awsQuery
// encoding, the most verbose one the SDK speaks, before compression; the margin absorbs the
// action, version and namespace parameters.
const requestBudget = MaxRequestBytes - 16<<10

// Publisher defaults.
const (
	DefaultNamespace           = "Shardline"
	DefaultInterval            = time.Minute
	DefaultGaugeSampleInterval = 5 * time.Second
	DefaultBufferSize          = 10_000
	DefaultMaxRetries          = 3
	DefaultInitialBackoff      = 200 * time.Millisecond
	DefaultMaxBackoff          = 10 * time.Second
	DefaultRequestTimeout      = 10 * time.Second
)

// ErrClosed is returned by Flush after Close.
var ErrClosed = errors.New("metrics: publisher closed")

// CloudWatchAPI is the part of the CloudWatch client the publisher uses; *cloudwatch.Client
// implements it, and tests substitute their own.
//
// Emulators such as moto do not serve the SDK's default protocol; a client for them must speak
// awsQuery, which CloudWatch also accepts:
//
//	client := cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) {
//		o.BaseEndpoint = aws.String(endpoint)
//		o.Protocol = awsquery.New(schemas.GraniteServiceVersion20100801)
//	})
//
// with awsquery from github.com/aws/smithy-go/transport/http/protocol/awsquery and schemas from
// github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas.
type CloudWatchAPI interface {
	PutMetricData(ctx context.Context, in *cloudwatch.PutMetricDataInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error)
}

// PublisherConfig configures a CloudWatchPublisher. The zero value is usable: every field has
// the default named in its comment.
type PublisherConfig struct {
	// Namespace of every metric. Default DefaultNamespace ("Shardline"); roles pass their
	// application name, as the KCL does. It must not start with "AWS/".
	Namespace string
	// Level is the most detailed level published. Default LevelDetailed (everything);
	// LevelNone turns the publisher into a no-op.
	Level Level
	// Granularity is the finest dimension level published; coarser levels are always
	// published too. Default GranularityStream.
	Granularity Granularity
	// Interval is how often data is aggregated and uploaded; datapoints are stamped with the
	// start of their interval, aligned to multiples of Interval. Default one minute, the
	// resolution CloudWatch stores standard metrics at.
	Interval time.Duration
	// GaugeSampleInterval is how often gauges are read within an interval, so a gauge's
	// statistic set has a minimum and maximum within the minute and not just a last value.
	// Default DefaultGaugeSampleInterval (5 s), never more than Interval.
	GaugeSampleInterval time.Duration
	// BufferSize bounds the datums waiting for upload. When CloudWatch is slow or down the
	// oldest requests are dropped first and counted in PublisherStats. Default
	// DefaultBufferSize (10,000).
	BufferSize int
	// MaxRetries is how many times a request is retried after throttling, a 5xx response, a
	// connection error or a timeout. Default DefaultMaxRetries (3); negative disables
	// retries. The SDK client's own retryer runs inside each attempt.
	MaxRetries int
	// InitialBackoff is the first wait before a retry; each later wait doubles, with ±50%
	// jitter. Default DefaultInitialBackoff (200 ms).
	InitialBackoff time.Duration
	// MaxBackoff caps the wait between retries. Default DefaultMaxBackoff (10 s).
	MaxBackoff time.Duration
	// RequestTimeout bounds each PutMetricData attempt, so a hung connection becomes a
	// retryable timeout. Default DefaultRequestTimeout (10 s).
	RequestTimeout time.Duration
	// ExtraDimensions are added to every datum, for example a Host dimension to compare
	// workers. They do not take part in roll-up. A series' own dimension wins a name clash.
	ExtraDimensions []Dimension
	// Logger receives a warning when data is dropped. Default slog.Default().
	Logger *slog.Logger
	// Now returns the current time. Default time.Now; tests substitute a clock.
	Now func() time.Time
}

func (c PublisherConfig) withDefaults() (PublisherConfig, error) {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	switch {
	case len(c.Namespace) > 255:
		return c, fmt.Errorf("metrics: namespace longer than 255 characters")
	case strings.HasPrefix(c.Namespace, "AWS/"):
		return c, fmt.Errorf("metrics: namespace %q is reserved for AWS services", c.Namespace)
	case c.Namespace[0] == ':' || !validText(c.Namespace):
		return c, fmt.Errorf("metrics: namespace %q must be printable ASCII not starting with ':'", c.Namespace)
	}
	c.Level = c.Level.effective()
	c.Granularity = c.Granularity.effective()
	if c.Interval < 0 || c.GaugeSampleInterval < 0 || c.BufferSize < 0 || c.InitialBackoff < 0 || c.MaxBackoff < 0 || c.RequestTimeout < 0 {
		return c, fmt.Errorf("metrics: negative durations and sizes are not allowed")
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.GaugeSampleInterval == 0 {
		c.GaugeSampleInterval = DefaultGaugeSampleInterval
	}
	c.GaugeSampleInterval = min(c.GaugeSampleInterval, c.Interval)
	if c.BufferSize == 0 {
		c.BufferSize = DefaultBufferSize
	}
	switch {
	case c.MaxRetries == 0:
		c.MaxRetries = DefaultMaxRetries
	case c.MaxRetries < 0:
		c.MaxRetries = 0
	}
	if c.InitialBackoff == 0 {
		c.InitialBackoff = DefaultInitialBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	c.MaxBackoff = max(c.MaxBackoff, c.InitialBackoff)
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	extra := canonicalDims(c.ExtraDimensions)
	if len(extra) != len(c.ExtraDimensions) {
		return c, fmt.Errorf("metrics: extra dimensions repeat a name")
	}
	if len(extra) > MaxDimensionsPerDatum-2 {
		return c, fmt.Errorf("metrics: %d extra dimensions leave no room for StreamName and ShardId", len(extra))
	}
	for _, d := range extra {
		if !validDimension(d) {
			return c, fmt.Errorf("metrics: extra dimension %q=%q is not valid in CloudWatch", d.Name, d.Value)
		}
	}
	c.ExtraDimensions = extra
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// PublisherStats reports what a CloudWatchPublisher did since it was created. A datum is one
// MetricDatum: one series' statistic set for one interval, or part of a distribution's values.
type PublisherStats struct {
	Collections int64 // intervals aggregated, including flushes
	Requests    int64 // PutMetricData calls that succeeded
	DatumsSent  int64 // datums in those calls
	Attempts    int64 // PutMetricData calls made, including retries
	Retries     int64 // attempts after the first for a request
	Throttled   int64 // attempts CloudWatch throttled
	Failures    int64 // attempts that failed for any reason, throttling included

	// DatumsInvalid counts series left out because CloudWatch would reject them (a value that
	// is not finite or beyond ±2^360, a non-ASCII dimension, an unknown unit, too many
	// dimensions); one of them would fail the whole request.
	DatumsInvalid int64
	// DatumsDropped is the sum of the three reasons below.
	DatumsDropped int64
	// DroppedBufferFull counts datums discarded because the buffer was full.
	DroppedBufferFull int64
	// DroppedFailed counts datums in requests CloudWatch rejected or that ran out of retries.
	DroppedFailed int64
	// DroppedCanceled counts datums still queued or in flight when a Close (or unstarted
	// Flush) ran out of time.
	DroppedCanceled int64
	// DatumsQueued is the number of datums waiting for upload now.
	DatumsQueued int64

	LastError     string    // the most recent failed attempt's error
	LastErrorTime time.Time // when it happened; zero if none
}

// CloudWatchPublisher aggregates a Registry's series per interval and uploads them with
// PutMetricData. Recording never waits for it: the registry is read with atomics, uploads go
// through a bounded buffer, and when CloudWatch is throttling, failing or hanging the
// publisher retries, then drops the oldest data and counts it.
//
// Create one with NewCloudWatchPublisher, call Start, and call Close to flush and stop. All
// methods are safe for concurrent use and do nothing on a nil *CloudWatchPublisher.
type CloudWatchPublisher struct {
	client CloudWatchAPI
	cfg    PublisherConfig
	col    *collector
	q      *queue
	log    *slog.Logger

	mu       sync.Mutex
	state    int
	stop     chan struct{} // closed to stop the collection loop
	loopDone chan struct{}
	drain    chan struct{} // closed to let the uploader exit once the queue is empty
	upDone   chan struct{}
	runCtx   context.Context
	cancel   context.CancelFunc
	inline   chan struct{} // held while an unstarted Flush or Close uploads

	collections, requests, datumsSent, attempts, retries, throttled, failures atomic.Int64
	invalid, droppedFull, droppedFailed, droppedCanceled                      atomic.Int64
	lastErr                                                                   atomic.Pointer[errorAt]
}

type errorAt struct {
	msg string
	at  time.Time
}

const (
	stateNew = iota
	stateRunning
	stateClosed
)

// NewCloudWatchPublisher returns a publisher of reg's series through client. It does not
// start; call Start.
func NewCloudWatchPublisher(client CloudWatchAPI, reg *Registry, cfg PublisherConfig) (*CloudWatchPublisher, error) {
	if client == nil {
		return nil, errors.New("metrics: nil CloudWatch client")
	}
	if reg == nil {
		return nil, errors.New("metrics: nil registry")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &CloudWatchPublisher{
		client:   client,
		cfg:      cfg,
		col:      newCollector(reg, cfg.Level, cfg.Interval, cfg.Now()),
		q:        newQueue(cfg.BufferSize),
		log:      cfg.Logger,
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
		drain:    make(chan struct{}),
		upDone:   make(chan struct{}),
		inline:   make(chan struct{}, 1),
	}
	p.runCtx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

func (p *CloudWatchPublisher) disabled() bool { return p.cfg.Level == LevelNone }

// Start starts aggregating and uploading in two goroutines. Calling it again, or after Close,
// does nothing.
func (p *CloudWatchPublisher) Start() {
	if p == nil || p.disabled() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != stateNew {
		return
	}
	p.state = stateRunning
	p.col.startPeriod(p.cfg.Now())
	go func() {
		defer close(p.loopDone)
		runLoop(p.stop, p.cfg.Now, p.cfg.Interval, p.cfg.GaugeSampleInterval, p.col.sample, func() { p.collectAndEnqueue() })
	}()
	go func() {
		defer close(p.upDone)
		p.uploadLoop()
	}()
}

// Flush aggregates what was recorded since the last interval and waits until it, and
// everything collected before it, has been uploaded or dropped, or until ctx ends. Data still
// queued when ctx ends stays queued. If the publisher was not started, Flush does the
// uploading itself (in a goroutine of its own, so it still returns when ctx ends).
func (p *CloudWatchPublisher) Flush(ctx context.Context) error {
	if p == nil || p.disabled() {
		return nil
	}
	p.mu.Lock()
	state := p.state
	p.mu.Unlock()
	if state == stateClosed {
		return ErrClosed
	}
	target := p.collectAndEnqueue()
	if state != stateRunning {
		return p.uploadInline(ctx)
	}
	err := p.q.wait(ctx, target, p.upDone)
	if errors.Is(err, ErrClosed) {
		// Close won the race and its uploader is gone: nobody will send this.
		p.droppedCanceled.Add(int64(p.q.dropAll()))
	}
	return err
}

// Close stops the publisher: it aggregates the last, partial interval and uploads everything
// still buffered, giving up when ctx ends. It returns once everything was uploaded or
// dropped, or as soon as ctx ends: data left then is counted as dropped, in-flight requests
// are cancelled, and Close returns ctx.Err() without waiting further. A CloudWatchAPI that
// ignores its context can keep the uploading goroutine alive after that, never Close.
//
// Closing again does nothing and returns nil.
func (p *CloudWatchPublisher) Close(ctx context.Context) error {
	if p == nil || p.disabled() {
		return nil
	}
	p.mu.Lock()
	state := p.state
	p.state = stateClosed
	p.mu.Unlock()
	switch state {
	case stateClosed:
		return nil
	case stateNew:
		defer p.cancel()
		p.collectAndEnqueue()
		err := p.uploadInline(ctx)
		if err != nil {
			p.droppedCanceled.Add(int64(p.q.dropAll()))
		}
		return err
	}

	close(p.stop)
	select {
	case <-p.loopDone:
	case <-ctx.Done():
		return p.abandon(ctx)
	}
	p.collectAndEnqueue()
	close(p.drain)
	select {
	case <-p.upDone:
		p.cancel()
		return nil
	case <-ctx.Done():
		return p.abandon(ctx)
	}
}

// abandon gives up on a Close whose context ended: it cancels the in-flight request, whose
// datums the uploader counts when the call returns, and drops what is still queued.
func (p *CloudWatchPublisher) abandon(ctx context.Context) error {
	p.cancel()
	p.droppedCanceled.Add(int64(p.q.dropAll()))
	return ctx.Err()
}

// Stats returns the publisher's counters.
func (p *CloudWatchPublisher) Stats() PublisherStats {
	if p == nil {
		return PublisherStats{}
	}
	s := PublisherStats{
		Collections:       p.collections.Load(),
		Requests:          p.requests.Load(),
		DatumsSent:        p.datumsSent.Load(),
		Attempts:          p.attempts.Load(),
		Retries:           p.retries.Load(),
		Throttled:         p.throttled.Load(),
		Failures:          p.failures.Load(),
		DatumsInvalid:     p.invalid.Load(),
		DroppedBufferFull: p.droppedFull.Load(),
		DroppedFailed:     p.droppedFailed.Load(),
		DroppedCanceled:   p.droppedCanceled.Load(),
		DatumsQueued:      int64(p.q.queued()),
	}
	s.DatumsDropped = s.DroppedBufferFull + s.DroppedFailed + s.DroppedCanceled
	if e := p.lastErr.Load(); e != nil {
		s.LastError, s.LastErrorTime = e.msg, e.at
	}
	return s
}

// collectAndEnqueue ends the current interval and queues its requests. It returns the
// sequence number of the last request queued so far, which Flush waits for.
func (p *CloudWatchPublisher) collectAndEnqueue() uint64 {
	points, ts := p.col.collect(p.cfg.Now())
	p.collections.Add(1)
	datums, invalid := buildDatums(rollUp(points, p.cfg.Granularity, p.cfg.ExtraDimensions), ts)
	if invalid.count > 0 {
		p.invalid.Add(int64(invalid.count))
		p.log.Warn("metrics: series left out because CloudWatch would reject them",
			"count", invalid.count, "example", invalid.example)
	}
	reqs := packRequests(p.cfg.Namespace, datums)
	dropped, last := p.q.push(reqs)
	if dropped > 0 {
		p.droppedFull.Add(int64(dropped))
		p.log.Warn("metrics: upload buffer full; oldest datums dropped",
			"dropped", dropped, "buffer_size", p.cfg.BufferSize)
	}
	return last
}

// uploadLoop uploads queued requests in order until told to drain and the queue is empty, or
// until Close runs out of time.
func (p *CloudWatchPublisher) uploadLoop() {
	for {
		if p.runCtx.Err() != nil {
			p.droppedCanceled.Add(int64(p.q.dropAll()))
			return
		}
		r, ok := p.q.pop()
		if !ok {
			select {
			case <-p.q.notify:
				continue
			case <-p.drain:
				if p.q.queued() > 0 {
					continue
				}
				return
			case <-p.runCtx.Done():
				continue
			}
		}
		p.upload(p.runCtx, r)
		p.q.finish(r.seq)
	}
}

// uploadInline uploads the queue for a publisher that was never started. The uploads run in
// a goroutine of their own so that the caller can return when ctx ends even if the client
// ignores ctx; the goroutine stops after its current request.
func (p *CloudWatchPublisher) uploadInline(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case p.inline <- struct{}{}:
			defer func() { <-p.inline }()
		case <-ctx.Done():
			return
		}
		for ctx.Err() == nil {
			r, ok := p.q.pop()
			if !ok {
				return
			}
			p.upload(ctx, r)
			p.q.finish(r.seq)
		}
	}()
	select {
	case <-done:
		if p.q.queued() == 0 {
			return nil
		}
	case <-ctx.Done():
	}
	return ctx.Err()
}

// upload sends one request, retrying with backoff, and accounts for its datums.
func (p *CloudWatchPublisher) upload(ctx context.Context, r request) {
	eb := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.cfg.InitialBackoff),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxInterval(p.cfg.MaxBackoff),
		backoff.WithMaxElapsedTime(0),
	)
	b := backoff.WithContext(backoff.WithMaxRetries(eb, uint64(p.cfg.MaxRetries)), ctx)
	first := true
	err := backoff.Retry(func() error {
		if !first {
			p.retries.Add(1)
		}
		first = false
		p.attempts.Add(1)
		actx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
		_, err := p.client.PutMetricData(actx, r.in)
		cancel()
		if err == nil {
			return nil
		}
		p.failures.Add(1)
		p.lastErr.Store(&errorAt{msg: err.Error(), at: p.cfg.Now()})
		if isThrottle(err) {
			p.throttled.Add(1)
		}
		if ctx.Err() != nil || !isRetryable(err) {
			return backoff.Permanent(err)
		}
		return err
	}, b)
	switch {
	case err == nil:
		p.requests.Add(1)
		p.datumsSent.Add(int64(r.datums))
	case ctx.Err() != nil:
		p.droppedCanceled.Add(int64(r.datums))
	default:
		p.droppedFailed.Add(int64(r.datums))
		p.log.Warn("metrics: PutMetricData failed; datums dropped",
			"namespace", p.cfg.Namespace, "datums", r.datums, "err", err)
	}
}

var (
	throttles  = retry.IsErrorThrottles(retry.DefaultThrottles)
	retryables = retry.IsErrorRetryables(retry.DefaultRetryables)
)

func isThrottle(err error) bool { return throttles.IsErrorThrottle(err) == aws.TrueTernary }

// isRetryable reports whether an attempt's error is worth another attempt: throttling, 5xx,
// connection errors, and timeouts, including the attempt's own deadline.
func isRetryable(err error) bool {
	if isThrottle(err) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	return retryables.IsErrorRetryable(err) == aws.TrueTernary
}

// invalidSummary describes the series buildDatums left out.
type invalidSummary struct {
	count   int
	example string
}

func (s *invalidSummary) add(p point, why string) {
	if s.count == 0 {
		s.example = fmt.Sprintf("%s%v: %s", p.name, p.dims, why)
	}
	s.count++
}

// buildDatums converts rolled-up points into MetricDatums stamped ts. Counters and gauges
// become statistic sets. Distributions become Values and Counts, the only form from which
// CloudWatch computes percentiles; a datum takes either Value, StatisticValues or
// Values/Counts, so a distribution with more distinct values than MaxValuesPerDatum is split
// into several datums of the same metric and timestamp, which CloudWatch combines.
func buildDatums(points []point, ts time.Time) ([]types.MetricDatum, invalidSummary) {
	var bad invalidSummary
	out := make([]types.MetricDatum, 0, len(points))
	for _, p := range points {
		if why := checkSeries(p); why != "" {
			bad.add(p, why)
			continue
		}
		unit := types.StandardUnit(p.unit)
		if unit == "" {
			unit = types.StandardUnitNone
		}
		dims := make([]types.Dimension, len(p.dims))
		for i, d := range p.dims {
			dims[i] = types.Dimension{Name: aws.String(d.Name), Value: aws.String(d.Value)}
		}
		base := types.MetricDatum{MetricName: aws.String(p.name), Dimensions: dims, Timestamp: aws.Time(ts), Unit: unit}
		if p.kind != KindDistribution {
			s := p.stat
			if !finite(s.sum) || !finite(s.min) || !finite(s.max) || s.count <= 0 {
				bad.add(p, "value out of range")
				continue
			}
			d := base
			d.StatisticValues = &types.StatisticSet{SampleCount: aws.Float64(s.count), Sum: aws.Float64(s.sum), Minimum: aws.Float64(s.min), Maximum: aws.Float64(s.max)}
			out = append(out, d)
			continue
		}
		values, counts := p.hist.valuesCounts()
		if len(values) == 0 || !finite(values[0]) || !finite(values[len(values)-1]) {
			bad.add(p, "value out of range")
			continue
		}
		for len(values) > 0 {
			n := min(len(values), MaxValuesPerDatum)
			d := base
			d.Values, d.Counts = values[:n:n], counts[:n:n]
			out = append(out, d)
			values, counts = values[n:], counts[n:]
		}
	}
	return out, bad
}

// checkSeries returns why CloudWatch would reject the series, or "".
func checkSeries(p point) string {
	switch {
	case len(p.name) == 0 || len(p.name) > 255 || !validText(p.name):
		return "metric name must be 1-255 printable ASCII characters"
	case len(p.dims) > MaxDimensionsPerDatum:
		return "more than 30 dimensions"
	case p.unit != "" && !knownUnit(p.unit):
		return "unknown unit " + strconv.Quote(string(p.unit))
	}
	for _, d := range p.dims {
		if !validDimension(d) {
			return fmt.Sprintf("dimension %q=%q is not 1-255/1-1024 printable ASCII characters", d.Name, d.Value)
		}
	}
	return ""
}

func validDimension(d Dimension) bool {
	return len(d.Name) >= 1 && len(d.Name) <= 255 && d.Name[0] != ':' && validText(d.Name) &&
		len(d.Value) >= 1 && len(d.Value) <= 1024 && validText(d.Value)
}

// validText reports whether s is ASCII without control characters and not all blank, as
// CloudWatch requires of names and dimensions.
func validText(s string) bool {
	blank := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return false
		}
		if c != ' ' {
			blank = false
		}
	}
	return !blank
}

func knownUnit(u Unit) bool {
	for _, k := range types.StandardUnit("").Values() {
		if string(k) == string(u) {
			return true
		}
	}
	return false
}

// packRequests splits datums into requests of at most MaxDatumsPerRequest datums and
// requestBudget estimated bytes.
func packRequests(namespace string, datums []types.MetricDatum) []request {
	var out []request
	start, size := 0, 0
	for i := range datums {
		n := estimateDatumBytes(&datums[i])
		if i > start && (i-start == MaxDatumsPerRequest || size+n > requestBudget) {
			out = append(out, newRequest(namespace, datums[start:i]))
			start, size = i, 0
		}
		size += n
	}
	if start < len(datums) {
		out = append(out, newRequest(namespace, datums[start:]))
	}
	return out
}

func newRequest(namespace string, datums []types.MetricDatum) request {
	return request{
		in:     &cloudwatch.PutMetricDataInput{Namespace: aws.String(namespace), MetricData: datums[:len(datums):len(datums)]},
		datums: len(datums),
	}
}

// estimateDatumBytes bounds the size of a datum in the awsQuery form encoding, where every
// field is a parameter like "MetricData.member.12.Values.member.7=0.25&". Names are counted as
// if every byte were percent-escaped and numbers by their exact rendering, so the estimate
// errs high.
func estimateDatumBytes(d *types.MetricDatum) int {
	const member = len("MetricData.member.1000.")
	var buf [64]byte
	num := func(v float64) int { return len(strconv.AppendFloat(buf[:0], v, 'f', -1, 64)) + 1 }
	n := member + len("MetricName=&") + 3*len(aws.ToString(d.MetricName))
	n += member + len("Timestamp=2006-01-02T15:04:05.999999999Z&")
	n += member + len("Unit=&") + 3*len(d.Unit)
	for _, dim := range d.Dimensions {
		n += 2*(member+len("Dimensions.member.30.Value=&")) + 3*(len(aws.ToString(dim.Name))+len(aws.ToString(dim.Value)))
	}
	if s := d.StatisticValues; s != nil {
		n += 4*(member+len("StatisticValues.SampleCount=")) +
			num(aws.ToFloat64(s.SampleCount)) + num(aws.ToFloat64(s.Sum)) + num(aws.ToFloat64(s.Minimum)) + num(aws.ToFloat64(s.Maximum))
	}
	for _, v := range d.Values {
		n += member + len("Values.member.150=") + num(v)
	}
	for _, c := range d.Counts {
		n += member + len("Counts.member.150=") + num(c)
	}
	if d.Value != nil {
		n += member + len("Value=") + num(*d.Value)
	}
	return n
}

// request is one PutMetricData call waiting in the queue.
type request struct {
	in     *cloudwatch.PutMetricDataInput
	datums int
	seq    uint64
}

// queue is the bounded buffer between aggregation and upload. It holds whole requests and
// counts their datums; when a push takes it past its limit it drops the oldest requests, so
// after an outage CloudWatch receives the most recent data.
type queue struct {
	mu       sync.Mutex
	items    []request
	datums   int
	limit    int
	lastSeq  uint64
	inflight uint64 // seq of the request being uploaded, 0 if none
	notify   chan struct{}
	progress chan struct{} // closed and replaced whenever a request leaves
}

func newQueue(limit int) *queue {
	return &queue{limit: limit, notify: make(chan struct{}, 1), progress: make(chan struct{})}
}

// push appends reqs, drops the oldest requests while over the limit (always keeping the
// newest), and returns the datums dropped and the last sequence number handed out.
func (q *queue) push(reqs []request) (dropped int, last uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range reqs {
		q.lastSeq++
		r.seq = q.lastSeq
		q.items = append(q.items, r)
		q.datums += r.datums
	}
	for q.datums > q.limit && len(q.items) > 1 {
		dropped += q.items[0].datums
		q.datums -= q.items[0].datums
		q.items[0] = request{}
		q.items = q.items[1:]
	}
	if dropped > 0 {
		q.signalProgress()
	}
	if len(reqs) > 0 {
		select {
		case q.notify <- struct{}{}:
		default:
		}
	}
	return dropped, q.lastSeq
}

func (q *queue) pop() (request, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return request{}, false
	}
	r := q.items[0]
	q.items[0] = request{}
	q.items = q.items[1:]
	q.datums -= r.datums
	q.inflight = r.seq
	return r, true
}

func (q *queue) finish(seq uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.inflight == seq {
		q.inflight = 0
	}
	q.signalProgress()
}

func (q *queue) dropAll() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.datums
	clear(q.items)
	q.items = q.items[:0]
	q.datums = 0
	q.signalProgress()
	return n
}

func (q *queue) queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.datums
}

func (q *queue) signalProgress() {
	close(q.progress)
	q.progress = make(chan struct{})
}

// wait returns once no request numbered seq or lower is queued or in flight, or with
// ErrClosed once the uploader has exited.
func (q *queue) wait(ctx context.Context, seq uint64, uploaderDone <-chan struct{}) error {
	for {
		q.mu.Lock()
		done := (len(q.items) == 0 || q.items[0].seq > seq) && (q.inflight == 0 || q.inflight > seq)
		ch := q.progress
		q.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-uploaderDone:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// runLoop calls sample every sampleEvery and collect at every multiple of interval on the
// wall clock, until stop is closed. Aligning collections to the clock makes each interval
// fall in one CloudWatch period instead of straddling two.
func runLoop(stop <-chan struct{}, now func() time.Time, interval, sampleEvery time.Duration, sample, collect func()) {
	untilNext := func() time.Duration {
		n := now()
		return n.Truncate(interval).Add(interval).Sub(n)
	}
	collectT := time.NewTimer(untilNext())
	defer collectT.Stop()
	var sampleC <-chan time.Time
	if sampleEvery > 0 && sampleEvery < interval {
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		sampleC = t.C
	}
	for {
		select {
		case <-stop:
			return
		case <-sampleC:
			sample()
		case <-collectT.C:
			collect()
			collectT.Reset(untilNext())
		}
	}
}
