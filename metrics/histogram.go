package metrics

import (
	"math"
	"math/bits"
	"runtime"
	"slices"
	"sync/atomic"
)

// The histogram is log-linear: each power of two (an octave) is split into 32 equal
// sub-buckets. The bucket of a value comes straight from the bits of its float64 (exponent
// and top five mantissa bits), so recording needs no logarithm and no loop. A bucket's
// midpoint is within 1/64 (1.6%) of every value in it, which bounds the error of quantiles and
// of the values sent to CloudWatch.
//
// Octaves cover 2^-20 (about 1e-6, a nanosecond in milliseconds) to 2^44 (about 1.8e13, far
// beyond any byte count or latency in milliseconds). Values below the range, including zero
// and negative values, share one zero bucket; values above it land in the top bucket. Count,
// Sum, Min and Max are tracked exactly whatever the range.
//
// Octaves are allocated on first use, so a distribution whose values span three decades costs
// about 3.5 KB rather than the 16 KB of the full range; a Shardline producer keeps one per
// shard.

const (
	subBits    = 5
	subBuckets = 1 << subBits
	minExp     = -20
	maxExp     = 43
	numOctaves = maxExp - minExp + 1

	// zeroBucket is the index of the bucket below the range.
	zeroBucket int32 = -1
)

var minTracked = math.Ldexp(1, minExp)

type octave [subBuckets]atomic.Int64

// bucketOf returns the bucket index of v, which must not be NaN.
func bucketOf(v float64) int32 {
	if !(v >= minTracked) {
		return zeroBucket
	}
	b := math.Float64bits(v)
	e := int(b>>52&0x7ff) - 1023
	if e > maxExp {
		return numOctaves*subBuckets - 1
	}
	sub := int32(b>>(52-subBits)) & (subBuckets - 1)
	return int32(e-minExp)<<subBits | sub
}

// bucketMid returns the midpoint of bucket i, the value that stands for every observation in
// it.
func bucketMid(i int32) float64 {
	if i == zeroBucket {
		return 0
	}
	e := int(i>>subBits) + minExp
	sub := float64(i & (subBuckets - 1))
	return math.Ldexp(1+(sub+0.5)/subBuckets, e)
}

// histogram is the lock-free state behind a Distribution. Like the counters' adders it starts
// as a single core and, the first time two goroutines collide updating it, grows a set of
// cores; each goroutine then records into the core its stack hashes to, and snapshots merge
// them. Only distributions that are actually contended pay for the extra cores.
type histogram struct {
	base    histCore
	stripes atomic.Pointer[[]histCore]
}

// histCore is one set of buckets with its own sum and extremes.
type histCore struct {
	octaves [numOctaves]atomic.Pointer[octave]
	zero    atomic.Int64
	sum     atomic.Uint64 // float64 bits
	min     atomic.Uint64 // float64 bits; +Inf until the first observation
	max     atomic.Uint64 // float64 bits; -Inf until the first observation
	_       [cacheLine - (numOctaves*8+4*8)%cacheLine]byte
}

func newHistogram() *histogram {
	h := &histogram{}
	h.base.init()
	return h
}

func (c *histCore) init() {
	c.min.Store(math.Float64bits(math.Inf(1)))
	c.max.Store(math.Float64bits(math.Inf(-1)))
}

func (h *histogram) observe(v float64) {
	if v != v || math.IsInf(v, 0) {
		// CloudWatch rejects non-finite values and they would poison Sum.
		return
	}
	stripes := h.stripes.Load()
	if stripes == nil {
		if h.base.observe(v, true) {
			return
		}
		stripes = h.grow()
	}
	s := *stripes
	s[cellIndex(len(s))].observe(v, false)
}

// grow adds the per-CPU cores. Goroutines pick a core by hashing, so there are spare cores to
// make lasting collisions unlikely: four per CPU, but at most 64, as each core with its
// octaves costs about 2 KB.
func (h *histogram) grow() *[]histCore {
	n := 1 << bits.Len(uint(min(4*runtime.GOMAXPROCS(0), 64)-1))
	s := make([]histCore, n)
	for i := range s {
		s[i].init()
	}
	if h.stripes.CompareAndSwap(nil, &s) {
		return &s
	}
	return h.stripes.Load()
}

// observe records v. With detect set it gives up, recording nothing, as soon as another
// goroutine is seen updating the core at the same time.
func (c *histCore) observe(v float64, detect bool) bool {
	for {
		old := c.sum.Load()
		if c.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			break
		}
		if detect {
			return false
		}
	}
	if i := bucketOf(v); i == zeroBucket {
		c.zero.Add(1)
	} else {
		o := c.octaves[i>>subBits].Load()
		if o == nil {
			o = c.allocOctave(i >> subBits)
		}
		o[i&(subBuckets-1)].Add(1)
	}
	// Extremes change rarely once warmed up, so the common case is a shared read.
	for {
		old := c.min.Load()
		if v >= math.Float64frombits(old) || c.min.CompareAndSwap(old, math.Float64bits(v)) {
			break
		}
	}
	for {
		old := c.max.Load()
		if v <= math.Float64frombits(old) || c.max.CompareAndSwap(old, math.Float64bits(v)) {
			break
		}
	}
	return true
}

