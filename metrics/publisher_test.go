package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwschemas "github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"
)

// fakeCloudWatch records every PutMetricData call and answers with respond, which gets the
// call's number (from 1). A nil respond accepts everything.
type fakeCloudWatch struct {
	mu      sync.Mutex
	calls   []*cloudwatch.PutMetricDataInput
	times   []time.Time
	respond func(ctx context.Context, n int) error
}

func (f *fakeCloudWatch) PutMetricData(ctx context.Context, in *cloudwatch.PutMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error) {
	f.mu.Lock()
	f.calls = append(f.calls, in)
	f.times = append(f.times, time.Now())
	n := len(f.calls)
	f.mu.Unlock()
	if f.respond != nil {
		if err := f.respond(ctx, n); err != nil {
			return nil, err
		}
	}
	return &cloudwatch.PutMetricDataOutput{}, nil
}

func (f *fakeCloudWatch) snapshot() ([]*cloudwatch.PutMetricDataInput, []time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*cloudwatch.PutMetricDataInput(nil), f.calls...), append([]time.Time(nil), f.times...)
}

func (f *fakeCloudWatch) datums() []types.MetricDatum {
	calls, _ := f.snapshot()
	var out []types.MetricDatum
	for _, c := range calls {
		out = append(out, c.MetricData...)
	}
	return out
}

var throttlingErr = &smithy.GenericAPIError{Code: "Throttling", Message: "Rate exceeded", Fault: smithy.FaultClient}

func httpStatusErr(code int) error {
	return &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}},
		Err:      fmt.Errorf("status %d", code),
	}
}

// publisherGoroutines counts the goroutines the package's publishers and log sinks started.
func publisherGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	return len(regexp.MustCompile(`created by github\.com/shardline/shardline/metrics\.(\(\*CloudWatchPublisher\)\.(Start|uploadInline)|NewLogSink)`).FindAll(buf, -1))
}

// checkNoLeak fails the test if goroutines started by the package are still running a few
// seconds after the test's cleanups ran. It first gives those of earlier tests the same few
// seconds to end: a publisher's goroutine may still be returning when its Close has.
func checkNoLeak(t *testing.T) {
	t.Helper()
	if n := waitPublisherGoroutines(); n != 0 {
		t.Fatalf("%d publisher goroutines still running before the test:\n%s", n, allStacks())
	}
	t.Cleanup(func() {
		if n := waitPublisherGoroutines(); n != 0 {
			t.Errorf("%d publisher goroutines still running after Close:\n%s", n, allStacks())
		}
	})
}

// waitPublisherGoroutines waits up to 5 s for the package's goroutines to end and returns
// how many are left.
func waitPublisherGoroutines() int {
	deadline := time.Now().Add(5 * time.Second)
	for publisherGoroutines() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return publisherGoroutines()
}

func allStacks() []byte {
	buf := make([]byte, 1<<20)
	return buf[:runtime.Stack(buf, true)]
}

func quietConfig(cfg PublisherConfig) PublisherConfig {
	if cfg.Logger == nil {
		cfg.Logger = discardLogger
	}
	return cfg
}

