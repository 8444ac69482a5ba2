package metrics

import (
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

// The benchmarks measure one record per op on handles resolved beforehand, as the roles use
// them. Parallel variants hit one shared handle from GOMAXPROCS goroutines, the producer's
// worst case (every Put of a stream increments the same UserRecordsReceived).

func benchRegistry() *Registry { return NewRegistry() }

func BenchmarkCounterAdd(b *testing.B) {
	c := benchRegistry().Counter(UserRecordsReceived, UnitCount, LevelDetailed, Dim(DimStreamName, "s"))
	b.ReportAllocs()
	for b.Loop() {
		c.Add(1)
	}
}

func BenchmarkCounterAddParallel(b *testing.B) {
	c := benchRegistry().Counter(UserRecordsReceived, UnitCount, LevelDetailed, Dim(DimStreamName, "s"))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Add(1)
		}
	})
}

// BenchmarkAtomicAddParallel is the baseline the adaptive counter improves on: one shared
// atomic.Int64.
func BenchmarkAtomicAddParallel(b *testing.B) {
	var v atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			v.Add(1)
		}
	})
}

func BenchmarkGaugeAddParallel(b *testing.B) {
	g := benchRegistry().Gauge(UserRecordsPending, UnitCount, LevelDetailed, Dim(DimStreamName, "s"))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			g.Add(1)
		}
	})
}

// latencies is a realistic spread of buffering times in milliseconds, so observations land in
// many buckets as they do in production.
var latencies = func() []float64 {
	r := rand.New(rand.NewPCG(1, 1))
	v := make([]float64, 4096)
	for i := range v {
		v[i] = math.Exp(r.NormFloat64()*0.8 + 4)
	}
	return v
}()

func warm(d *Distribution) {
	for _, v := range latencies {
		d.Observe(v)
	}
}

func BenchmarkDistributionObserve(b *testing.B) {
	d := benchRegistry().Distribution(BufferingTime, UnitMilliseconds, LevelSummary, Dim(DimStreamName, "s"))
	warm(d)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.Observe(latencies[i&(len(latencies)-1)])
		i++
	}
}

func BenchmarkDistributionObserveDuration(b *testing.B) {
	d := benchRegistry().Distribution(BufferingTime, UnitMilliseconds, LevelSummary, Dim(DimStreamName, "s"))
	warm(d)
	durs := make([]time.Duration, len(latencies))
	for i, v := range latencies {
		durs[i] = time.Duration(v * 1e6)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.ObserveDuration(durs[i&(len(durs)-1)])
		i++
	}
}

func BenchmarkDistributionObserveParallel(b *testing.B) {
	d := benchRegistry().Distribution(BufferingTime, UnitMilliseconds, LevelSummary, Dim(DimStreamName, "s"))
	warm(d)
	var seed atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(997))
		for pb.Next() {
			d.Observe(latencies[i&(len(latencies)-1)])
			i++
		}
	})
}

func BenchmarkNilCounterAdd(b *testing.B) {
	var c *Counter
	b.ReportAllocs()
	for b.Loop() {
		c.Add(1)
	}
}

// BenchmarkCollect measures one interval's aggregation for a large producer: 1,000 shards
// with a counter and a distribution each, rolled up at stream granularity. It runs off the
// data path, once a minute.
func BenchmarkCollect(b *testing.B) {
	reg := NewRegistry()
	for i := range 1000 {
		dims := shardDims("s", i)
		reg.Counter(UserRecordsPut, UnitCount, LevelSummary, dims...)
		reg.Distribution(BufferingTime, UnitMilliseconds, LevelSummary, dims...)
	}
	col := newCollector(reg, LevelDetailed, time.Minute, t0)
	list := reg.list()
	b.ReportAllocs()
	for b.Loop() {
		for j, s := range list {
			if s.counter != nil {
				s.counter.Add(1)
			} else {
				s.dist.Observe(latencies[j&(len(latencies)-1)])
			}
		}
		points, ts := col.collect(t0)
		datums, _ := buildDatums(rollUp(points, GranularityStream, nil), ts)
		_ = packRequests("ns", datums)
	}
}
