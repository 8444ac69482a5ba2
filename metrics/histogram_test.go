package metrics

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// maxRelErr is the histogram's promised bound: a bucket midpoint is within half a
// sub-bucket (1/64 of the octave's base) of every value in the bucket.
const maxRelErr = 1.0 / 64

func TestBucketOfContainsValue(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		v := math.Exp(r.Float64()*50 - 13) // 2e-6 .. 1.2e16, inside and above the range
		i := bucketOf(v)
		if v > math.Ldexp(1, maxExp+1) {
			if i != numOctaves*subBuckets-1 {
				t.Fatalf("bucketOf(%g) = %d, want the top bucket", v, i)
			}
			continue
		}
		mid := bucketMid(i)
		if rel := math.Abs(mid-v) / v; rel > maxRelErr {
			t.Fatalf("bucketOf(%g) = %d with midpoint %g: relative error %.4f > %.4f", v, i, mid, rel, maxRelErr)
		}
		if i > 0 && bucketOf(math.Nextafter(v, math.Inf(1))) < i {
			t.Fatalf("bucket index not monotonic at %g", v)
		}
	}
	for _, v := range []float64{0, -1, -1e300, 1e-9, math.SmallestNonzeroFloat64} {
		if got := bucketOf(v); got != zeroBucket {
			t.Errorf("bucketOf(%g) = %d, want the zero bucket", v, got)
		}
	}
}

// exactQuantile is the nearest-rank quantile of sorted values, the definition Quantile
// approximates.
func exactQuantile(sorted []float64, q float64) float64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

func TestQuantileAccuracy(t *testing.T) {
	gens := map[string]func(r *rand.Rand) float64{
		"lognormal-latency-ms": func(r *rand.Rand) float64 { return math.Exp(r.NormFloat64()*1.2 + 3) },
		"uniform-bytes":        func(r *rand.Rand) float64 { return 1 + r.Float64()*(1<<20) },
		"exponential":          func(r *rand.Rand) float64 { return r.ExpFloat64() * 250 },
		"bimodal": func(r *rand.Rand) float64 {
			if r.IntN(10) == 0 {
				return 5000 + r.Float64()*1000
			}
			return 2 + r.Float64()*3
		},
		"integers": func(r *rand.Rand) float64 { return float64(r.IntN(20)) + 1 },
	}
	for name, gen := range gens {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 11))
			h := newHistogram()
			vals := make([]float64, 50_000)
			var sum float64
			for i := range vals {
				vals[i] = gen(r)
				sum += vals[i]
				h.observe(vals[i])
			}
			slices.Sort(vals)
			s := h.snapshot()
			if s.Count != int64(len(vals)) || s.Min != vals[0] || s.Max != vals[len(vals)-1] {
				t.Fatalf("count/min/max = %d/%g/%g, want %d/%g/%g", s.Count, s.Min, s.Max, len(vals), vals[0], vals[len(vals)-1])
			}
			if math.Abs(s.Sum-sum) > 1e-9*sum {
				t.Fatalf("sum = %g, want %g", s.Sum, sum)
			}
			for _, q := range []float64{0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999} {
				want := exactQuantile(vals, q)
				got := s.Quantile(q)
				if rel := math.Abs(got-want) / want; rel > maxRelErr {
					t.Errorf("q%.3f = %g, want %g (relative error %.4f > %.4f)", q, got, want, rel, maxRelErr)
				}
			}
			if s.Quantile(0) != s.Min || s.Quantile(1) != s.Max {
				t.Errorf("Quantile(0), Quantile(1) = %g, %g; want Min, Max = %g, %g", s.Quantile(0), s.Quantile(1), s.Min, s.Max)
			}
		})
	}
}