func newTestPublisher(t *testing.T, client CloudWatchAPI, reg *Registry, cfg PublisherConfig) *CloudWatchPublisher {
	t.Helper()
	p, err := NewCloudWatchPublisher(client, reg, quietConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRequestsRespectPutMetricDataLimits(t *testing.T) {
	reg := NewRegistry()
	const streams, shardsPerStream = 40, 50
	for s := range streams {
		for sh := range shardsPerStream {
			dims := shardDims(fmt.Sprint("stream-", s), sh)
			reg.Counter(UserRecordsPut, UnitCount, LevelSummary, dims...).Add(int64(sh + 1))
		}
	}
	// Wide distributions: each covers many octaves, so it needs several datums of at most
	// 150 values, and their Values arrays make the requests large.
	const wide = 120
	for i := range wide {
		d := reg.Distribution(RequestTime, UnitMilliseconds, LevelDetailed, Dim(DimOperation, fmt.Sprint("Op", i)))
		for v := 0.001; v < 1e7; v *= 1.013 {
			d.Observe(v)
		}
	}
	fake := &fakeCloudWatch{}
	p := newTestPublisher(t, fake, reg, PublisherConfig{Granularity: GranularityShard, BufferSize: 1 << 20})
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	calls, _ := fake.snapshot()
	if len(calls) < 3 {
		t.Fatalf("%d requests; want the data split over several", len(calls))
	}
	counterDatums, distDatums := 0, 0
	sizeLimited := false
	for i, c := range calls {
		if n := len(c.MetricData); n > MaxDatumsPerRequest {
			t.Errorf("request %d has %d datums, limit %d", i, n, MaxDatumsPerRequest)
		} else if n < MaxDatumsPerRequest && i < len(calls)-1 {
			sizeLimited = true
		}
		if est := estimateRequestBytes(c); est > MaxRequestBytes {
			t.Errorf("request %d estimated at %d bytes, limit %d", i, est, MaxRequestBytes)
		}
		for _, d := range c.MetricData {
			if len(d.Dimensions) > MaxDimensionsPerDatum {
				t.Errorf("datum with %d dimensions", len(d.Dimensions))
			}
			switch aws.ToString(d.MetricName) {
			case UserRecordsPut:
				counterDatums++
				if d.StatisticValues == nil || d.Values != nil || d.Value != nil {
					t.Fatalf("counter datum must be a statistic set only: %+v", d)
				}
			case RequestTime:
				distDatums++
				if d.StatisticValues != nil || d.Value != nil || len(d.Values) == 0 || len(d.Values) != len(d.Counts) {
					t.Fatalf("distribution datum must carry Values and Counts only: %+v", d)
				}
				if len(d.Values) > MaxValuesPerDatum {
					t.Errorf("datum with %d values, limit %d", len(d.Values), MaxValuesPerDatum)
				}
			}
		}
	}
	if !sizeLimited {
		t.Error("no request was cut short by the size budget; the test data is too small to exercise it")
	}
	// Shard granularity: every shard, every stream, and the global series.
	if want := streams*shardsPerStream + streams + 1; counterDatums != want {
		t.Errorf("%d UserRecordsPut datums, want N+S+1 = %d", counterDatums, want)
	}
	if distDatums < 2*wide {
		t.Errorf("%d RequestTime datums for %d wide distributions; want each split", distDatums, wide)
	}
	st := p.Stats()
	if st.DatumsSent != int64(counterDatums+distDatums) || st.Requests != int64(len(calls)) || st.DatumsDropped != 0 {
		t.Errorf("stats %+v disagree with %d requests carrying %d datums", st, len(calls), counterDatums+distDatums)
	}
}

func estimateRequestBytes(in *cloudwatch.PutMetricDataInput) int {
	n := len("Action=PutMetricData&Version=2010-08-01&Namespace=") + 3*len(aws.ToString(in.Namespace))
	for i := range in.MetricData {
		n += estimateDatumBytes(&in.MetricData[i])
	}
	return n
}

// queryOKTransport answers every request with an empty awsQuery PutMetricData response and
// keeps the request bodies.
type queryOKTransport struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (q *queryOKTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	q.bodies = append(q.bodies, b)
	q.mu.Unlock()
	body := `<PutMetricDataResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></PutMetricDataResponse>`
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/xml"}}, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
}

// TestEncodedRequestsFitOneMegabyte checks the size budget against the SDK's real awsQuery
// encoding, uncompressed, for requests made of the largest datums: distributions with 150
// values each.
func TestEncodedRequestsFitOneMegabyte(t *testing.T) {
	reg := NewRegistry()
	for i := range 60 {
		d := reg.Distribution(ProcessingTime, UnitMilliseconds, LevelSummary, Dim(DimStreamName, fmt.Sprintf("a-rather-long-stream-name-%04d", i)))
		for v := 1e-5; v < 1e12; v *= 1.03 {
			d.Observe(v * (1 + float64(i)/1e4))
		}
	}
	rt := &queryOKTransport{}
	client := cloudwatch.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", ""),
		HTTPClient:  &http.Client{Transport: rt},
	}, func(o *cloudwatch.Options) {
		o.BaseEndpoint = aws.String("http://cloudwatch.invalid")
		o.Protocol = awsquery.New(cwschemas.GraniteServiceVersion20100801)
		o.DisableRequestCompression = true
	})
	p := newTestPublisher(t, client, reg, PublisherConfig{Granularity: GranularityStream, BufferSize: 1 << 20})
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Requests < 2 || st.DatumsDropped != 0 || st.Failures != 0 {
		t.Fatalf("stats %+v: want several successful requests", st)
	}
	largest := 0
	valueKey := regexp.MustCompile(`^MetricData\.member\.(\d+)\.Values\.member\.\d+$`)
	for i, b := range rt.bodies {
		largest = max(largest, len(b))
		if len(b) > MaxRequestBytes {
			t.Errorf("request %d body is %d bytes, limit %d", i, len(b), MaxRequestBytes)
		}
		perDatum := map[string]int{}
		for _, kv := range strings.Split(string(b), "&") {
			k, _, _ := strings.Cut(kv, "=")
			k, err := url.QueryUnescape(k)
			if err != nil {
				t.Fatal(err)
			}
			if m := valueKey.FindStringSubmatch(k); m != nil {
				perDatum[m[1]]++
			}
		}
		for d, n := range perDatum {
			if n > MaxValuesPerDatum {
				t.Errorf("request %d datum %s has %d values", i, d, n)
			}
		}
	}
	if largest < MaxRequestBytes/2 {
		t.Errorf("largest request %d bytes; the budget should pack requests close to %d", largest, MaxRequestBytes)
	}
	t.Logf("%d requests, largest body %d bytes", len(rt.bodies), largest)
}

