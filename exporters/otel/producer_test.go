package shardlineotel_test

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/shardline/shardline/exporters/internal/roletest"
	shardlineotel "github.com/shardline/shardline/exporters/otel"
	"github.com/shardline/shardline/metrics"
)

// reader returns a ManualReader fed by a Producer over reg, inside a MeterProvider as a
// program would set it up.
func reader(t *testing.T, reg *metrics.Registry, opts shardlineotel.Options) *sdkmetric.ManualReader {
	t.Helper()
	p, err := shardlineotel.NewProducer(reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	r := sdkmetric.NewManualReader(sdkmetric.WithProducer(p))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return r
}

func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != shardlineotel.ScopeName {
			continue
		}
		for _, m := range sm.Metrics {
			if _, dup := out[m.Name]; dup {
				t.Fatalf("metric %s appears twice", m.Name)
			}
			out[m.Name] = m
		}
	}
	return out
}

// has reports whether attrs include every "k=v" of match.
func has(attrs attribute.Set, match []string) bool {
	for _, kv := range match {
		k, v, _ := strings.Cut(kv, "=")
		got, ok := attrs.Value(attribute.Key(k))
		if v == "" && !ok {
			continue
		}
		if !ok || got.AsString() != v {
			return false
		}
	}
	return true
}

func value(t *testing.T, ms map[string]metricdata.Metrics, name string, match ...string) float64 {
	t.Helper()
	m, ok := ms[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	var v float64
	n := 0
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		if d.Temporality != metricdata.CumulativeTemporality || !d.IsMonotonic {
			t.Errorf("%s is not a cumulative monotonic sum", name)
		}
		for _, p := range d.DataPoints {
			if has(p.Attributes, match) {
				v += float64(p.Value)
				n++
				if p.StartTime.IsZero() || p.StartTime.After(p.Time) {
					t.Errorf("%s: start %v, time %v", name, p.StartTime, p.Time)
				}
			}
		}
	case metricdata.Gauge[float64]:
		for _, p := range d.DataPoints {
			if has(p.Attributes, match) {
				v += p.Value
				n++
			}
		}
	default:
		t.Fatalf("%s is a %T", name, m.Data)
	}
	if n == 0 {
		t.Fatalf("no point of %s with %v", name, match)
	}
	return v
}

func histograms(t *testing.T, ms map[string]metricdata.Metrics, name string, match ...string) []metricdata.HistogramDataPoint[float64] {
	t.Helper()
	h, ok := ms[name].Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s is a %T, not a histogram", name, ms[name].Data)
	}
	if h.Temporality != metricdata.CumulativeTemporality {
		t.Errorf("%s is not cumulative", name)
	}
	var out []metricdata.HistogramDataPoint[float64]
	for _, p := range h.DataPoints {
		if has(p.Attributes, match) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no point of %s with %v", name, match)
	}
	return out
}

// checkPoint checks a histogram point against raw observations in the recorded unit, div
// converting them to the exported one: bucket i holds the observations from bound i-1
// (included, as Shardline buckets hold their lower bound) to bound i.
func checkPoint(t *testing.T, name string, p metricdata.HistogramDataPoint[float64], raw []float64, div float64) {
	t.Helper()
	if p.Count != uint64(len(raw)) || len(p.BucketCounts) != len(p.Bounds)+1 {
		t.Fatalf("%s: count %d with %d counts for %d bounds, want %d observations", name, p.Count, len(p.BucketCounts), len(p.Bounds), len(raw))
	}
	for i, c := range p.BucketCounts {
		lo, hi := math.Inf(-1), math.Inf(1)
		if i > 0 {
			lo = p.Bounds[i-1]
		}
		if i < len(p.Bounds) {
			hi = p.Bounds[i]
		}
		var want uint64
		for _, v := range raw {
			if lo <= v/div && v/div < hi {
				want++
			}
		}
		if c != want {
			t.Errorf("%s: bucket [%v, %v) has %d, want %d", name, lo, hi, c, want)
		}
	}
	mn, _ := p.Min.Value()
	mx, _ := p.Max.Value()
	if mn != slices.Min(raw)/div || mx != slices.Max(raw)/div {
		t.Errorf("%s: min %v max %v, want %v and %v", name, mn, mx, slices.Min(raw)/div, slices.Max(raw)/div)
	}
}

