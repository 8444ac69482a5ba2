package metrics_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shardline/shardline/metrics"
)

func TestDistributionSnapshotBuckets(t *testing.T) {
	reg := metrics.NewRegistry()
	d := reg.Distribution("D", metrics.UnitCount, metrics.LevelSummary)
	for _, v := range []float64{0, -3, 1, 1, 1.03125, 1.5, 1e300} {
		d.Observe(v)
	}
	got := d.Snapshot().Buckets()
	inf := math.Inf(1)
	want := []metrics.Bucket{
		{Lower: math.Inf(-1), Upper: math.Ldexp(1, -20), Count: 2}, // 0 and -3
		{Lower: 1, Upper: 1.03125, Count: 2},
		{Lower: 1.03125, Upper: 1.0625, Count: 1}, // a value on a boundary opens the next bucket
		{Lower: 1.5, Upper: 1.53125, Count: 1},
		{Lower: math.Ldexp(63.0/32, 43), Upper: inf, Count: 1}, // everything above the range
	}
	if len(got) != len(want) {
		t.Fatalf("Buckets() = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("bucket %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if b := (metrics.DistributionSnapshot{}).Buckets(); len(b) != 0 {
		t.Errorf("empty snapshot has buckets %v", b)
	}
}

// Every observation lies in a bucket that claims it, the counts add up to Count, and the
// buckets ascend without overlapping, after merging too.
func TestDistributionSnapshotBucketsHoldTheirValues(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	reg := metrics.NewRegistry()
	a := reg.Distribution("A", metrics.UnitMilliseconds, metrics.LevelSummary)
	b := reg.Distribution("B", metrics.UnitMilliseconds, metrics.LevelSummary)
	var values []float64
	for i := range 20_000 {
		v := math.Exp(r.Float64()*40 - 16) // 1e-7 .. 2e10
		if i%2 == 0 {
			a.Observe(v)
		} else {
			b.Observe(v)
		}
		values = append(values, v)
	}
	snap := a.Snapshot().Merge(b.Snapshot())
	buckets := snap.Buckets()
	var total int64
	for i, bk := range buckets {
		if bk.Count <= 0 || !(bk.Lower < bk.Upper) {
			t.Fatalf("bucket %d is %+v", i, bk)
		}
		if i > 0 && buckets[i-1].Upper > bk.Lower {
			t.Fatalf("buckets %d and %d overlap: %+v %+v", i-1, i, buckets[i-1], bk)
		}
		total += bk.Count
	}
	if total != snap.Count {
		t.Fatalf("bucket counts add up to %d, Count is %d", total, snap.Count)
	}
	for _, v := range values {
		found := false
		for _, bk := range buckets {
			if bk.Lower <= v && v < bk.Upper {
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("no bucket holds %g", v)
		}
	}
}

func TestSeriesSnapshotGaugeSet(t *testing.T) {
	reg := metrics.NewRegistry()
	g := reg.Gauge("G", metrics.UnitCount, metrics.LevelSummary)
	if s, _ := reg.Snapshot().Find("G"); s.GaugeSet {
		t.Fatal("a gauge never set reads as set")
	}
	g.Set(0)
	if s, _ := reg.Snapshot().Find("G"); !s.GaugeSet || s.Gauge != 0 {
		t.Fatalf("after Set(0): GaugeSet %v, Gauge %v", s.GaugeSet, s.Gauge)
	}
	h := reg.Gauge("H", metrics.UnitCount, metrics.LevelSummary)
	h.Add(2)
	if s, _ := reg.Snapshot().Find("H"); !s.GaugeSet || s.Gauge != 2 {
		t.Fatalf("after Add(2): GaugeSet %v, Gauge %v", s.GaugeSet, s.Gauge)
	}
}