func TestRetriesThrottlingWithBackoff(t *testing.T) {
	checkNoLeak(t)
	reg := NewRegistry()
	reg.Counter(UserRecordsPut, UnitCount, LevelSummary).Add(1)
	fake := &fakeCloudWatch{respond: func(_ context.Context, n int) error {
		if n <= 3 {
			return throttlingErr
		}
		return nil
	}}
	const initial = 20 * time.Millisecond
	p := newTestPublisher(t, fake, reg, PublisherConfig{MaxRetries: 5, InitialBackoff: initial, Interval: time.Hour})
	p.Start()
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Attempts != 4 || st.Retries != 3 || st.Throttled != 3 || st.Failures != 3 || st.Requests != 1 || st.DatumsSent != 1 || st.DatumsDropped != 0 {
		t.Fatalf("stats %+v: want 3 throttled attempts, then success", st)
	}
	if !strings.Contains(st.LastError, "Throttling") || st.LastErrorTime.IsZero() {
		t.Errorf("last error %q at %v", st.LastError, st.LastErrorTime)
	}
	// Exponential backoff with the default ±50% jitter: the k-th wait is at least
	// initial * 2^k / 2. Timers never fire early, so the lower bound is safe to check.
	_, times := fake.snapshot()
	for k := 1; k < len(times); k++ {
		minWait := initial * time.Duration(1<<(k-1)) / 2
		if gap := times[k].Sub(times[k-1]); gap < minWait {
			t.Errorf("wait before attempt %d was %v, want at least %v", k+1, gap, minWait)
		}
	}
}

func TestServerErrorsExhaustRetriesAndDrop(t *testing.T) {
	reg := NewRegistry()
	reg.Counter(UserRecordsPut, UnitCount, LevelSummary, Dim(DimStreamName, "s")).Add(1)
	fake := &fakeCloudWatch{respond: func(context.Context, int) error { return httpStatusErr(503) }}
	p := newTestPublisher(t, fake, reg, PublisherConfig{MaxRetries: 2, InitialBackoff: time.Millisecond})
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	// Stream granularity: the stream series and the global one, both dropped.
	if st.Attempts != 3 || st.Retries != 2 || st.DroppedFailed != 2 || st.DatumsDropped != 2 || st.Requests != 0 || st.Throttled != 0 {
		t.Fatalf("stats %+v: want 3 attempts and 2 datums dropped", st)
	}
}

func TestRejectedRequestIsNotRetried(t *testing.T) {
	reg := NewRegistry()
	reg.Counter(UserRecordsPut, UnitCount, LevelSummary).Add(1)
	fake := &fakeCloudWatch{respond: func(context.Context, int) error {
		return &smithy.GenericAPIError{Code: "InvalidParameterValue", Message: "bad", Fault: smithy.FaultClient}
	}}
	p := newTestPublisher(t, fake, reg, PublisherConfig{MaxRetries: 5, InitialBackoff: time.Millisecond})
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Attempts != 1 || st.DroppedFailed != 1 {
		t.Fatalf("stats %+v: a rejected request must be dropped without retrying", st)
	}
}