func (c *histCore) allocOctave(i int32) *octave {
	o := new(octave)
	if c.octaves[i].CompareAndSwap(nil, o) {
		return o
	}
	return c.octaves[i].Load()
}

// snapshot reads the histogram. Each field is read atomically, but not all at one instant:
// an observation racing with the snapshot may show in Sum and not yet in the buckets.
func (h *histogram) snapshot() DistributionSnapshot {
	s := h.base.snapshot()
	if stripes := h.stripes.Load(); stripes != nil {
		for i := range *stripes {
			s = s.Merge((*stripes)[i].snapshot())
		}
	}
	return s
}

func (c *histCore) snapshot() DistributionSnapshot {
	var s DistributionSnapshot
	if n := c.zero.Load(); n > 0 {
		s.buckets = append(s.buckets, bucketCount{idx: zeroBucket, n: n})
		s.Count += n
	}
	for oi := range c.octaves {
		o := c.octaves[oi].Load()
		if o == nil {
			continue
		}
		for si := range o {
			if n := o[si].Load(); n > 0 {
				s.buckets = append(s.buckets, bucketCount{idx: int32(oi)<<subBits | int32(si), n: n})
				s.Count += n
			}
		}
	}
	if s.Count == 0 {
		return DistributionSnapshot{}
	}
	s.Sum = math.Float64frombits(c.sum.Load())
	s.Min = math.Float64frombits(c.min.Load())
	s.Max = math.Float64frombits(c.max.Load())
	// A racing first observation can be counted in a bucket before its extremes are stored.
	if math.IsInf(s.Min, 1) || math.IsInf(s.Max, -1) {
		mid := bucketMid(s.buckets[0].idx)
		s.Min, s.Max = min(s.Min, mid), max(s.Max, mid)
	}
	return s
}

type bucketCount struct {
	idx int32
	n   int64
}

// DistributionSnapshot summarises the values a Distribution observed. Count, Sum, Min and Max
// are exact; Quantile is answered from the histogram within 1.6% relative error for values
// from 1e-6 to 1.7e13. Min and Max are zero when Count is zero.
type DistributionSnapshot struct {
	Count int64   // observations
	Sum   float64 // their sum
	Min   float64 // the smallest
	Max   float64 // the largest

	buckets []bucketCount // ascending by idx
}

// Mean returns Sum/Count, or 0 for an empty snapshot.
func (s DistributionSnapshot) Mean() float64 {
	if s.Count == 0 {
		return 0
	}
	return s.Sum / float64(s.Count)
}

// Quantile returns the value below which a fraction q of the observations fall, by nearest
// rank: Quantile(0.5) is the median and Quantile(0.99) the 99th percentile. q <= 0 returns Min
// and q >= 1 returns Max; an empty snapshot returns 0.
func (s DistributionSnapshot) Quantile(q float64) float64 {
	if s.Count == 0 {
		return 0
	}
	if q <= 0 || q != q {
		return s.Min
	}
	if q >= 1 {
		return s.Max
	}
	rank := int64(math.Ceil(q * float64(s.Count)))
	if rank < 1 {
		rank = 1
	}
	var seen int64
	for _, b := range s.buckets {
		seen += b.n
		if seen >= rank {
			return s.clamp(bucketMid(b.idx))
		}
	}
	return s.Max
}

func (s DistributionSnapshot) clamp(v float64) float64 {
	return min(max(v, s.Min), s.Max)
}

// Bucket is one non-empty bucket of a distribution's histogram: Count observations v with
// Lower <= v < Upper. Each power of two is split into 32 buckets of equal width, so the
// bounds are exact binary fractions (1, 1.03125, 1.0625, ... 2, 2.0625, ...). The bucket for
// values below 2^-20, zero and negative values included, has Lower -Inf; the top bucket,
// from 2^43 × 63/32 up, has Upper +Inf.
type Bucket struct {
	Lower float64 // smallest value the bucket holds
	Upper float64 // the bucket holds values below Upper
	Count int64   // observations in the bucket, at least 1
}

// Buckets returns the non-empty buckets in ascending order, for exporters that carry the
// histogram itself (Prometheus and OpenTelemetry histograms) rather than statistics derived
// from it. Their counts add up to Count. An empty snapshot has none.
func (s DistributionSnapshot) Buckets() []Bucket {
	if len(s.buckets) == 0 {
		return nil
	}
	out := make([]Bucket, len(s.buckets))
	for k, b := range s.buckets {
		out[k] = Bucket{Lower: bucketLower(b.idx), Upper: bucketLower(b.idx + 1), Count: b.n}
		if b.idx == zeroBucket {
			out[k].Lower = math.Inf(-1)
		}
	}
	return out
}

