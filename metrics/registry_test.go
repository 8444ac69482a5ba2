package metrics

import (
	"math"
	"sync"
	"testing"
	"time"
)

func TestSameHandleForSameSeries(t *testing.T) {
	r := NewRegistry()
	a := r.Counter(UserRecordsPut, UnitCount, LevelSummary, Dim(DimStreamName, "s"), Dim(DimShardID, "0"))
	b := r.Counter(UserRecordsPut, UnitBytes, LevelDetailed, Dim(DimShardID, "0"), Dim(DimStreamName, "s"))
	if a != b {
		t.Fatal("same name and dimension set in another order gave a different handle")
	}
	if c := r.Counter(UserRecordsPut, UnitCount, LevelSummary, Dim(DimStreamName, "s")); c == a {
		t.Fatal("a different dimension set gave the same handle")
	}
	// A repeated dimension name keeps its last value.
	d := r.Counter(AllErrors, UnitCount, LevelSummary, Dim(DimStreamName, "x"), Dim(DimStreamName, "s"))
	if d != r.Counter(AllErrors, UnitCount, LevelSummary, Dim(DimStreamName, "s")) {
		t.Fatal("repeated dimension name was not collapsed to its last value")
	}
	ss, ok := r.Snapshot().Find(UserRecordsPut, Dim(DimShardID, "0"), Dim(DimStreamName, "s"))
	if !ok || ss.Unit != UnitCount || ss.Level != LevelSummary || ss.Kind != KindCounter {
		t.Fatalf("first registration's unit and level should stick: %+v %v", ss, ok)
	}
}

func TestKindMismatchPanics(t *testing.T) {
	r := NewRegistry()
	r.Counter("X", UnitCount, LevelSummary)
	defer func() {
		if recover() == nil {
			t.Fatal("registering a counter's series as a gauge did not panic")
		}
	}()
	r.Gauge("X", UnitCount, LevelSummary)
}

func TestNilRegistryAndHandlesAreNoOps(t *testing.T) {
	var r *Registry
	c := r.Counter(UserRecordsPut, UnitCount, LevelSummary)
	g := r.Gauge(UserRecordsPending, UnitCount, LevelDetailed)
	d := r.Distribution(BufferingTime, UnitMilliseconds, LevelSummary)
	if c != nil || g != nil || d != nil {
		t.Fatal("nil registry returned non-nil handles")
	}
	c.Add(1)
	g.Set(1)
	g.Add(1)
	d.Observe(1)
	d.ObserveDuration(time.Second)
	if c.Load() != 0 || g.Load() != 0 || d.Snapshot().Count != 0 {
		t.Fatal("nil handles reported values")
	}
	if s := r.Snapshot(); len(s.Series) != 0 {
		t.Fatalf("nil registry snapshot has %d series", len(s.Series))
	}
	if r.Remove("x") || r.RemoveWith(Dim("a", "b")) != 0 {
		t.Fatal("nil registry removed something")
	}
	var p *CloudWatchPublisher
	p.Start()
	if p.Flush(t.Context()) != nil || p.Close(t.Context()) != nil || p.Stats() != (PublisherStats{}) {
		t.Fatal("nil publisher is not a no-op")
	}
	var ls *LogSink
	ls.Flush(t.Context())
	if ls.Close(t.Context()) != nil {
		t.Fatal("nil log sink is not a no-op")
	}
}

func TestConcurrentRecordingIsExact(t *testing.T) {
	r := NewRegistry()
	c := r.Counter(RecordsProcessed, UnitCount, LevelSummary)
	g := r.Gauge(UserRecordsPending, UnitCount, LevelDetailed)
	d := r.Distribution(ProcessingTime, UnitMilliseconds, LevelSummary)
	const workers, per = 16, 20_000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				c.Add(2)
				g.Add(1)
				g.Add(-0.5)
				d.Observe(float64(w*per + i + 1))
			}
		})
	}
	// Readers race with writers; the race detector checks they only use atomics.
	wg.Go(func() {
		for range 100 {
			_ = r.Snapshot()
		}
	})
	wg.Wait()
	if got := c.Load(); got != 2*workers*per {
		t.Errorf("counter = %d, want %d", got, 2*workers*per)
	}
	if got := g.Load(); got != 0.5*workers*per {
		t.Errorf("gauge = %g, want %g", got, 0.5*workers*per)
	}
	s := d.Snapshot()
	n := float64(workers * per)
	if s.Count != workers*per || s.Min != 1 || s.Max != n || s.Sum != n*(n+1)/2 {
		t.Errorf("distribution = count %d min %g max %g sum %g; want %d 1 %g %g", s.Count, s.Min, s.Max, s.Sum, workers*per, n, n*(n+1)/2)
	}
}