// TestRecordingNeverWaitsForAHungCloudWatch hangs every PutMetricData call, ignoring its
// context, and keeps recording across many intervals. Recording completes because it never
// touches the uploader; the bounded buffer drops the oldest data and counts it; Close returns
// at its deadline although the call never returns.
func TestRecordingNeverWaitsForAHungCloudWatch(t *testing.T) {
	checkNoLeak(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	fake := &fakeCloudWatch{respond: func(context.Context, int) error {
		<-release // ignores ctx on purpose: the worst client there is
		return nil
	}}
	reg := NewRegistry()
	p := newTestPublisher(t, fake, reg, PublisherConfig{Interval: 5 * time.Millisecond, BufferSize: 40, RequestTimeout: time.Hour})
	p.Start()

	hot := reg.Counter(UserRecordsReceived, UnitCount, LevelDetailed, Dim(DimStreamName, "s"))
	lat := reg.Distribution(BufferingTime, UnitMilliseconds, LevelSummary, Dim(DimStreamName, "s"))
	const rounds = 30
	var adds int64
	for round := range rounds {
		// New series every round, so each interval has datums to queue.
		for i := range 10 {
			reg.Counter(ErrorsByCode, UnitCount, LevelSummary, Dim(DimErrorCode, fmt.Sprint("E", round, "-", i))).Add(1)
		}
		for range 10_000 {
			hot.Add(1)
			lat.Observe(3)
			adds++
		}
		before := p.Stats().Collections
		deadline := time.Now().Add(10 * time.Second)
		for p.Stats().Collections == before {
			if time.Now().After(deadline) {
				t.Fatal("the collection loop stopped")
			}
			time.Sleep(time.Millisecond)
		}
	}
	if hot.Load() != adds {
		t.Fatalf("counter %d, want %d", hot.Load(), adds)
	}
	st := p.Stats()
	if st.DroppedBufferFull == 0 || st.DatumsQueued > 40+MaxDatumsPerRequest {
		t.Fatalf("stats %+v: want the bounded buffer to drop the oldest data", st)
	}
	if calls, _ := fake.snapshot(); len(calls) != 1 {
		t.Fatalf("%d calls; the one hung call should block the uploader", len(calls))
	}

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want the deadline error", err)
	}
	// The queued requests are dropped once Close gives up; the hung call is counted when it
	// finally returns or is abandoned.
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().DroppedCanceled == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st := p.Stats(); st.DroppedCanceled == 0 || st.DatumsQueued != 0 {
		t.Fatalf("stats after Close %+v: queued data should be counted as dropped", st)
	}
}

// TestCloseCancelsAnInFlightRequest uses a client that honours its context: Close's deadline
// cancels the in-flight call, its datums are counted, and the goroutines exit.
func TestCloseCancelsAnInFlightRequest(t *testing.T) {
	checkNoLeak(t)
	fake := &fakeCloudWatch{respond: func(ctx context.Context, _ int) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	reg := NewRegistry()
	reg.Counter(RecordsSent, UnitCount, LevelSummary).Add(3)
	p := newTestPublisher(t, fake, reg, PublisherConfig{Interval: time.Hour, RequestTimeout: time.Hour})
	p.Start()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want the deadline error", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().DroppedCanceled != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st := p.Stats(); st.DroppedCanceled != 1 || st.Retries != 0 {
		t.Fatalf("stats %+v: the cancelled datum should be dropped, not retried", st)
	}
}