// bucketLower returns the smallest value of bucket i; for the index past the top bucket,
// +Inf.
func bucketLower(i int32) float64 {
	switch {
	case i == zeroBucket:
		return 0
	case i >= numOctaves*subBuckets:
		return math.Inf(1)
	}
	e := int(i>>subBits) + minExp
	return math.Ldexp(1+float64(i&(subBuckets-1))/subBuckets, e)
}

// Merge returns the distribution of both snapshots' observations together, as if one
// Distribution had observed them all. Merging is exact: quantiles of the result keep the
// histogram's error bound.
func (s DistributionSnapshot) Merge(o DistributionSnapshot) DistributionSnapshot {
	switch {
	case o.Count == 0:
		return s
	case s.Count == 0:
		return o
	}
	out := DistributionSnapshot{
		Count:   s.Count + o.Count,
		Sum:     s.Sum + o.Sum,
		Min:     min(s.Min, o.Min),
		Max:     max(s.Max, o.Max),
		buckets: make([]bucketCount, 0, max(len(s.buckets), len(o.buckets))),
	}
	i, j := 0, 0
	for i < len(s.buckets) || j < len(o.buckets) {
		switch {
		case j == len(o.buckets) || (i < len(s.buckets) && s.buckets[i].idx < o.buckets[j].idx):
			out.buckets = append(out.buckets, s.buckets[i])
			i++
		case i == len(s.buckets) || o.buckets[j].idx < s.buckets[i].idx:
			out.buckets = append(out.buckets, o.buckets[j])
			j++
		default:
			out.buckets = append(out.buckets, bucketCount{idx: s.buckets[i].idx, n: s.buckets[i].n + o.buckets[j].n})
			i++
			j++
		}
	}
	return out
}

// since returns the observations made after prev was taken from the same distribution. Min
// and Max stay the lifetime extremes: an interval's own extremes are not tracked (that would
// need a reset only one reader could own), and valuesCounts uses them only as hints.
func (s DistributionSnapshot) since(prev DistributionSnapshot) DistributionSnapshot {
	if prev.Count == 0 {
		return s
	}
	out := DistributionSnapshot{Count: s.Count - prev.Count, Sum: s.Sum - prev.Sum, Min: s.Min, Max: s.Max}
	j := 0
	var total int64
	for _, b := range s.buckets {
		for j < len(prev.buckets) && prev.buckets[j].idx < b.idx {
			j++
		}
		n := b.n
		if j < len(prev.buckets) && prev.buckets[j].idx == b.idx {
			n -= prev.buckets[j].n
		}
		if n > 0 {
			out.buckets = append(out.buckets, bucketCount{idx: b.idx, n: n})
			total += n
		}
	}
	// Count comes from the buckets, so a racing observation can't make them disagree.
	out.Count = total
	if total == 0 {
		return DistributionSnapshot{}
	}
	return out
}

// valuesCounts converts the histogram into CloudWatch's Values and Counts: one value per
// non-empty bucket, ascending and distinct. Each bucket is represented by its midpoint, except
// that Min and Max replace one observation of the lowest and highest buckets when they fall
// in them. For an interval's histogram (see since) Min and Max are the lifetime extremes, so
// CloudWatch's Minimum and Maximum come out exact for the interval that saw them and within
// the bucket error otherwise.
func (s DistributionSnapshot) valuesCounts() (values, counts []float64) {
	if s.Count == 0 {
		return nil, nil
	}
	type vc struct{ v, c float64 }
	out := make([]vc, 0, len(s.buckets)+2)
	last := len(s.buckets) - 1
	for k, b := range s.buckets {
		n := float64(b.n)
		mid := s.clamp(bucketMid(b.idx))
		if k == 0 && bucketOf(s.Min) == b.idx && n > 0 {
			out = append(out, vc{s.Min, 1})
			n--
		}
		if k == last && bucketOf(s.Max) == b.idx && n > 0 {
			out = append(out, vc{s.Max, 1})
			n--
		}
		if n > 0 {
			out = append(out, vc{mid, n})
		}
	}
	slices.SortFunc(out, func(a, b vc) int {
		switch {
		case a.v < b.v:
			return -1
		case a.v > b.v:
			return 1
		}
		return 0
	})
	values = make([]float64, 0, len(out))
	counts = make([]float64, 0, len(out))
	for _, e := range out {
		if n := len(values); n > 0 && values[n-1] == e.v {
			counts[n-1] += e.c
			continue
		}
		values = append(values, e.v)
		counts = append(counts, e.c)
	}
	return values, counts
}