func TestAdderGrowsUnderContentionAndStaysExact(t *testing.T) {
	var a intAdder
	var f floatAdder
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50_000 {
				a.add(1)
				f.add(0.25)
			}
		})
	}
	wg.Wait()
	if a.load() != 400_000 {
		t.Errorf("int adder = %d, want 400000", a.load())
	}
	if v, ok := f.load(); v != 100_000 || !ok {
		t.Errorf("float adder = %g (set %v), want 100000", v, ok)
	}
	f.set(3)
	if v, _ := f.load(); v != 3 {
		t.Errorf("after set: %g, want 3", v)
	}
}

func TestGauge(t *testing.T) {
	r := NewRegistry()
	g := r.Gauge(LeasesHeld, UnitCount, LevelSummary, Dim(DimWorkerID, "w1"))
	if _, set := g.loadSet(); set {
		t.Fatal("new gauge reports set")
	}
	g.Set(5)
	g.Add(-2)
	g.Set(math.NaN())
	g.Add(math.Inf(1))
	if v, set := g.loadSet(); v != 3 || !set {
		t.Fatalf("gauge = %g (set %v), want 3", v, set)
	}
}

func TestObserveDurationUnits(t *testing.T) {
	r := NewRegistry()
	cases := []struct {
		unit Unit
		want float64
	}{
		{UnitMilliseconds, 1500},
		{UnitSeconds, 1.5},
		{UnitMicroseconds, 1.5e6},
		{UnitCount, 1500},
	}
	for _, c := range cases {
		d := r.Distribution("D"+string(c.unit), c.unit, LevelDetailed)
		d.ObserveDuration(1500 * time.Millisecond)
		if got := d.Snapshot().Sum; got != c.want {
			t.Errorf("%s: ObserveDuration(1.5s) recorded %g, want %g", c.unit, got, c.want)
		}
	}
}

func TestSnapshotAndRemove(t *testing.T) {
	r := NewRegistry()
	s0 := []Dimension{Dim(DimStreamName, "s"), Dim(DimShardID, "0")}
	s1 := []Dimension{Dim(DimStreamName, "s"), Dim(DimShardID, "1")}
	r.Counter(UserRecordsPut, UnitCount, LevelSummary, s0...).Add(3)
	r.Counter(UserRecordsPut, UnitCount, LevelSummary, s1...).Add(4)
	r.Counter(UserRecordsPut, UnitCount, LevelSummary, Dim(DimStreamName, "t")).Add(100)
	r.Gauge(UserRecordsPending, UnitCount, LevelDetailed, s0...).Set(2)
	r.Gauge(UserRecordsPending, UnitCount, LevelDetailed, s1...).Set(5)
	r.Distribution(BufferingTime, UnitMilliseconds, LevelSummary, s0...).Observe(10)
	r.Distribution(BufferingTime, UnitMilliseconds, LevelSummary, s1...).Observe(30)

	snap := r.Snapshot()
	if got := snap.CounterSum(UserRecordsPut, Dim(DimStreamName, "s")); got != 7 {
		t.Errorf("CounterSum(stream s) = %d, want 7", got)
	}
	if got := snap.CounterSum(UserRecordsPut); got != 107 {
		t.Errorf("CounterSum(all) = %d, want 107", got)
	}
	if got := snap.GaugeSum(UserRecordsPending); got != 7 {
		t.Errorf("GaugeSum = %g, want 7", got)
	}
	if d := snap.MergedDistribution(BufferingTime, Dim(DimStreamName, "s")); d.Count != 2 || d.Min != 10 || d.Max != 30 {
		t.Errorf("MergedDistribution = %+v", d)
	}
	for i := 1; i < len(snap.Series); i++ {
		a, b := snap.Series[i-1], snap.Series[i]
		if seriesKey(a.Name, a.Dimensions) >= seriesKey(b.Name, b.Dimensions) {
			t.Fatalf("snapshot not sorted: %v before %v", a, b)
		}
	}

	if n := r.RemoveWith(Dim(DimShardID, "1")); n != 3 {
		t.Errorf("RemoveWith(shard 1) removed %d, want 3", n)
	}
	if !r.Remove(UserRecordsPut, Dim(DimStreamName, "t")) || r.Remove(UserRecordsPut, Dim(DimStreamName, "t")) {
		t.Error("Remove should report true once, then false")
	}
	if got := len(r.Snapshot().Series); got != 3 {
		t.Errorf("%d series left, want 3", got)
	}
}

