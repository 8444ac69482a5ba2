package producer

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// TestPutAsyncAllocations: once its buffers exist, the producer allocates at most once per
// ten records put, amortized over everything it does for them (aggregation, batching,
// request bodies, results), at the sizes the benchmarks use. It holds under the race detector
// too: the producer keeps its buffers in free lists, which it does not empty.
func TestPutAsyncAllocations(t *testing.T) {
	for _, size := range []int{100, 1024} {
		t.Run(strconv.Itoa(size)+"B", func(t *testing.T) {
			p, err := New(newInstant(4), Config{StreamName: "alloc", Logger: quietLogger, RateLimit: 1 << 30})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(context.Background())
			for len(p.table.Load().shards) == 0 {
				time.Sleep(time.Millisecond)
			}
			data := make([]byte, size)
			const warm, n = 100_000, 200_000
			recs := make([]Record, warm+n)
			for i := range recs {
				recs[i] = Record{PartitionKey: "key-" + strconv.Itoa(i%1000), Data: data}
			}
			var failed atomic.Int64
			done := func(_ *Record, res Result) {
				if res.Err != nil {
					failed.Add(1)
				}
			}
			ctx := context.Background()
			put := func(rs []Record) {
				for i := range rs {
					if err := p.PutAsync(ctx, &rs[i], done); err != nil {
						t.Fatal(err)
					}
				}
				if err := p.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			}
			put(recs[:warm])
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			put(recs[warm:])
			runtime.ReadMemStats(&after)
			if f := failed.Load(); f > 0 {
				t.Fatalf("%d records failed", f)
			}
			per := float64(after.Mallocs-before.Mallocs) / n
			t.Logf("%.4f allocations per record", per)
			if per > 0.1 {
				t.Errorf("%.3f allocations per record, want at most 0.1", per)
			}
		})
	}
}
