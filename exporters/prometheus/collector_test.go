package shardlineprom_test

import (
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shardline/shardline/exporters/internal/roletest"
	shardlineprom "github.com/shardline/shardline/exporters/prometheus"
	"github.com/shardline/shardline/metrics"
)

// scrape serves reg's collector through promhttp, as a Prometheus server would reach it,
// and parses the text exposition it returns.
func scrape(t *testing.T, col prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	pr := prometheus.NewPedanticRegistry()
	pr.MustRegister(col)
	srv := httptest.NewServer(promhttp.HandlerFor(pr, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse the exposition: %v", err)
	}
	return fams
}

// series returns the metrics of a family whose labels include all of match ("k=v" pairs).
func series(t *testing.T, fams map[string]*dto.MetricFamily, name string, match ...string) []*dto.Metric {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric %s in the scrape", name)
	}
	var out []*dto.Metric
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		ok := true
		for _, kv := range match {
			k, v, _ := strings.Cut(kv, "=")
			ok = ok && labels[k] == v
		}
		if ok {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no series of %s with %v", name, match)
	}
	return out
}

func sum(ms []*dto.Metric) float64 {
	var v float64
	for _, m := range ms {
		switch {
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Gauge != nil:
			v += m.Gauge.GetValue()
		}
	}
	return v
}

func newCollector(t *testing.T, reg *metrics.Registry, opts shardlineprom.Options) *shardlineprom.Collector {
	t.Helper()
	c, err := shardlineprom.NewCollector(reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestScrapeRealRoles runs a producer, a consumer and an agent against an in-memory Kinesis
// and checks that a scrape reports what they did, as their own Stats count it.
func TestScrapeRealRoles(t *testing.T) {
	reg := metrics.NewRegistry()
	col := newCollector(t, reg, shardlineprom.Options{})
	var during map[string]*dto.MetricFamily
	res := roletest.Run(t, reg, func() { during = scrape(t, col) })
	fams := scrape(t, col)

	orders, logs := "stream_name="+roletest.OrdersStream, "stream_name="+roletest.LogStream
	checks := []struct {
		name  string
		match []string
		want  float64
	}{
		// Producer.
		{"shardline_user_records_put_total", []string{orders}, float64(res.Producer.UserRecordsPut)},
		{"shardline_user_records_data_put_bytes_total", []string{orders}, float64(res.Producer.UserRecordsDataPut)},
		{"shardline_kinesis_records_put_total", []string{orders}, float64(res.Producer.KinesisRecordsPut)},
		{"shardline_kinesis_records_data_put_bytes_total", []string{orders}, float64(res.Producer.KinesisRecordsDataPut)},
		{"shardline_throttled_records_total", []string{orders}, float64(res.Producer.ThrottledRecords)},
		{"shardline_errors_by_code_total", []string{orders, "error_code=ProvisionedThroughputExceededException", "operation="}, roletest.Throttled},
		// Consumer.
		{"shardline_records_processed_total", []string{orders}, float64(res.Consumer.RecordsProcessed)},
		{"shardline_processed_bytes_total", []string{orders}, float64(res.Consumer.BytesProcessed)},
		{"shardline_leases_taken_total", []string{orders, "worker_identifier=" + roletest.WorkerID}, float64(res.Consumer.LeasesTaken)},
		// Agent.
		{"shardline_lines_read_total", []string{logs}, float64(res.Agent.LinesRead)},
		{"shardline_records_sent_total", []string{logs}, float64(res.Agent.RecordsSent)},
		{"shardline_sent_bytes_total", []string{logs}, float64(res.Agent.BytesAcked)},
	}
	for _, c := range checks {
		if got := sum(series(t, fams, c.name, c.match...)); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.match, got, c.want)
		}
	}
	// The roles did what the run asked, so the numbers above are not trivially equal.
	if res.Producer.UserRecordsPut != roletest.Records || res.Consumer.RecordsProcessed != roletest.Records ||
		res.Agent.LinesRead != roletest.Lines || res.Agent.BytesAcked != res.LineBytes || res.Producer.ThrottledRecords != roletest.Throttled {
		t.Fatalf("unexpected run: %+v", res)
	}

	// Gauges, read while the consumer held its leases.
	if got := sum(series(t, during, "shardline_leases_held", orders, "worker_identifier="+roletest.WorkerID)); got != roletest.OrdersShards {
		t.Errorf("shardline_leases_held = %v while the worker held %d leases", got, roletest.OrdersShards)
	}
	if got := len(series(t, during, "shardline_behind_latest_seconds", orders)); got != roletest.OrdersShards {
		t.Errorf("shardline_behind_latest_seconds has %d series, want one per shard", got)
	}
	for shard, limit := range res.Producer.AdaptiveRateLimit {
		got := sum(series(t, fams, "shardline_adaptive_rate_limit_per_second", orders, "shard_id="+shard))
		if !(got > 0 && got <= limit*1.01) { // the limiter climbs back between the last send and Stats
			t.Errorf("shardline_adaptive_rate_limit_per_second{shard_id=%s} = %v, producer reports %v", shard, got, limit)
		}
	}

	// Histograms. The producer's UserRecordsPerKinesisRecord has integer observations that the
	// in-memory endpoint can recount from the records it stored, so the exported buckets can
	// be checked one by one.
	h := series(t, fams, "shardline_user_records_per_kinesis_record", orders)[0].Histogram
	raw := res.UserRecordsPerKinesisRecord
	checkHistogram(t, "shardline_user_records_per_kinesis_record", h, raw, 1)
	if h.GetSampleSum() != roletest.Records {
		t.Errorf("user records per Kinesis record sum to %v, want %d", h.GetSampleSum(), roletest.Records)
	}
	// Times are exported in seconds: ProcessingTime counts one observation per batch.
	var batches uint64
	for _, m := range series(t, fams, "shardline_processing_time_seconds", orders) {
		batches += m.Histogram.GetSampleCount()
	}
	if batches != uint64(res.Consumer.Batches) || batches == 0 {
		t.Errorf("processing time histograms count %d batches, consumer reports %d", batches, res.Consumer.Batches)
	}
	bt := series(t, fams, "shardline_buffering_time_seconds", orders)[0].Histogram
	snap, _ := reg.Snapshot().Find(metrics.BufferingTime, metrics.Dim(metrics.DimStreamName, roletest.OrdersStream))
	if bt.GetSampleCount() != uint64(snap.Distribution.Count) || math.Abs(bt.GetSampleSum()-snap.Distribution.Sum/1000) > 1e-12 {
		t.Errorf("buffering time: count %d sum %v s, registry has %d and %v ms", bt.GetSampleCount(), bt.GetSampleSum(), snap.Distribution.Count, snap.Distribution.Sum)
	}
	for _, b := range bt.Bucket {
		le, n := b.GetUpperBound(), b.GetCumulativeCount()
		if le < snap.Distribution.Min/1000 && n != 0 || le > snap.Distribution.Max/1000*1.125 && n != bt.GetSampleCount() {
			t.Errorf("buffering time bucket le=%v holds %d of %d observations between %v and %v ms", le, n, bt.GetSampleCount(), snap.Distribution.Min, snap.Distribution.Max)
		}
	}
}