// TestReadBackRealRoles runs a producer, a consumer and an agent against an in-memory
// Kinesis and reads their metrics back through an SDK ManualReader.
func TestReadBackRealRoles(t *testing.T) {
	reg := metrics.NewRegistry()
	r := reader(t, reg, shardlineotel.Options{})
	var during map[string]metricdata.Metrics
	res := roletest.Run(t, reg, func() { during = collect(t, r) })
	ms := collect(t, r)

	orders, logs := "stream_name="+roletest.OrdersStream, "stream_name="+roletest.LogStream
	checks := []struct {
		name  string
		match []string
		want  float64
	}{
		{"shardline.user_records_put", []string{orders}, float64(res.Producer.UserRecordsPut)},
		{"shardline.user_records_data_put_bytes", []string{orders}, float64(res.Producer.UserRecordsDataPut)},
		{"shardline.kinesis_records_put", []string{orders}, float64(res.Producer.KinesisRecordsPut)},
		{"shardline.throttled_records", []string{orders}, float64(res.Producer.ThrottledRecords)},
		{"shardline.errors_by_code", []string{orders, "error_code=ProvisionedThroughputExceededException", "operation="}, roletest.Throttled},
		{"shardline.records_processed", []string{orders}, float64(res.Consumer.RecordsProcessed)},
		{"shardline.processed_bytes", []string{orders}, float64(res.Consumer.BytesProcessed)},
		{"shardline.leases_taken", []string{orders, "worker_identifier=" + roletest.WorkerID}, float64(res.Consumer.LeasesTaken)},
		{"shardline.lines_read", []string{logs}, float64(res.Agent.LinesRead)},
		{"shardline.records_sent", []string{logs}, float64(res.Agent.RecordsSent)},
		{"shardline.sent_bytes", []string{logs}, float64(res.Agent.BytesAcked)},
	}
	for _, c := range checks {
		if got := value(t, ms, c.name, c.match...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.match, got, c.want)
		}
	}
	if res.Producer.UserRecordsPut != roletest.Records || res.Consumer.RecordsProcessed != roletest.Records ||
		res.Agent.LinesRead != roletest.Lines || res.Agent.BytesAcked != res.LineBytes || res.Producer.ThrottledRecords != roletest.Throttled {
		t.Fatalf("unexpected run: %+v", res)
	}
	for name, unit := range map[string]string{
		"shardline.user_records_put": "{count}", "shardline.processed_bytes": "By",
		"shardline.buffering_time": "s", "shardline.adaptive_rate_limit": "{count}/s",
	} {
		if got := ms[name].Unit; got != unit {
			t.Errorf("%s has unit %q, want %q", name, got, unit)
		}
	}

	// Gauges, read while the consumer held its leases.
	if got := value(t, during, "shardline.leases_held", orders, "worker_identifier="+roletest.WorkerID); got != roletest.OrdersShards {
		t.Errorf("shardline.leases_held = %v while the worker held %d leases", got, roletest.OrdersShards)
	}
	if g := during["shardline.behind_latest"].Data.(metricdata.Gauge[float64]); len(g.DataPoints) != roletest.OrdersShards || during["shardline.behind_latest"].Unit != "s" {
		t.Errorf("shardline.behind_latest: %d points, unit %q; want one per shard in s", len(g.DataPoints), during["shardline.behind_latest"].Unit)
	}

	// Histograms: UserRecordsPerKinesisRecord's raw observations are known exactly.
	p := histograms(t, ms, "shardline.user_records_per_kinesis_record", orders)[0]
	checkPoint(t, "user records per Kinesis record", p, res.UserRecordsPerKinesisRecord, 1)
	if p.Sum != roletest.Records {
		t.Errorf("user records per Kinesis record sum to %v, want %d", p.Sum, roletest.Records)
	}
	var batches uint64
	for _, p := range histograms(t, ms, "shardline.processing_time", orders) {
		batches += p.Count
	}
	if batches != uint64(res.Consumer.Batches) || batches == 0 {
		t.Errorf("processing time histograms count %d batches, consumer reports %d", batches, res.Consumer.Batches)
	}
	bt := histograms(t, ms, "shardline.buffering_time", orders)[0]
	snap, _ := reg.Snapshot().Find(metrics.BufferingTime, metrics.Dim(metrics.DimStreamName, roletest.OrdersStream))
	mn, _ := bt.Min.Value()
	if bt.Count != uint64(snap.Distribution.Count) || math.Abs(bt.Sum-snap.Distribution.Sum/1000) > 1e-12 || mn != snap.Distribution.Min/1000 {
		t.Errorf("buffering time: count %d sum %v min %v s, registry has %d, %v and %v ms", bt.Count, bt.Sum, mn, snap.Distribution.Count, snap.Distribution.Sum, snap.Distribution.Min)
	}
}

func TestHistogramBuckets(t *testing.T) {
	raw := []float64{0.5, 1, 1, 1.3, 70, 3000} // milliseconds
	for _, tc := range []struct {
		perOctave int
		want      []float64 // bounds in seconds
	}{
		{1, []float64{0.001, 0.002, 0.128, 4.096}},
		{8, []float64{0.0005625, 0.001125, 0.001375, 0.072, 3.072}},
		{32, []float64{0.000515625, 0.00103125, 0.0013125, 0.072, 3.008}},
	} {
		reg := metrics.NewRegistry()
		d := reg.Distribution(metrics.RenewalLatency, metrics.UnitMilliseconds, metrics.LevelDetailed, metrics.Dim(metrics.DimStreamName, "s"))
		for _, v := range raw {
			d.Observe(v)
		}
		p := histograms(t, collect(t, reader(t, reg, shardlineotel.Options{BucketsPerOctave: tc.perOctave})), "shardline.renewal_latency", "stream_name=s")[0]
		if !slices.Equal(p.Bounds, tc.want) {
			t.Errorf("%d per octave: bounds %v, want %v", tc.perOctave, p.Bounds, tc.want)
		}
		checkPoint(t, "renewal latency", p, raw, 1000)
	}
}

