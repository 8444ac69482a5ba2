package producer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/shardline/shardline/compression"
	"github.com/shardline/shardline/metrics"
)

// capacity throttles entries beyond perSec in each one-second window, as a shard at its
// limit does, and remembers which entries it throttled.
type capacity struct {
	mu      sync.Mutex
	perSec  int
	window  time.Time
	used    int
	history []bool
}

func (c *capacity) hook(string, types.PutRecordsRequestEntry) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if now.Sub(c.window) >= time.Second {
		c.window, c.used = now, 0
	}
	c.used++
	c.history = append(c.history, c.used > c.perSec)
	if c.used > c.perSec {
		return "ProvisionedThroughputExceededException"
	}
	return ""
}

func (c *capacity) entries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.history)
}

// share returns the share of throttled entries among entries [from, to).
func (c *capacity) share(from, to int) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, th := range c.history[from:to] {
		if th {
			n++
		}
	}
	return float64(n) / float64(to-from)
}

// storm puts records into one shard that accepts 200 records/s until the shard has seen
// total entries, then ends the storm. It returns the shard's record and the lowest rate the
// limiter allowed. Progress is measured in entries, not seconds, so that a slow machine
// changes how long the storm lasts but not what it shows.
func storm(t *testing.T, adaptive bool, total int) (*capacity, float64, *Producer) {
	f := newFake(t, 1)
	c := &capacity{perSec: 200}
	f.entryHook = c.hook
	p := newTestProducer(t, f, Config{
		DisableAggregation:  true,
		DisableAdaptiveRate: !adaptive,
		Linger:              5 * time.Millisecond,
		RetryBaseDelay:      10 * time.Millisecond,
		RetryMaxDelay:       100 * time.Millisecond,
		MaxBufferedRecords:  300,
	})
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		data := []byte("payload")
		for {
			rec := &Record{PartitionKey: "hot", Data: data}
			if err := p.PutAsync(ctx, rec, func(_ *Record, res Result) {
				if res.Err != nil {
					t.Errorf("result: %v", res.Err)
				}
			}); err != nil {
				return
			}
		}
	}()
	minRate := 1e9
	deadline := time.Now().Add(40 * time.Second)
	for c.entries() < total {
		if time.Now().After(deadline) {
			t.Fatalf("the storm saw only %d entries", c.entries())
		}
		time.Sleep(20 * time.Millisecond)
		for _, r := range p.Stats().AdaptiveRateLimit {
			minRate = min(minRate, r)
		}
	}
	stop()
	wg.Wait()
	f.set(func(f *fakeKinesis) { f.entryHook = nil }) // the storm ends
	return c, minRate, p
}

