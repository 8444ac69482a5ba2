package aggregation

import (
	"crypto/md5"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// benchSizes are the user record payload sizes measured.
var benchSizes = []struct {
	name string
	size int
}{
	{"100B", 100},
	{"1KiB", 1024},
}

// benchRecords returns user records spread over a pool of 64 partition keys,
// enough to fill many aggregates of DefaultMaxAggregateSize.
func benchRecords(size int) []UserRecord {
	rng := rand.New(rand.NewPCG(1, uint64(size)))
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%08x-%02d", rng.Uint32(), i)
	}
	recs := make([]UserRecord, 1024)
	for i := range recs {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		recs[i] = UserRecord{PartitionKey: keys[rng.IntN(len(keys))], Data: data}
	}
	return recs
}

// fullAggregate encodes one aggregate of about DefaultMaxAggregateSize bytes
// from recs and returns it with the number of user records inside.
func fullAggregate(b *testing.B, recs []UserRecord) ([]byte, int) {
	var agg Aggregator
	for i := range recs {
		if err := agg.Add(recs[i]); err == ErrFull {
			break
		} else if err != nil {
			b.Fatal(err)
		}
	}
	rec, _ := agg.Flush()
	return rec.Data, rec.Records
}

var sumSink [md5.Size]byte

// meter measures allocations and process CPU time over a benchmark loop.
type meter struct {
	mallocs uint64
	cpu     time.Duration
	cpuOK   bool
}

func (m *meter) start() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.mallocs = ms.Mallocs
	m.cpu, m.cpuOK = processCPU()
}

// report adds the per-record metrics: wall and CPU nanoseconds, and with
// allocs, allocations.
func (m *meter) report(b *testing.B, records int, allocs bool) {
	cpu, ok := processCPU()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
	if ok && m.cpuOK {
		b.ReportMetric(float64((cpu-m.cpu).Nanoseconds())/float64(records), "cpu-ns/record")
	}
	if allocs {
		b.ReportMetric(float64(ms.Mallocs-m.mallocs)/float64(records), "allocs/record")
	}
}

// BenchmarkEncode fills aggregates to DefaultMaxAggregateSize and flushes
// them, handing each emitted buffer back through FlushInto as a producer does
// once a put completes. The md5-floor
// sub-benchmark hashes an aggregate of the same size: no encoder can do less.
// One op is one aggregate; ns/record is the figure to compare, and
// cpu-ns/record the one to trust on a busy machine.
func BenchmarkEncode(b *testing.B) {
	for _, sz := range benchSizes {
		recs := benchRecords(sz.size)
		blob, perAgg := fullAggregate(b, recs)
		b.Run(sz.name+"/shardline", func(b *testing.B) {
			var agg Aggregator
			var buf []byte
			next, records, userBytes := 0, 0, 0
			var m meter
			m.start()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for {
					r := recs[next]
					err := agg.Add(r)
					if err == ErrFull {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					userBytes += len(r.Data)
					next = (next + 1) % len(recs)
				}
				rec, _ := agg.FlushInto(buf)
				buf = rec.Buffer()
				records += rec.Records
			}
			b.StopTimer()
			m.report(b, records, true)
			b.SetBytes(int64(userBytes / b.N))
		})
		b.Run(sz.name+"/md5-floor", func(b *testing.B) {
			b.SetBytes(int64(perAgg * sz.size))
			var m meter
			m.start()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sumSink = md5.Sum(blob[len(Magic) : len(blob)-ChecksumSize])
			}
			b.StopTimer()
			m.report(b, b.N*perAgg, false)
		})
	}
}

// BenchmarkDecode deaggregates a full aggregate into a reused slice,
// including MD5 verification. The md5-floor sub-benchmark is the
// verification alone.
func BenchmarkDecode(b *testing.B) {
	for _, sz := range benchSizes {
		blob, perAgg := fullAggregate(b, benchRecords(sz.size))
		b.Run(sz.name+"/shardline", func(b *testing.B) {
			b.SetBytes(int64(perAgg * sz.size))
			dst := make([]UserRecord, 0, perAgg)
			var m meter
			m.start()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var err error
				dst, err = Deaggregate(dst[:0], blob, "a", "")
				if err != nil || len(dst) != perAgg {
					b.Fatalf("got %d records, err %v", len(dst), err)
				}
			}
			b.StopTimer()
			m.report(b, b.N*perAgg, true)
		})
		b.Run(sz.name+"/md5-floor", func(b *testing.B) {
			b.SetBytes(int64(perAgg * sz.size))
			var m meter
			m.start()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sumSink = md5.Sum(blob[len(Magic) : len(blob)-ChecksumSize])
			}
			b.StopTimer()
			m.report(b, b.N*perAgg, false)
		})
	}
}