func TestKindsUnitsLevelsAndStartTimes(t *testing.T) {
	reg := metrics.NewRegistry()
	shard := []metrics.Dimension{metrics.Dim(metrics.DimStreamName, "s"), metrics.Dim(metrics.DimShardID, "shardId-1")}
	put := reg.Counter(metrics.UserRecordsPut, metrics.UnitCount, metrics.LevelSummary, shard...)
	put.Add(7)
	reg.Counter(metrics.UserRecordsReceived, metrics.UnitCount, metrics.LevelDetailed, shard...).Add(9)
	reg.Gauge(metrics.MillisBehindLatest, metrics.UnitMilliseconds, metrics.LevelSummary, shard...).Set(1500)
	reg.Gauge(metrics.LeasesHeld, metrics.UnitCount, metrics.LevelSummary, shard...) // never set

	r := reader(t, reg, shardlineotel.Options{})
	ms := collect(t, r)
	if got := value(t, ms, "shardline.behind_latest"); got != 1.5 {
		t.Errorf("behind latest = %v, want 1.5 s", got)
	}
	if _, ok := ms["shardline.leases_held"]; ok {
		t.Error("a gauge never set is exported")
	}
	if !strings.Contains(ms["shardline.user_records_put"].Description, "UserRecordsPut") {
		t.Errorf("description %q does not name the Shardline metric", ms["shardline.user_records_put"].Description)
	}
	first := ms["shardline.user_records_put"].Data.(metricdata.Sum[int64]).DataPoints[0].StartTime

	// The start time stays while the series lives, and moves when it is removed and comes back.
	put.Add(1)
	ms = collect(t, r)
	if p := ms["shardline.user_records_put"].Data.(metricdata.Sum[int64]).DataPoints[0]; p.StartTime != first || p.Value != 8 {
		t.Errorf("second collection: start %v value %d, want %v and 8", p.StartTime, p.Value, first)
	}
	reg.Remove(metrics.UserRecordsPut, shard...)
	collect(t, r)
	reg.Counter(metrics.UserRecordsPut, metrics.UnitCount, metrics.LevelSummary, shard...).Add(1)
	ms = collect(t, r)
	if p := ms["shardline.user_records_put"].Data.(metricdata.Sum[int64]).DataPoints[0]; !p.StartTime.After(first) || p.Value != 1 {
		t.Errorf("series registered again: start %v (first %v) value %d", p.StartTime, first, p.Value)
	}

	if ms = collect(t, reader(t, reg, shardlineotel.Options{Level: metrics.LevelSummary})); ms["shardline.user_records_received"].Data != nil {
		t.Error("a detailed series is exported at LevelSummary")
	}
	if ms = collect(t, reader(t, reg, shardlineotel.Options{Level: metrics.LevelNone})); len(ms) != 0 {
		t.Errorf("LevelNone exports %d metrics", len(ms))
	}
}

func TestNewProducerRejectsBadOptions(t *testing.T) {
	reg := metrics.NewRegistry()
	for _, tc := range []struct {
		reg  *metrics.Registry
		opts shardlineotel.Options
		want string
	}{
		{nil, shardlineotel.Options{}, "nil Registry"},
		{reg, shardlineotel.Options{BucketsPerOctave: 12}, "BucketsPerOctave 12 must be 1, 2, 4, 8, 16 or 32"},
		{reg, shardlineotel.Options{Level: 7}, "Options.Level"},
	} {
		if _, err := shardlineotel.NewProducer(tc.reg, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewProducer(%v, %+v) = %v, want an error containing %q", tc.reg, tc.opts, err, tc.want)
		}
	}
}

func TestMetricNameMatchesPrometheusTranslation(t *testing.T) {
	for _, tc := range []struct {
		name     string
		unit     metrics.Unit
		wantName string
		wantUnit string
	}{
		{metrics.BufferingTime, metrics.UnitMilliseconds, "shardline.buffering_time", "s"},
		{metrics.MillisBehindLatest, metrics.UnitMilliseconds, "shardline.behind_latest", "s"},
		{metrics.BytesProcessed, metrics.UnitBytes, "shardline.processed_bytes", "By"},
		{metrics.UserRecordsDataPut, metrics.UnitBytes, "shardline.user_records_data_put_bytes", "By"},
		{metrics.DynamoDBRequests, metrics.UnitCount, "shardline.dynamodb_requests", "{count}"},
		{metrics.AdaptiveRateLimit, metrics.UnitCountPerSecond, "shardline.adaptive_rate_limit", "{count}/s"},
	} {
		if n, u := shardlineotel.MetricName(tc.name, tc.unit); n != tc.wantName || u != tc.wantUnit {
			t.Errorf("MetricName(%s, %s) = %s, %s; want %s, %s", tc.name, tc.unit, n, u, tc.wantName, tc.wantUnit)
		}
	}
}
