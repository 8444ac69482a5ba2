package metrics

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// dimsString renders a dimension set compactly for comparisons: "ShardId=0,StreamName=s".
func dimsString(dims []Dimension) string {
	parts := make([]string, len(dims))
	for i, d := range dims {
		parts[i] = d.Name + "=" + d.Value
	}
	return strings.Join(parts, ",")
}

func pointsByKey(ps []point) map[string]point {
	m := map[string]point{}
	for _, p := range ps {
		m[p.name+"{"+dimsString(p.dims)+"}"] = p
	}
	return m
}

func shardDims(stream string, shard int) []Dimension {
	return []Dimension{Dim(DimStreamName, stream), Dim(DimShardID, fmt.Sprintf("shardId-%012d", shard))}
}

func TestRollUpLevelsAndValues(t *testing.T) {
	r := NewRegistry()
	r.Counter(UserRecordsPut, UnitCount, LevelSummary, shardDims("a", 0)...).Add(10)
	r.Counter(UserRecordsPut, UnitCount, LevelSummary, shardDims("a", 1)...).Add(5)
	r.Counter(UserRecordsPut, UnitCount, LevelSummary, shardDims("b", 0)...).Add(7)
	r.Counter(ErrorsByCode, UnitCount, LevelSummary, append(shardDims("a", 0), Dim(DimErrorCode, "Throttled"))...).Add(2)
	r.Counter(ErrorsByCode, UnitCount, LevelSummary, append(shardDims("a", 1), Dim(DimErrorCode, "Throttled"))...).Add(3)
	r.Distribution(BufferingTime, UnitMilliseconds, LevelSummary, shardDims("a", 0)...).Observe(10)
	r.Distribution(BufferingTime, UnitMilliseconds, LevelSummary, shardDims("a", 1)...).Observe(40)
	r.Gauge(LeasesHeld, UnitCount, LevelSummary, Dim(DimWorkerID, "w1")).Set(4)

	points, ts := newCollector(r, LevelDetailed, time.Minute, t0).collect(t0.Add(time.Minute))
	if !ts.Equal(t0) {
		t.Fatalf("timestamp %v, want the interval start %v", ts, t0)
	}

	extra := []Dimension{Dim(DimHost, "h1")}
	for _, g := range []Granularity{GranularityGlobal, GranularityStream, GranularityShard} {
		t.Run(g.String(), func(t *testing.T) {
			got := pointsByKey(rollUp(points, g, extra))
			var keys []string
			for k := range got {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			want := []string{
				"BufferingTime{Host=h1}",
				"ErrorsByCode{ErrorCode=Throttled,Host=h1}",
				"LeasesHeld{Host=h1,WorkerIdentifier=w1}",
				"UserRecordsPut{Host=h1}",
			}
			if g >= GranularityStream {
				want = append(want,
					"BufferingTime{Host=h1,StreamName=a}",
					"ErrorsByCode{ErrorCode=Throttled,Host=h1,StreamName=a}",
					"UserRecordsPut{Host=h1,StreamName=a}",
					"UserRecordsPut{Host=h1,StreamName=b}")
			}
			if g == GranularityShard {
				want = append(want,
					"BufferingTime{Host=h1,ShardId=shardId-000000000000,StreamName=a}",
					"BufferingTime{Host=h1,ShardId=shardId-000000000001,StreamName=a}",
					"ErrorsByCode{ErrorCode=Throttled,Host=h1,ShardId=shardId-000000000000,StreamName=a}",
					"ErrorsByCode{ErrorCode=Throttled,Host=h1,ShardId=shardId-000000000001,StreamName=a}",
					"UserRecordsPut{Host=h1,ShardId=shardId-000000000000,StreamName=a}",
					"UserRecordsPut{Host=h1,ShardId=shardId-000000000001,StreamName=a}",
					"UserRecordsPut{Host=h1,ShardId=shardId-000000000000,StreamName=b}")
			}
			slices.Sort(want)
			if !slices.Equal(keys, want) {
				t.Fatalf("series:\n got %q\nwant %q", keys, want)
			}

			// Coarser levels merge the samples of the finer series.
			global := got["UserRecordsPut{Host=h1}"].stat
			if global != (statSet{count: 3, sum: 22, min: 5, max: 10, last: global.last}) {
				t.Errorf("global UserRecordsPut = %+v, want 3 samples summing to 22, min 5, max 10", global)
			}
			if g >= GranularityStream {
				a := got["UserRecordsPut{Host=h1,StreamName=a}"].stat
				if a.count != 2 || a.sum != 15 || a.min != 5 || a.max != 10 {
					t.Errorf("stream a UserRecordsPut = %+v, want 2 samples summing to 15", a)
				}
				e := got["ErrorsByCode{ErrorCode=Throttled,Host=h1,StreamName=a}"].stat
				if e.sum != 5 {
					t.Errorf("stream a ErrorsByCode sum = %g, want 5", e.sum)
				}
			}
			bt := got["BufferingTime{Host=h1}"].hist
			if bt.Count != 2 || bt.Min != 10 || bt.Max != 40 {
				t.Errorf("global BufferingTime = %+v, want both observations", bt)
			}
		})
	}
}

// TestSeriesCountFormula checks the formula in the package documentation: a metric recorded
// per shard with C combinations of other dimensions, over S streams with N shards in all, is
// published as C series at GranularityGlobal, C(S+1) at GranularityStream and C(N+S+1) at
// GranularityShard.
func TestSeriesCountFormula(t *testing.T) {
	r := NewRegistry()
	shardsPerStream := []int{2, 3, 1}
	codes := []string{"Throttled", "InternalFailure"}
	var n int
	for si, shards := range shardsPerStream {
		for sh := range shards {
			n++
			for _, code := range codes {
				dims := append(shardDims(fmt.Sprint("s", si), sh), Dim(DimErrorCode, code))
				r.Counter(ErrorsByCode, UnitCount, LevelSummary, dims...).Add(1)
			}
		}
	}
	points, _ := newCollector(r, LevelDetailed, time.Minute, t0).collect(t0)
	s, c := len(shardsPerStream), len(codes)
	want := map[Granularity]int{
		GranularityGlobal: c,
		GranularityStream: c * (s + 1),
		GranularityShard:  c * (n + s + 1),
	}
	for g, w := range want {
		if got := len(rollUp(points, g, nil)); got != w {
			t.Errorf("%v: %d series, want %d", g, got, w)
		}
	}
}

func TestLevels(t *testing.T) {
	r := NewRegistry()
	r.Counter(UserRecordsPut, UnitCount, LevelSummary).Add(1)
	r.Counter(UserRecordsReceived, UnitCount, LevelDetailed).Add(1)
	r.Counter("Unleveled", UnitCount, 0).Add(1) // the zero level counts as detailed
	cases := map[Level][]string{
		LevelNone:     nil,
		LevelSummary:  {UserRecordsPut},
		LevelDetailed: {"Unleveled", UserRecordsReceived, UserRecordsPut},
	}
	for level, want := range cases {
		points, _ := newCollector(r, level, time.Minute, t0).collect(t0)
		var got []string
		for _, p := range points {
			got = append(got, p.name)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("level %v published %v, want %v", level, got, want)
		}
	}
}

func TestCollectIntervals(t *testing.T) {
	r := NewRegistry()
	c := r.Counter(RecordsProcessed, UnitCount, LevelSummary)
	g := r.Gauge(MillisBehindLatest, UnitMilliseconds, LevelSummary)
	d := r.Distribution(ProcessingTime, UnitMilliseconds, LevelSummary)
	unset := r.Gauge(FilesTailed, UnitCount, LevelSummary)
	_ = unset
	col := newCollector(r, LevelDetailed, time.Minute, t0.Add(10*time.Second))

	c.Add(5)
	g.Set(100)
	col.sample()
	g.Set(300)
	d.Observe(2)
	d.Observe(4)
	ps, ts := col.collect(t0.Add(time.Minute + time.Second))
	got := pointsByKey(ps)
	if !ts.Equal(t0) || len(got) != 3 {
		t.Fatalf("first interval: ts %v, %d points %v", ts, len(got), got)
	}
	if s := got["RecordsProcessed{}"].stat; s.count != 1 || s.sum != 5 {
		t.Errorf("counter point %+v, want one sample of 5", s)
	}
	if s := got["MillisBehindLatest{}"].stat; s.count != 2 || s.min != 100 || s.max != 300 || s.last != 300 {
		t.Errorf("gauge point %+v, want samples 100 and 300", s)
	}
	if h := got["ProcessingTime{}"].hist; h.Count != 2 || h.Sum != 6 {
		t.Errorf("distribution point %+v", h)
	}

	// Second interval: the counter did not move and nothing was observed, so only the gauge,
	// which still has a value, is reported.
	ps, ts = col.collect(t0.Add(2*time.Minute + time.Second))
	got = pointsByKey(ps)
	if !ts.Equal(t0.Add(time.Minute)) || len(got) != 1 || got["MillisBehindLatest{}"].stat.count != 1 {
		t.Fatalf("second interval: ts %v points %v", ts, got)
	}

	c.Add(2)
	d.Observe(8)
	ps, _ = col.collect(t0.Add(3 * time.Minute))
	got = pointsByKey(ps)
	if s := got["RecordsProcessed{}"]; s.stat.sum != 2 || s.total != 7 {
		t.Errorf("third interval counter %+v, want delta 2 total 7", s)
	}
	if h := got["ProcessingTime{}"].hist; h.Count != 1 || h.Sum != 8 {
		t.Errorf("third interval distribution %+v, want only the new observation", h)
	}
}

func TestTimestampAfterALongPause(t *testing.T) {
	r := NewRegistry()
	c := r.Counter(RecordsSent, UnitCount, LevelSummary)
	col := newCollector(r, LevelDetailed, time.Minute, t0)
	c.Add(1)
	// A regular collection, slightly late: stamped with the interval it covers.
	if _, ts := col.collect(t0.Add(time.Minute + 3*time.Second)); !ts.Equal(t0) {
		t.Errorf("regular interval stamped %v, want %v", ts, t0)
	}
	c.Add(1)
	// Three hours without a collection: stamped now rather than three hours ago.
	late := t0.Add(3*time.Hour + 30*time.Second)
	if _, ts := col.collect(late); !ts.Equal(late.Truncate(time.Minute)) {
		t.Errorf("late collection stamped %v, want %v", ts, late.Truncate(time.Minute))
	}
	col.startPeriod(t0.Add(5 * time.Hour))
	c.Add(1)
	if _, ts := col.collect(t0.Add(5*time.Hour + time.Minute)); !ts.Equal(t0.Add(5 * time.Hour)) {
		t.Errorf("after startPeriod stamped %v", ts)
	}
}
