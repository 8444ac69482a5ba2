package producer

import (
	"runtime"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// TestQueuedAggregatesHoldNoCopyOfTheirData fills the buffer of a producer whose one shard
// cannot send (its PutRecords calls hang) with 40 MiB of records that share one payload,
// and checks what the producer's heap grew by. Aggregates waiting to be sent keep the
// records' framing only: their bytes are made when a request carries them, so the growth
// is the records' bookkeeping plus the one request in flight, well under the data.
// Aggregates that copied their records' data held all 40 MiB again.
func TestQueuedAggregatesHoldNoCopyOfTheirData(t *testing.T) {
	const n, size = 40_000, 1024
	f := newFake(t, 1)
	release := make(chan struct{})
	f.callHook = func(int, *kinesis.PutRecordsInput) error {
		<-release
		return nil
	}
	p := newTestProducer(t, f, Config{RateLimit: 1_000_000})
	shared := make([]byte, size)
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{PartitionKey: "key-" + string(rune('a'+i%26)), Data: shared}
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := newResults(t)
	putAll(t, p, recs, r)
	// Every aggregate sealed and encoded: Linger has run out for all of them.
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Requests == 0 && f.callCount() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(2 * DefaultLinger)
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	close(release)
	r.wait(30 * time.Second)
	closeProducer(t, p)
	data := int64(n * size)
	t.Logf("heap grew %.1f MiB for %.1f MiB of buffered data", float64(grew)/(1<<20), float64(data)/(1<<20))
	if grew > data/2 {
		t.Fatalf("heap grew %d bytes while %d bytes of shared data were buffered: queued aggregates hold copies", grew, data)
	}
}