func TestParseLevelAndGranularity(t *testing.T) {
	for _, l := range []Level{LevelNone, LevelSummary, LevelDetailed} {
		b, _ := l.MarshalText()
		var got Level
		if err := got.UnmarshalText(b); err != nil || got != l {
			t.Errorf("level %v round trip: %v %v", l, got, err)
		}
	}
	for _, g := range []Granularity{GranularityGlobal, GranularityStream, GranularityShard} {
		b, _ := g.MarshalText()
		var got Granularity
		if err := got.UnmarshalText(b); err != nil || got != g {
			t.Errorf("granularity %v round trip: %v %v", g, got, err)
		}
	}
	if _, err := ParseLevel("verbose"); err == nil {
		t.Error("ParseLevel accepted an unknown level")
	}
	if _, err := ParseGranularity("host"); err == nil {
		t.Error("ParseGranularity accepted an unknown granularity")
	}
	if Level(0).effective() != LevelDetailed || Granularity(0).effective() != GranularityStream {
		t.Error("zero Level/Granularity must select the documented defaults")
	}
}

// TestStripedPathsAreExact forces the per-CPU cells that contention would create, so their
// correctness does not depend on the machine producing a collision during the test.
func TestStripedPathsAreExact(t *testing.T) {
	r := NewRegistry()
	c := r.Counter(UserRecordsReceived, UnitCount, LevelDetailed)
	g := r.Gauge(UserRecordsPending, UnitCount, LevelDetailed)
	d := r.Distribution(BufferingTime, UnitMilliseconds, LevelSummary)
	c.Add(5)
	g.Set(1)
	d.Observe(1000)
	c.v.grow()
	g.v.grow()
	d.h.grow()
	if len(*c.v.cells.Load()) < 4 || len(*d.h.stripes.Load()) < 2 {
		t.Fatalf("cells not grown: %d counter cells, %d histogram stripes", len(*c.v.cells.Load()), len(*d.h.stripes.Load()))
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 10_000 {
				c.Add(1)
				g.Add(2)
				d.Observe(float64(w*10_000 + i + 1))
			}
		})
	}
	wg.Wait()
	if got := c.Load(); got != 80_005 {
		t.Errorf("counter %d, want 80005", got)
	}
	if got := g.Load(); got != 160_001 {
		t.Errorf("gauge %g, want 160001", got)
	}
	s := d.Snapshot()
	if s.Count != 80_001 || s.Min != 1 || s.Max != 80_000 || s.Sum != 80_000*80_001/2+1000 {
		t.Errorf("distribution %+v", s)
	}
	if q := s.Quantile(0.5); math.Abs(q-40_000)/40_000 > maxRelErr {
		t.Errorf("median of striped histogram %g, want about 40000", q)
	}
	g.Set(7)
	if got := g.Load(); got != 7 {
		t.Errorf("Set after growth: %g, want 7", got)
	}
	if Level(9).String() != "Level(9)" || Granularity(9).String() != "Granularity(9)" || Kind(9).String() != "Kind(9)" {
		t.Error("String of an unknown value")
	}
}