func TestCloseFlushesEverythingAndStops(t *testing.T) {
	checkNoLeak(t)
	fake := &fakeCloudWatch{}
	reg := NewRegistry()
	p := newTestPublisher(t, fake, reg, PublisherConfig{Interval: time.Hour})
	p.Start()
	p.Start() // idempotent
	reg.Counter(RecordsProcessed, UnitCount, LevelSummary, Dim(DimStreamName, "s"), Dim(DimShardID, "0")).Add(9)
	reg.Gauge(LeasesHeld, UnitCount, LevelSummary, Dim(DimWorkerID, "w")).Set(2)
	if err := p.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(t.Context()); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if err := p.Flush(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close = %v, want ErrClosed", err)
	}
	got := map[string]float64{}
	for _, d := range fake.datums() {
		var dims []string
		for _, dim := range d.Dimensions {
			dims = append(dims, aws.ToString(dim.Name)+"="+aws.ToString(dim.Value))
		}
		got[aws.ToString(d.MetricName)+"{"+strings.Join(dims, ",")+"}"] = aws.ToFloat64(d.StatisticValues.Sum)
	}
	want := map[string]float64{
		"RecordsProcessed{StreamName=s}": 9,
		"RecordsProcessed{}":             9,
		"LeasesHeld{WorkerIdentifier=w}": 2,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("datums %v, want %v", got, want)
	}
}

func TestPublishesEveryInterval(t *testing.T) {
	checkNoLeak(t)
	fake := &fakeCloudWatch{}
	reg := NewRegistry()
	c := reg.Counter(BytesSent, UnitBytes, LevelSummary)
	const interval = 20 * time.Millisecond
	p := newTestPublisher(t, fake, reg, PublisherConfig{Interval: interval})
	p.Start()
	defer p.Close(t.Context())
	for round := 1; round <= 3; round++ {
		c.Add(100)
		deadline := time.Now().Add(5 * time.Second)
		for len(fake.datums()) < round && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	ds := fake.datums()
	if len(ds) < 3 {
		t.Fatalf("%d datums after three intervals of traffic", len(ds))
	}
	var sum float64
	for _, d := range ds {
		if ts := aws.ToTime(d.Timestamp); !ts.Equal(ts.Truncate(interval)) {
			t.Errorf("timestamp %v not aligned to the interval", ts)
		}
		if d.Unit != types.StandardUnitBytes {
			t.Errorf("unit %q, want Bytes", d.Unit)
		}
		sum += aws.ToFloat64(d.StatisticValues.Sum)
	}
	if sum != 300 {
		t.Errorf("published sum %g, want 300 (each increase exactly once)", sum)
	}
}

func TestUnstartedPublisherUploadsInline(t *testing.T) {
	checkNoLeak(t)
	fake := &fakeCloudWatch{}
	reg := NewRegistry()
	reg.Counter(LinesRead, UnitCount, LevelSummary).Add(1)
	p := newTestPublisher(t, fake, reg, PublisherConfig{})
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.datums()); n != 1 {
		t.Fatalf("%d datums after an unstarted Flush, want 1", n)
	}
	reg.Counter(LinesRead, UnitCount, LevelSummary).Add(1)
	if err := p.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.datums()); n != 2 {
		t.Fatalf("%d datums after Close, want 2", n)
	}
}

// TestUnstartedCloseRespectsDeadline: Close of a publisher that was never started uploads
// itself, and still returns at its deadline when the client hangs and ignores its context.
func TestUnstartedCloseRespectsDeadline(t *testing.T) {
	checkNoLeak(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	called := make(chan struct{}, 1)
	fake := &fakeCloudWatch{respond: func(context.Context, int) error {
		called <- struct{}{}
		<-release
		return nil
	}}
	reg := NewRegistry()
	reg.Counter(RecordsSent, UnitCount, LevelSummary).Add(1)
	reg.Counter(BytesSent, UnitBytes, LevelSummary).Add(1)
	p := newTestPublisher(t, fake, reg, PublisherConfig{Interval: time.Hour, RequestTimeout: time.Hour})

	// Flush's request hangs; Flush returns when its context ends.
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-called
		cancel()
	}()
	if err := p.Flush(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush = %v, want the cancellation", err)
	}

	// Close's request queues behind the hung one; Close returns at its deadline and drops it.
	reg.Counter(RecordsSent, UnitCount, LevelSummary).Add(1)
	ctx, cancel = context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want the deadline error", err)
	}
	if st := p.Stats(); st.DroppedCanceled != 1 || st.DatumsQueued != 0 {
		t.Fatalf("stats %+v: Close's request should be dropped, not left queued", st)
	}
}

