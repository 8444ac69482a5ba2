package metrics_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/shardline/shardline/internal/testenv"
	"github.com/shardline/shardline/metrics"
)

// These tests publish to moto's CloudWatch and read the data back. moto 5.2.1 differs from
// CloudWatch in ways the assertions account for, each noted where it matters:
//
//   - GetMetricStatistics matches dimensions as a subset: a query for StreamName=s also
//     returns the datums of every shard of s, and a query without dimensions returns every
//     datum of the metric. CloudWatch matches the dimension set exactly.
//   - ListMetrics lists a metric once per datum stored (Values are stored one per count) for
//     metrics with no or several dimensions; the tests de-duplicate.
//   - Values/Counts are stored by repeating each value int(count) times, so fractional counts
//     are truncated; ExtendedStatistics (percentiles) are accepted and answered empty.
//   - No request limit is enforced (1,001 datums, 31 dimensions, 151 values, 1e200, unknown
//     units are all accepted), so limits are tested against a recording client instead.

type series struct {
	name string
	dims string
}

func dimsKey(dims []types.Dimension) string {
	parts := make([]string, len(dims))
	for i, d := range dims {
		parts[i] = aws.ToString(d.Name) + "=" + aws.ToString(d.Value)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func listSeries(t *testing.T, c *cloudwatch.Client, namespace string) []series {
	t.Helper()
	seen := map[series]bool{}
	pages := cloudwatch.NewListMetricsPaginator(c, &cloudwatch.ListMetricsInput{Namespace: aws.String(namespace)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(t.Context())
		if err != nil {
			t.Fatalf("ListMetrics: %v", err)
		}
		for _, m := range page.Metrics {
			seen[series{aws.ToString(m.MetricName), dimsKey(m.Dimensions)}] = true
		}
	}
	var out []series
	for s := range seen {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b series) int { return strings.Compare(a.name+"{"+a.dims, b.name+"{"+b.dims) })
	return out
}

type stats struct {
	sum, count, min, max float64
	unit                 types.StandardUnit
}

func getStats(t *testing.T, c *cloudwatch.Client, namespace, name string, dims ...metrics.Dimension) stats {
	t.Helper()
	var cwDims []types.Dimension
	for _, d := range dims {
		cwDims = append(cwDims, types.Dimension{Name: aws.String(d.Name), Value: aws.String(d.Value)})
	}
	now := time.Now()
	out, err := c.GetMetricStatistics(t.Context(), &cloudwatch.GetMetricStatisticsInput{
		Namespace:  aws.String(namespace),
		MetricName: aws.String(name),
		Dimensions: cwDims,
		StartTime:  aws.Time(now.Add(-3 * time.Hour)),
		EndTime:    aws.Time(now.Add(time.Hour)),
		Period:     aws.Int32(86400),
		Statistics: []types.Statistic{types.StatisticSum, types.StatisticSampleCount, types.StatisticMinimum, types.StatisticMaximum},
	})
	if err != nil {
		t.Fatalf("GetMetricStatistics %s %v: %v", name, dims, err)
	}
	if len(out.Datapoints) != 1 {
		t.Fatalf("GetMetricStatistics %s %v: %d datapoints, want 1", name, dims, len(out.Datapoints))
	}
	dp := out.Datapoints[0]
	return stats{aws.ToFloat64(dp.Sum), aws.ToFloat64(dp.SampleCount), aws.ToFloat64(dp.Minimum), aws.ToFloat64(dp.Maximum), dp.Unit}
}

func shard(stream string, n int) []metrics.Dimension {
	return []metrics.Dimension{metrics.Dim(metrics.DimStreamName, stream), metrics.Dim(metrics.DimShardID, fmt.Sprintf("shardId-%012d", n))}
}

func TestPublishToMoto(t *testing.T) {
	client := testenv.CloudWatch(t, nil)
	ns := testenv.UniqueName(t, "sl")
	reg := metrics.NewRegistry()

	put := func(stream string, n int) *metrics.Counter {
		return reg.Counter(metrics.UserRecordsPut, metrics.UnitCount, metrics.LevelSummary, shard(stream, n)...)
	}
	put("a", 0).Add(10)
	put("a", 1).Add(5)
	put("b", 0).Add(7)
	reg.Counter(metrics.ErrorsByCode, metrics.UnitCount, metrics.LevelSummary,
		append(shard("a", 0), metrics.Dim(metrics.DimErrorCode, "ProvisionedThroughputExceededException"))...).Add(3)
	reg.Gauge(metrics.UserRecordsPending, metrics.UnitCount, metrics.LevelDetailed, metrics.Dim(metrics.DimStreamName, "a")).Set(42)
	bt0 := reg.Distribution(metrics.BufferingTime, metrics.UnitMilliseconds, metrics.LevelSummary, shard("a", 0)...)
	for _, ms := range []float64{10, 20, 30} {
		bt0.Observe(ms)
	}
	reg.Distribution(metrics.BufferingTime, metrics.UnitMilliseconds, metrics.LevelSummary, shard("a", 1)...).
		ObserveDuration(40 * time.Millisecond)

	pub, err := metrics.NewCloudWatchPublisher(client, reg, metrics.PublisherConfig{
		Namespace:           ns,
		Granularity:         metrics.GranularityShard,
		Interval:            time.Hour,
		GaugeSampleInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	pub.Start()
	if err := pub.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := pub.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Flush sends 15 datums; Close samples the gauge once more and sends its 2 datums.
	st := pub.Stats()
	if st.DatumsDropped != 0 || st.Failures != 0 || st.Requests != 2 || st.DatumsSent != 17 {
		t.Fatalf("publisher stats %+v", st)
	}

	// Every level of the roll-up exists: N shards + S streams + 1 global series per metric.
	got := listSeries(t, client, ns)
	want := []series{
		{"BufferingTime", ""},
		{"BufferingTime", "ShardId=shardId-000000000000,StreamName=a"},
		{"BufferingTime", "ShardId=shardId-000000000001,StreamName=a"},
		{"BufferingTime", "StreamName=a"},
		{"ErrorsByCode", "ErrorCode=ProvisionedThroughputExceededException"},
		{"ErrorsByCode", "ErrorCode=ProvisionedThroughputExceededException,ShardId=shardId-000000000000,StreamName=a"},
		{"ErrorsByCode", "ErrorCode=ProvisionedThroughputExceededException,StreamName=a"},
		{"UserRecordsPending", ""},
		{"UserRecordsPending", "StreamName=a"},
		{"UserRecordsPut", ""},
		{"UserRecordsPut", "ShardId=shardId-000000000000,StreamName=a"},
		{"UserRecordsPut", "ShardId=shardId-000000000000,StreamName=b"},
		{"UserRecordsPut", "ShardId=shardId-000000000001,StreamName=a"},
		{"UserRecordsPut", "StreamName=a"},
		{"UserRecordsPut", "StreamName=b"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ListMetrics:\n got %v\nwant %v", got, want)
	}

	check := func(name string, want stats, dims ...metrics.Dimension) {
		t.Helper()
		got := getStats(t, client, ns, name, dims...)
		if got != want {
			t.Errorf("%s %v: got %+v, want %+v", name, dims, got, want)
		}
	}
	// A shard series is one statistic set: the counter's increase.
	check(metrics.UserRecordsPut, stats{10, 1, 10, 10, types.StandardUnitCount}, shard("a", 0)...)
	// Stream b: its stream datum (7) plus, because moto matches dimension subsets, its shard
	// datum (7). CloudWatch would return the stream datum alone: sum 7, one sample.
	check(metrics.UserRecordsPut, stats{14, 2, 7, 7, types.StandardUnitCount}, metrics.Dim(metrics.DimStreamName, "b"))
	// Stream a: the stream datum merges both shards (2 samples, 15, min 5, max 10); moto adds
	// the two shard datums.
	check(metrics.UserRecordsPut, stats{30, 4, 5, 10, types.StandardUnitCount}, metrics.Dim(metrics.DimStreamName, "a"))
	// No dimensions: moto returns every datum of the metric, i.e. each increase three times
	// (shard, stream, global). CloudWatch would return the global datum: 3 samples, sum 22.
	check(metrics.UserRecordsPut, stats{66, 9, 5, 10, types.StandardUnitCount})
	check(metrics.ErrorsByCode, stats{3, 1, 3, 3, types.StandardUnitCount},
		append(shard("a", 0), metrics.Dim(metrics.DimErrorCode, "ProvisionedThroughputExceededException"))...)
	// The gauge, recorded per stream, is sampled at the flush and again at Close, one datum
	// each.
	pending := getStats(t, client, ns, metrics.UserRecordsPending, metrics.Dim(metrics.DimStreamName, "a"))
	if pending != (stats{84, 2, 42, 42, types.StandardUnitCount}) {
		t.Errorf("UserRecordsPending: %+v, want samples of 42", pending)
	}

	// Distributions travel as Values/Counts. Min and Max are exact; 20 is sent as the
	// midpoint of its bucket [20, 20.5), so Sum is within the histogram's 1.6%.
	bt := getStats(t, client, ns, metrics.BufferingTime, shard("a", 0)...)
	if bt.count != 3 || bt.min != 10 || bt.max != 30 || math.Abs(bt.sum-60)/60 > 1.0/64 || bt.unit != types.StandardUnitMilliseconds {
		t.Errorf("BufferingTime shard 0: %+v, want 3 samples from 10 to 30 summing to about 60", bt)
	}
	// Global: 4 observations at each of three levels under moto's subset match.
	if g := getStats(t, client, ns, metrics.BufferingTime); g.count != 12 || g.min != 10 || g.max != 40 {
		t.Errorf("BufferingTime global: %+v, want 12 samples (4 per level) from 10 to 40", g)
	}
}

func TestPublishToMotoSummaryLevelGlobalGranularity(t *testing.T) {
	client := testenv.CloudWatch(t, nil)
	ns := testenv.UniqueName(t, "sl")
	reg := metrics.NewRegistry()
	reg.Counter(metrics.UserRecordsPut, metrics.UnitCount, metrics.LevelSummary, shard("a", 0)...).Add(4)
	reg.Counter(metrics.UserRecordsReceived, metrics.UnitCount, metrics.LevelDetailed, shard("a", 0)...).Add(4)
	pub, err := metrics.NewCloudWatchPublisher(client, reg, metrics.PublisherConfig{
		Namespace:       ns,
		Level:           metrics.LevelSummary,
		Granularity:     metrics.GranularityGlobal,
		ExtraDimensions: []metrics.Dimension{metrics.Dim(metrics.DimHost, "worker-1")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Close(t.Context()); err != nil { // never started: Close uploads inline
		t.Fatal(err)
	}
	got := listSeries(t, client, ns)
	want := []series{{"UserRecordsPut", "Host=worker-1"}}
	if !slices.Equal(got, want) {
		t.Fatalf("ListMetrics: got %v, want %v", got, want)
	}
	s := getStats(t, client, ns, metrics.UserRecordsPut, metrics.Dim(metrics.DimHost, "worker-1"))
	if s != (stats{4, 1, 4, 4, types.StandardUnitCount}) {
		t.Errorf("UserRecordsPut: %+v", s)
	}
}

// faultTransport answers the first `faults` PutMetricData requests itself with the given
// status and awsQuery error code, and passes everything else to moto.
type faultTransport struct {
	next   http.RoundTripper
	faults int32
	status int
	code   string
	hits   atomic.Int32
}

func (f *faultTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.hits.Add(1) > f.faults {
		return f.next.RoundTrip(r)
	}
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	body := fmt.Sprintf(`<ErrorResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><Error><Type>Sender</Type><Code>%s</Code><Message>injected</Message></Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>`, f.code)
	return &http.Response{
		StatusCode: f.status,
		Header:     http.Header{"Content-Type": {"text/xml"}},
		Body:       io.NopCloser(strings.NewReader(body)),
		Request:    r,
	}, nil
}

// TestMotoThrottlingAnd5xxAreRetried sends real SDK errors (parsed from awsQuery error
// responses) through the publisher's retry logic, then lets the request reach moto.
func TestMotoThrottlingAnd5xxAreRetried(t *testing.T) {
	cases := []struct {
		status       int
		code         string
		wantThrottle int64
	}{
		{400, "Throttling", 3},
		{503, "ServiceUnavailable", 0},
		{500, "InternalFailure", 0},
	}
	for _, c := range cases {
		t.Run(c.code, func(t *testing.T) {
			ft := &faultTransport{next: http.DefaultTransport, faults: 3, status: c.status, code: c.code}
			client := testenv.CloudWatch(t, testenv.HTTPClient(ft))
			ns := testenv.UniqueName(t, "sl")
			reg := metrics.NewRegistry()
			reg.Counter(metrics.RecordsSent, metrics.UnitCount, metrics.LevelSummary).Add(11)
			pub, err := metrics.NewCloudWatchPublisher(client, reg, metrics.PublisherConfig{
				Namespace: ns, MaxRetries: 4, InitialBackoff: 10 * time.Millisecond, Interval: time.Hour,
			})
			if err != nil {
				t.Fatal(err)
			}
			pub.Start()
			if err := pub.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			st := pub.Stats()
			if st.Attempts != 4 || st.Retries != 3 || st.Throttled != c.wantThrottle || st.Requests != 1 || st.DatumsDropped != 0 {
				t.Fatalf("stats %+v: want 3 failed attempts then success", st)
			}
			if !strings.Contains(st.LastError, c.code) {
				t.Errorf("last error %q does not name %s", st.LastError, c.code)
			}
			if s := getStats(t, client, ns, metrics.RecordsSent); s.sum != 11 || s.count != 1 {
				t.Errorf("RecordsSent in moto: %+v, want the one datum", s)
			}
		})
	}
}

// hangTransport holds every request until its context ends, like a connection that never
// answers.
type hangTransport struct {
	mu   sync.Mutex
	hung int
}

func (h *hangTransport) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hung
}

func (h *hangTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.hung++
	h.mu.Unlock()
	<-r.Context().Done()
	return nil, r.Context().Err()
}

// TestMotoHungConnection: each attempt times out after RequestTimeout and is retried; the
// data is then dropped and counted, and recording went on meanwhile.
func TestMotoHungConnection(t *testing.T) {
	ht := &hangTransport{}
	client := testenv.CloudWatch(t, testenv.HTTPClient(ht))
	reg := metrics.NewRegistry()
	c := reg.Counter(metrics.LinesRead, metrics.UnitCount, metrics.LevelSummary)
	c.Add(1)
	pub, err := metrics.NewCloudWatchPublisher(client, reg, metrics.PublisherConfig{
		Namespace: testenv.UniqueName(t, "sl"), MaxRetries: 2, InitialBackoff: time.Millisecond,
		RequestTimeout: 50 * time.Millisecond, Interval: time.Hour, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	pub.Start()
	done := make(chan error, 1)
	go func() { done <- pub.Flush(context.Background()) }()
	// Flush has collected its interval once its first attempt hangs; only then are the later
	// increases sure to fall into Close's collection rather than Flush's.
	for ht.count() == 0 {
		time.Sleep(time.Millisecond)
	}
	for range 100_000 {
		c.Add(1) // returns while the upload hangs
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := pub.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	st := pub.Stats()
	// Flush's request: 3 timed-out attempts, dropped. Close's request (the 100,000 later
	// increases) fares the same.
	if st.Attempts != 6 || st.Retries != 4 || st.DroppedFailed != 2 || st.Requests != 0 {
		t.Fatalf("stats %+v: want every attempt to time out and both datums dropped", st)
	}
	if c.Load() != 100_001 {
		t.Errorf("counter %d, want 100001", c.Load())
	}
}
