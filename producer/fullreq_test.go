package producer

import (
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// TestFullRequestsWhenLimitsBind offers 64 shards far more records than their rate limits
// (RateLimit 5: 50 records/s each, 3,200/s in all) let through: once the buckets' first
// second is spent, some shard earns a token every third of a millisecond, and a request
// built whenever one is earned carries a handful of records. The producer must instead let
// tokens build up (for at most Linger) and send full requests, since a request costs about
// the same CPU whether it carries 5 records or 500.
func TestFullRequestsWhenLimitsBind(t *testing.T) {
	f := newFake(t, 64)
	var mu sync.Mutex
	var sizes []int
	f.perCall = func(in *kinesis.PutRecordsInput) {
		mu.Lock()
		sizes = append(sizes, len(in.Records))
		mu.Unlock()
	}
	// The first 3,200 records spend the buckets' saved second, the rest go at the limited
	// rate.
	p := newTestProducer(t, f, Config{DisableAggregation: true, RateLimit: 5, MaxBufferedRecords: 40000})
	recs := makeRecords(10000, 4096, 100)
	r := newResults(t)
	start := time.Now()
	putAll(t, p, recs, r)
	r.wait(60 * time.Second)
	took := time.Since(start)
	closeProducer(t, p)
	for i := range recs {
		if res, _ := r.get(&recs[i]); res.Err != nil {
			t.Fatalf("record %d: %v", i, res.Err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, n := range sizes {
		total += n
	}
	mean := float64(total) / float64(len(sizes))
	t.Logf("%d records in %d requests, %.1f records per request, %v", total, len(sizes), mean, took.Round(time.Millisecond))
	// At 3,200 records/s and the default 100 ms Linger, 320 records are earned within a
	// Linger. Before, requests built once the saved second was spent carried a dozen or
	// so, and the mean over the run was about 60.
	if mean < 150 {
		t.Fatalf("%.1f records per request while limits bind", mean)
	}
}