// TestAdaptiveRateSettlesStorm shows the adaptive rate at work: under a shard that accepts
// 200 records/s, the adaptive limiter cuts its rate and the share of throttled entries
// falls, while the fixed KPL-style limiter keeps being throttled as much as at first; after
// the storm the adaptive rate climbs back.
func TestAdaptiveRateSettlesStorm(t *testing.T) {
	const total, window = 6000, 400
	fixed, fixedMin, pf := storm(t, false, total)
	closeProducer(t, pf)
	adaptive, adaptiveMin, pa := storm(t, true, total)
	fFirst, fLast := fixed.share(0, window), fixed.share(total-window, total)
	aFirst, aLast := adaptive.share(0, window), adaptive.share(total-window, total)
	t.Logf("throttled share, first and last %d entries: fixed %.2f → %.2f, adaptive %.2f → %.2f; lowest adaptive rate %.0f/s",
		window, fFirst, fLast, aFirst, aLast, adaptiveMin)

	if fixedMin != 1500 {
		t.Errorf("fixed rate moved to %.0f", fixedMin)
	}
	if adaptiveMin > 750 {
		t.Errorf("adaptive rate stayed at %.0f/s or more under the storm", adaptiveMin)
	}
	// The first entries are the burst the limiter starts with, half of them refused whatever
	// the limiter does; by the end the adaptive limiter must refuse clearly fewer.
	if aLast >= aFirst*0.8 {
		t.Errorf("adaptive: throttled share went from %.2f to %.2f", aFirst, aLast)
	}
	if aLast*2 >= fLast {
		t.Errorf("at the end of the storm %.2f of the adaptive entries were throttled, %.2f of the fixed", aLast, fLast)
	}
	// After the storm the rate recovers to RateLimit (1,500/s), its step doubling each second.
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := pa.Stats().AdaptiveRateLimit["shardId-000000000000"]
		if r >= 1500 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rate back to %.0f/s only", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	closeProducer(t, pa)
	if s := pa.Stats(); s.ThrottledRecords == 0 || s.UserRecordsFailed != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestMetricsRegistry(t *testing.T) {
	reg := metrics.NewRegistry()
	f := newFake(t, 2)
	p := newTestProducer(t, f, Config{Metrics: reg, StreamName: "s1"})
	recs := makeRecords(1000, 10, 100)
	r := newResults(t)
	putAll(t, p, recs, r)
	closeProducer(t, p)
	snap := reg.Snapshot()
	stream := metrics.Dim(metrics.DimStreamName, "s1")
	if n := snap.CounterSum(metrics.UserRecordsPut, stream); n != 1000 {
		t.Fatalf("UserRecordsPut = %d", n)
	}
	if n := snap.CounterSum(metrics.UserRecordsDataPut, stream); n != 100_000 {
		t.Fatalf("UserRecordsDataPut = %d", n)
	}
	if n := snap.CounterSum(metrics.KinesisRecordsPut, stream); n == 0 || n > 10 {
		t.Fatalf("KinesisRecordsPut = %d", n)
	}
	if n := snap.CounterSum(metrics.ShardMapRefreshes, stream); n != 1 {
		t.Fatalf("ShardMapRefreshes = %d", n)
	}
	if d := snap.MergedDistribution(metrics.BufferingTime, stream); d.Count == 0 {
		t.Fatal("no BufferingTime")
	}
	if d := snap.MergedDistribution(metrics.RetriesPerRecord, stream); d.Count == 0 || d.Max != 0 {
		t.Fatalf("RetriesPerRecord %+v", d)
	}
	if g, ok := snap.Find(metrics.AdaptiveRateLimit, stream, metrics.Dim(metrics.DimShardID, "shardId-000000000000")); !ok || g.Gauge != 1500 {
		t.Fatalf("AdaptiveRateLimit %+v %v", g, ok)
	}
}

func TestSplitWhileProducing(t *testing.T) {
	f := newFake(t, 2)
	p := newTestProducer(t, f, Config{Linger: 5 * time.Millisecond})
	recs := makeRecords(4000, 300, 50)
	r := newResults(t)
	r.expect(len(recs))
	for i := range recs {
		if err := p.PutAsync(context.Background(), &recs[i], r.done); err != nil {
			t.Fatal(err)
		}
		if i == 1500 {
			f.split(0)
		}
		if i%200 == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	r.wait(20 * time.Second)
	closeProducer(t, p)
	for i := range recs {
		if res, _ := r.get(&recs[i]); res.Err != nil {
			t.Fatalf("record %d: %v", i, res.Err)
		}
	}
	checkStream(t, f.read(t), recs, dupsOK|unordered)
	if s := p.Stats(); s.Shards != 3 || s.ShardMapRefreshes < 2 {
		t.Fatalf("%d shards, %d refreshes", s.Shards, s.ShardMapRefreshes)
	}
}

func TestCompression(t *testing.T) {
	for _, codec := range []compression.Codec{compression.Zstd, compression.Gzip, compression.Snappy} {
		f := newFake(t, 2)
		p := newTestProducer(t, f, Config{Compression: codec})
		recs := makeRecords(2000, 20, 300)
		r := newResults(t)
		putAll(t, p, recs, r)
		closeProducer(t, p)
		checkStream(t, f.read(t), recs, 0)
		s := p.Stats()
		if s.KinesisRecordsDataPut*5 > s.UserRecordsDataPut {
			t.Fatalf("%s: %d user bytes sent as %d", codec, s.UserRecordsDataPut, s.KinesisRecordsDataPut)
		}
		for _, sh := range f.shards {
			for _, rec := range sh.records {
				if !compression.IsFramed(rec.data) {
					t.Fatalf("%s: unframed blob", codec)
				}
			}
		}
	}
}

func TestCompressionEdgeCases(t *testing.T) {
	f := newFake(t, 1)
	p := newTestProducer(t, f, Config{Compression: compression.Zstd, DisableAggregation: true})
	defer closeProducer(t, p)
	// Data that looks like a frame but is not compressible is escaped, not mangled.
	fake := append([]byte(compression.Magic), make([]byte, 16)...)
	_, _ = rand.Read(fake[4:])
	if _, err := p.Put(context.Background(), Record{PartitionKey: "k", Data: fake}); err != nil {
		t.Fatal(err)
	}
	// Over 1 MiB before compression but far under after it: accepted.
	big := bytes.Repeat([]byte("compressible "), 200_000)
	if _, err := p.Put(context.Background(), Record{PartitionKey: "k", Data: big}); err != nil {
		t.Fatalf("2.6 MB of text: %v", err)
	}
	// Incompressible and over 1 MiB: fails with a validation error in its result.
	noise := make([]byte, 1<<20+10)
	_, _ = rand.Read(noise)
	_, err := p.Put(context.Background(), Record{PartitionKey: "k", Data: noise})
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Field != "Data" {
		t.Fatalf("incompressible 1 MiB: %v", err)
	}
	got := f.read(t)
	if len(got) != 2 || got[0].data != string(fake) || got[1].data != string(big) {
		t.Fatalf("read back %d records", len(got))
	}
}

// TestRetryAfterReshard fails a request that was in flight while its shard was split: its
// records must be routed to the children, not retried on the closed parent.
func TestRetryAfterReshard(t *testing.T) {
	f := newFake(t, 1)
	release := make(chan struct{})
	f.callHook = func(call int, _ *kinesis.PutRecordsInput) error {
		if call == 1 {
			<-release
			return &types.InternalFailureException{Message: aws.String("lost")}
		}
		return nil
	}
	p := newTestProducer(t, f, Config{Linger: -1, RetryBaseDelay: time.Millisecond})
	recs := makeRecords(300, 40, 20)
	r := newResults(t)
	putAll(t, p, recs, r)
	for f.callCount() == 0 {
		time.Sleep(time.Millisecond)
	}
	f.split(0)
	p.requestRefresh()
	for len(p.table.Load().shards) != 2 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	r.wait(10 * time.Second)
	closeProducer(t, p)
	for i := range recs {
		res, _ := r.get(&recs[i])
		if res.Err != nil || res.ShardID == "shardId-000000000000" {
			t.Fatalf("record %d: %+v", i, res)
		}
	}
	checkStream(t, f.read(t), recs, unordered)
	if s := p.Stats(); s.Shards != 2 {
		t.Fatalf("%d shards", s.Shards)
	}
}