func TestLevelNoneDisablesPublisher(t *testing.T) {
	checkNoLeak(t)
	fake := &fakeCloudWatch{}
	reg := NewRegistry()
	reg.Counter(UserRecordsPut, UnitCount, LevelSummary).Add(1)
	p := newTestPublisher(t, fake, reg, PublisherConfig{Level: LevelNone})
	p.Start()
	if n := publisherGoroutines(); n != 0 {
		t.Errorf("%d goroutines for a disabled publisher", n)
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if calls, _ := fake.snapshot(); len(calls) != 0 {
		t.Fatalf("LevelNone made %d calls", len(calls))
	}
}

func TestInvalidSeriesAreCountedNotSent(t *testing.T) {
	fake := &fakeCloudWatch{}
	reg := NewRegistry()
	reg.Counter(LinesRead, UnitCount, LevelSummary, Dim(DimFile, "/var/log/café.log")).Add(1)
	reg.Gauge(AdaptiveRateLimit, UnitCountPerSecond, LevelDetailed).Set(1e300)
	reg.Counter(LinesRead, "Furlongs", LevelSummary).Add(1)
	reg.Counter(LinesRead, UnitCount, LevelSummary, Dim(DimFile, "/var/log/app.log")).Add(1)
	var logs bytes.Buffer
	p, err := NewCloudWatchPublisher(fake, reg, PublisherConfig{Granularity: GranularityGlobal, Logger: newTestLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	ds := fake.datums()
	if len(ds) != 1 || aws.ToString(ds[0].Dimensions[0].Value) != "/var/log/app.log" {
		t.Fatalf("sent %+v; only the valid series should go out", ds)
	}
	if st := p.Stats(); st.DatumsInvalid != 3 {
		t.Errorf("DatumsInvalid = %d, want 3", st.DatumsInvalid)
	}
	if !strings.Contains(logs.String(), "CloudWatch would reject") {
		t.Errorf("no warning logged: %s", logs.String())
	}
}

func TestNewCloudWatchPublisherValidatesAndDefaults(t *testing.T) {
	reg := NewRegistry()
	fake := &fakeCloudWatch{}
	bad := []PublisherConfig{
		{Namespace: "AWS/Kinesis"},
		{Namespace: ":x"},
		{Namespace: strings.Repeat("n", 256)},
		{Interval: -time.Second},
		{ExtraDimensions: []Dimension{Dim(DimHost, "a"), Dim(DimHost, "b")}},
		{ExtraDimensions: []Dimension{Dim(DimHost, "")}},
	}
	for _, cfg := range bad {
		if _, err := NewCloudWatchPublisher(fake, reg, cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	if _, err := NewCloudWatchPublisher(nil, reg, PublisherConfig{}); err == nil {
		t.Error("nil client accepted")
	}
	if _, err := NewCloudWatchPublisher(fake, nil, PublisherConfig{}); err == nil {
		t.Error("nil registry accepted")
	}
	p, err := NewCloudWatchPublisher(fake, reg, PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c := p.cfg
	if c.Namespace != "Shardline" || c.Level != LevelDetailed || c.Granularity != GranularityStream ||
		c.Interval != time.Minute || c.GaugeSampleInterval != 5*time.Second || c.BufferSize != 10_000 ||
		c.MaxRetries != 3 || c.InitialBackoff != 200*time.Millisecond || c.MaxBackoff != 10*time.Second ||
		c.RequestTimeout != 10*time.Second || c.Logger == nil || c.Now == nil {
		t.Errorf("defaults not as documented: %+v", c)
	}
}

func TestQueueDropsOldestFirst(t *testing.T) {
	q := newQueue(10)
	mk := func(n int) request { return request{datums: n} }
	if d, _ := q.push([]request{mk(4), mk(4)}); d != 0 {
		t.Fatalf("dropped %d below the limit", d)
	}
	d, last := q.push([]request{mk(4)})
	if d != 4 || last != 3 || q.queued() != 8 {
		t.Fatalf("dropped %d, last seq %d, queued %d; want the oldest 4 dropped", d, last, q.queued())
	}
	if r, _ := q.pop(); r.seq != 2 {
		t.Fatalf("head is request %d, want 2", r.seq)
	}
	// A single request bigger than the buffer is still kept, so it can go out.
	if d, _ := q.push([]request{mk(50)}); d != 4 || q.queued() != 50 {
		t.Fatalf("oversized push: dropped %d, queued %d", d, q.queued())
	}
}