// checkHistogram checks a scraped histogram against the raw observations, given in the
// recorded unit with div converting them to the exported one: each bucket holds exactly the
// observations below its bound (Shardline buckets hold their lower bound), cumulative
// counts never fall, and the count is exact.
func checkHistogram(t *testing.T, name string, h *dto.Histogram, raw []float64, div float64) {
	t.Helper()
	if h.GetSampleCount() != uint64(len(raw)) {
		t.Errorf("%s: count %d, want %d", name, h.GetSampleCount(), len(raw))
	}
	var prev uint64
	for _, b := range h.Bucket {
		want := uint64(0)
		for _, v := range raw {
			if v/div < b.GetUpperBound() {
				want++
			}
		}
		if math.IsInf(b.GetUpperBound(), 1) {
			want = uint64(len(raw))
		}
		if b.GetCumulativeCount() != want || b.GetCumulativeCount() < prev {
			t.Errorf("%s: bucket le=%v has %d, want %d", name, b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
		prev = b.GetCumulativeCount()
	}
}

// TestHistogramBuckets checks the bucket bounds at each resolution against observations whose
// Shardline buckets are known.
func TestHistogramBuckets(t *testing.T) {
	// In milliseconds: 0.5 ms lies in [0.5, 0.515625), 1 ms in [1, 1.03125), 1.3 ms in
	// [1.28125, 1.3125), 70 ms in [70, 72), 3 s in [2944, 3008).
	raw := []float64{0.5, 1, 1, 1.3, 70, 3000}
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
		fams := scrape(t, newCollector(t, reg, shardlineprom.Options{BucketsPerOctave: tc.perOctave}))
		h := series(t, fams, "shardline_renewal_latency_seconds", "stream_name=s")[0].Histogram
		var bounds []float64
		for _, b := range h.Bucket {
			if !math.IsInf(b.GetUpperBound(), 1) {
				bounds = append(bounds, b.GetUpperBound())
			}
		}
		if !slices.Equal(bounds, tc.want) {
			t.Errorf("%d per octave: bounds %v, want %v", tc.perOctave, bounds, tc.want)
		}
		checkHistogram(t, "renewal latency", h, raw, 1000)
		if want := (0.5 + 1 + 1 + 1.3 + 70 + 3000) / 1000; math.Abs(h.GetSampleSum()-want) > 1e-12 {
			t.Errorf("sum %v s, want %v", h.GetSampleSum(), want)
		}
	}
}

// Series of one metric list the same bounds, so sum by (le) adds matching buckets.
func TestHistogramSeriesShareBounds(t *testing.T) {
	reg := metrics.NewRegistry()
	a := reg.Distribution(metrics.ProcessingTime, metrics.UnitMilliseconds, metrics.LevelSummary, metrics.Dim(metrics.DimShardID, "a"))
	b := reg.Distribution(metrics.ProcessingTime, metrics.UnitMilliseconds, metrics.LevelSummary, metrics.Dim(metrics.DimShardID, "b"))
	a.Observe(2)
	b.Observe(500)
	fams := scrape(t, newCollector(t, reg, shardlineprom.Options{}))
	ha := series(t, fams, "shardline_processing_time_seconds", "shard_id=a")[0].Histogram
	hb := series(t, fams, "shardline_processing_time_seconds", "shard_id=b")[0].Histogram
	if len(ha.Bucket) != 3 || len(hb.Bucket) != 3 { // two bounds and +Inf
		t.Fatalf("buckets %v and %v, want the same two bounds in both", ha.Bucket, hb.Bucket)
	}
	for i := range ha.Bucket {
		if ha.Bucket[i].GetUpperBound() != hb.Bucket[i].GetUpperBound() {
			t.Fatalf("bound %d differs: %v and %v", i, ha.Bucket[i].GetUpperBound(), hb.Bucket[i].GetUpperBound())
		}
	}
	checkHistogram(t, "a", ha, []float64{2}, 1000)
	checkHistogram(t, "b", hb, []float64{500}, 1000)
}

func TestKindsUnitsAndLevels(t *testing.T) {
	reg := metrics.NewRegistry()
	shard := []metrics.Dimension{metrics.Dim(metrics.DimStreamName, "s"), metrics.Dim(metrics.DimShardID, "shardId-1")}
	reg.Counter(metrics.UserRecordsPut, metrics.UnitCount, metrics.LevelSummary, shard...).Add(7)
	reg.Counter(metrics.UserRecordsReceived, metrics.UnitCount, metrics.LevelDetailed, shard...).Add(9)
	reg.Gauge(metrics.MillisBehindLatest, metrics.UnitMilliseconds, metrics.LevelSummary, shard...).Set(1500)
	reg.Gauge(metrics.LeasesHeld, metrics.UnitCount, metrics.LevelSummary, shard...) // never set

	fams := scrape(t, newCollector(t, reg, shardlineprom.Options{}))
	if f := fams["shardline_user_records_put_total"]; f.GetType() != dto.MetricType_COUNTER || sum(f.Metric) != 7 {
		t.Errorf("user records put: %v", f)
	}
	if f := fams["shardline_behind_latest_seconds"]; f.GetType() != dto.MetricType_GAUGE || sum(f.Metric) != 1.5 {
		t.Errorf("behind latest: %v, want a gauge of 1.5 s", f)
	}
	if !strings.Contains(fams["shardline_behind_latest_seconds"].GetHelp(), "MillisBehindLatest") {
		t.Errorf("help %q does not name the Shardline metric", fams["shardline_behind_latest_seconds"].GetHelp())
	}
	if _, ok := fams["shardline_leases_held"]; ok {
		t.Error("a gauge never set is exported")
	}
	if _, ok := fams["shardline_user_records_received_total"]; !ok {
		t.Error("a detailed series is missing at the default level")
	}

	fams = scrape(t, newCollector(t, reg, shardlineprom.Options{Level: metrics.LevelSummary}))
	if _, ok := fams["shardline_user_records_received_total"]; ok {
		t.Error("a detailed series is exported at LevelSummary")
	}
	if _, ok := fams["shardline_user_records_put_total"]; !ok {
		t.Error("a summary series is missing at LevelSummary")
	}
	if fams = scrape(t, newCollector(t, reg, shardlineprom.Options{Level: metrics.LevelNone})); len(fams) != 0 {
		t.Errorf("LevelNone exports %d metrics", len(fams))
	}
}

func TestNewCollectorRejectsBadOptions(t *testing.T) {
	reg := metrics.NewRegistry()
	for _, tc := range []struct {
		reg  *metrics.Registry
		opts shardlineprom.Options
		want string
	}{
		{nil, shardlineprom.Options{}, "nil Registry"},
		{reg, shardlineprom.Options{BucketsPerOctave: 3}, "BucketsPerOctave 3 must be 1, 2, 4, 8, 16 or 32"},
		{reg, shardlineprom.Options{BucketsPerOctave: 64}, "BucketsPerOctave 64"},
		{reg, shardlineprom.Options{BucketsPerOctave: -1}, "BucketsPerOctave -1"},
		{reg, shardlineprom.Options{Level: 9}, "Options.Level"},
	} {
		if _, err := shardlineprom.NewCollector(tc.reg, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewCollector(%v, %+v) = %v, want an error containing %q", tc.reg, tc.opts, err, tc.want)
		}
	}
}