func TestDistributionSnapshotEdgeCases(t *testing.T) {
	var empty DistributionSnapshot
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 {
		t.Errorf("empty snapshot: Quantile %g Mean %g, want 0", empty.Quantile(0.5), empty.Mean())
	}
	h := newHistogram()
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		h.observe(v)
	}
	if s := h.snapshot(); s.Count != 0 {
		t.Fatalf("non-finite values were recorded: %+v", s)
	}
	for _, v := range []float64{-5, 0, 0, 3} {
		h.observe(v)
	}
	s := h.snapshot()
	if s.Count != 4 || s.Sum != -2 || s.Min != -5 || s.Max != 3 || s.Mean() != -0.5 {
		t.Fatalf("snapshot = %+v, want count 4 sum -2 min -5 max 3", s)
	}
	// Zero and negative values share the zero bucket, reported as 0 within [Min, Max].
	if got := s.Quantile(0.5); got != 0 {
		t.Errorf("median = %g, want 0", got)
	}
}

func TestMergeAndSince(t *testing.T) {
	a, b := newHistogram(), newHistogram()
	var all []float64
	for i := 1; i <= 100; i++ {
		a.observe(float64(i))
		b.observe(float64(i * 10))
		all = append(all, float64(i), float64(i*10))
	}
	slices.Sort(all)
	m := a.snapshot().Merge(b.snapshot())
	if m.Count != 200 || m.Min != 1 || m.Max != 1000 || m.Sum != 5050+50500 {
		t.Fatalf("merged = %+v", m)
	}
	for _, q := range []float64{0.1, 0.5, 0.9} {
		want := exactQuantile(all, q)
		if got := m.Quantile(q); math.Abs(got-want)/want > maxRelErr {
			t.Errorf("merged q%.1f = %g, want %g", q, got, want)
		}
	}
	if got := (DistributionSnapshot{}).Merge(m); got.Count != m.Count {
		t.Errorf("empty.Merge lost data")
	}

	before := a.snapshot()
	a.observe(7)
	a.observe(500)
	d := a.snapshot().since(before)
	if d.Count != 2 || d.Sum != 507 {
		t.Fatalf("since = %+v, want the 2 new observations summing to 507", d)
	}
	if got := a.snapshot().since(a.snapshot()); got.Count != 0 {
		t.Errorf("since of an unchanged histogram = %+v, want empty", got)
	}
}

func TestValuesCounts(t *testing.T) {
	h := newHistogram()
	for _, v := range []float64{10, 20, 20, 20, 30} {
		h.observe(v)
	}
	values, counts := h.snapshot().valuesCounts()
	// Min and Max are exact; 20 sits in bucket [20, 20.5) and is sent as its midpoint.
	wantV := []float64{10, 20.25, 30}
	wantC := []float64{1, 3, 1}
	if !slices.Equal(values, wantV) || !slices.Equal(counts, wantC) {
		t.Fatalf("valuesCounts = %v %v, want %v %v", values, counts, wantV, wantC)
	}

	// One bucket holding several values: Min and Max each take one count, distinct values.
	h = newHistogram()
	for _, v := range []float64{100, 100.5, 101, 101.2} {
		h.observe(v)
	}
	values, counts = h.snapshot().valuesCounts()
	if len(values) != 3 || values[0] != 100 || values[2] != 101.2 || counts[1] != 2 {
		t.Fatalf("single-bucket valuesCounts = %v %v", values, counts)
	}

	// Many buckets: strictly increasing values, counts add up.
	h = newHistogram()
	r := rand.New(rand.NewPCG(3, 4))
	for range 10_000 {
		h.observe(math.Exp(r.NormFloat64()*3 + 2))
	}
	s := h.snapshot()
	values, counts = s.valuesCounts()
	var total float64
	for i := range values {
		if i > 0 && values[i] <= values[i-1] {
			t.Fatalf("values not strictly increasing at %d: %v", i, values[i-1:i+1])
		}
		total += counts[i]
	}
	if total != float64(s.Count) || values[0] != s.Min || values[len(values)-1] != s.Max {
		t.Fatalf("counts total %g (want %d), first %g (min %g), last %g (max %g)", total, s.Count, values[0], s.Min, values[len(values)-1], s.Max)
	}
	if len(values) <= MaxValuesPerDatum {
		t.Fatalf("want a distribution wider than one datum for the split test, got %d values", len(values))
	}
}
