package producer

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/shardline/shardline/aggregation"
)

func newTestProducer(t testing.TB, f *fakeKinesis, cfg Config) *Producer {
	t.Helper()
	if cfg.StreamName == "" {
		cfg.StreamName = "test"
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger
	}
	p, err := New(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func putAll(t testing.TB, p *Producer, recs []Record, r *results) {
	t.Helper()
	r.expect(len(recs))
	for i := range recs {
		if err := p.PutAsync(context.Background(), &recs[i], r.done); err != nil {
			t.Fatalf("PutAsync %d: %v", i, err)
		}
	}
}

func TestPutAggregated(t *testing.T) {
	defer checkNoLeak(t)()
	f := newFake(t, 4)
	p := newTestProducer(t, f, Config{})
	recs := makeRecords(5000, 97, 100)
	r := newResults(t)
	putAll(t, p, recs, r)
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.wait(10 * time.Second)
	closeProducer(t, p)

	tbl := p.table.Load()
	for i := range recs {
		res, _ := r.get(&recs[i])
		if res.Err != nil {
			t.Fatalf("record %d: %v", i, res.Err)
		}
		k := aggregation.PartitionKeyHash(recs[i].PartitionKey)
		if want := tbl.lookup(k).id; res.ShardID != want {
			t.Fatalf("record %d reported on %s, its key hashes to %s", i, res.ShardID, want)
		}
		if res.SequenceNumber == "" || res.Attempts != 1 {
			t.Fatalf("record %d: result %+v", i, res)
		}
	}
	checkStream(t, f.read(t), recs, 0)
	s := p.Stats()
	if s.UserRecordsPut != 5000 || s.UserRecordsPending != 0 || s.UserRecordsFailed != 0 {
		t.Fatalf("stats %+v", s)
	}
	// 5000 records of 100 bytes over 4 shards: aggregation must pack them into few Kinesis
	// records (the KPL's 51,200-byte aggregates hold some 450 of them).
	if s.KinesisRecordsPut > 40 {
		t.Fatalf("%d Kinesis records for 5000 user records", s.KinesisRecordsPut)
	}
	if s.ShardMapRefreshes < 1 || s.Shards != 4 {
		t.Fatalf("shard map: %d refreshes, %d shards", s.ShardMapRefreshes, s.Shards)
	}
}

func TestPutNotAggregated(t *testing.T) {
	f := newFake(t, 3)
	p := newTestProducer(t, f, Config{DisableAggregation: true})
	recs := makeRecords(1200, 50, 60)
	r := newResults(t)
	putAll(t, p, recs, r)
	r.wait(10 * time.Second)
	closeProducer(t, p)
	checkStream(t, f.read(t), recs, 0)
	if s := p.Stats(); s.KinesisRecordsPut != 1200 || s.UserRecordsPut != 1200 {
		t.Fatalf("stats %+v", s)
	}
	for i := range recs {
		if res, _ := r.get(&recs[i]); res.SubSequenceNumber != 0 || res.Err != nil {
			t.Fatalf("record %d: %+v", i, res)
		}
	}
}

func TestPutSync(t *testing.T) {
	f := newFake(t, 2)
	p := newTestProducer(t, f, Config{Linger: -1})
	defer closeProducer(t, p)
	res, err := p.Put(context.Background(), Record{PartitionKey: "k", Data: []byte("hello")})
	if err != nil || res.ShardID == "" || res.SequenceNumber == "" || res.Attempts != 1 {
		t.Fatalf("Put = %+v, %v", res, err)
	}
	// An aggregate of one record goes out as the plain record, as the KPL sends it.
	f.mu.Lock()
	for _, s := range f.shards {
		for _, r := range s.records {
			if string(r.data) != "hello" {
				t.Errorf("single record stored as %q", r.data)
			}
		}
	}
	f.mu.Unlock()
	_, err = p.Put(context.Background(), Record{PartitionKey: "", Data: []byte("x")})
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Field != "PartitionKey" {
		t.Fatalf("Put with empty key: %v", err)
	}
}

func TestValidation(t *testing.T) {
	f := newFake(t, 2)
	p := newTestProducer(t, f, Config{})
	defer closeProducer(t, p)
	cases := []struct {
		name  string
		rec   Record
		field string
	}{
		{"empty key", Record{PartitionKey: "", Data: []byte("x")}, "PartitionKey"},
		{"257 characters", Record{PartitionKey: strings.Repeat("é", 257), Data: []byte("x")}, "PartitionKey"},
		{"invalid UTF-8", Record{PartitionKey: "\xff", Data: []byte("x")}, "PartitionKey"},
		// Kinesis counts UTF-16 code units (aggregation.ValidatePartitionKey): 129 emoji are
		// 258 of them.
		{"129 emoji", Record{PartitionKey: strings.Repeat("\U0001F600", 129), Data: []byte("x")}, "PartitionKey"},
		{"hash key not a number", Record{PartitionKey: "k", ExplicitHashKey: "12a", Data: []byte("x")}, "ExplicitHashKey"},
		{"hash key 2^128", Record{PartitionKey: "k", ExplicitHashKey: "340282366920938463463374607431768211456", Data: []byte("x")}, "ExplicitHashKey"},
		{"hash key leading zero", Record{PartitionKey: "k", ExplicitHashKey: "0123", Data: []byte("x")}, "ExplicitHashKey"},
		{"hash key negative", Record{PartitionKey: "k", ExplicitHashKey: "-1", Data: []byte("x")}, "ExplicitHashKey"},
		{"oversized", Record{PartitionKey: "k", Data: make([]byte, 1<<20)}, "Data"},
	}
	good := makeRecords(200, 10, 50)
	r := newResults(t)
	r.expect(len(good))
	for i := range good {
		if err := p.PutAsync(context.Background(), &good[i], r.done); err != nil {
			t.Fatal(err)
		}
		if i < len(cases) {
			tc := cases[i]
			err := p.PutAsync(context.Background(), &tc.rec, r.done)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tc.field || ve.Limit == "" {
				t.Errorf("%s: err = %v, want a *ValidationError on %s", tc.name, err, tc.field)
			}
			if !errors.Is(err, aggregation.ErrInvalid) {
				t.Errorf("%s: %v does not match aggregation.ErrInvalid", tc.name, err)
			}
			if err := p.TryPutAsync(&tc.rec, r.done); !errors.As(err, &ve) {
				t.Errorf("%s: TryPutAsync err = %v", tc.name, err)
			}
		}
	}
	// The largest valid record (1 MiB with its key) goes through.
	big := Record{PartitionKey: "k", Data: make([]byte, 1<<20-1)}
	r.expect(1)
	if err := p.PutAsync(context.Background(), &big, r.done); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.wait(5 * time.Second)
	for i := range good {
		if res, _ := r.get(&good[i]); res.Err != nil {
			t.Fatalf("good record %d failed: %v", i, res.Err)
		}
	}
	if res, _ := r.get(&big); res.Err != nil {
		t.Fatalf("1 MiB record: %v", res.Err)
	}
}

func TestFlushWaitsForResults(t *testing.T) {
	f := newFake(t, 2)
	p := newTestProducer(t, f, Config{Linger: time.Hour})
	defer closeProducer(t, p)
	var n atomic.Int64
	recs := makeRecords(300, 7, 30)
	for i := range recs {
		if err := p.PutAsync(context.Background(), &recs[i], func(*Record, Result) { n.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	if f.callCount() != 0 {
		t.Fatal("records sent before Linger without a Flush")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 300 {
		t.Fatalf("Flush returned with %d of 300 results", n.Load())
	}
}

func TestLinger(t *testing.T) {
	f := newFake(t, 1)
	const linger = 300 * time.Millisecond
	p := newTestProducer(t, f, Config{Linger: linger})
	defer closeProducer(t, p)
	// PutAsync, not Put: a synchronous put sends at once (TestSyncPutDoesNotWaitLinger).
	start := time.Now()
	done := make(chan Result, 1)
	rec := Record{PartitionKey: "k", Data: []byte("x")}
	if err := p.PutAsync(context.Background(), &rec, func(_ *Record, res Result) { done <- res }); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if waited := time.Since(start); waited < linger {
		t.Fatalf("record sent after %v, before Linger %v", waited, linger)
	}
	if res.Attempts != 1 {
		t.Fatalf("result %+v", res)
	}
}

func TestBatchLimits(t *testing.T) {
	f := newFake(t, 2)
	var mu sync.Mutex
	var sizes []int
	f.perCall = func(in *kinesis.PutRecordsInput) {
		mu.Lock()
		sizes = append(sizes, len(in.Records))
		mu.Unlock()
	}
	p := newTestProducer(t, f, Config{DisableAggregation: true, Linger: time.Second, RateLimit: 100_000})
	recs := makeRecords(1700, 40, 20)
	r := newResults(t)
	putAll(t, p, recs, r)
	r.wait(10 * time.Second)
	if f.maxEntries != 500 {
		t.Fatalf("largest request had %d entries, want 500 (requests: %v)", f.maxEntries, sizes)
	}
	// Records of ~600 KB: 5 MiB fits 8, so requests are cut by size, not count.
	bigRecs := make([]Record, 20)
	for i := range bigRecs {
		bigRecs[i] = Record{PartitionKey: "big" + strings.Repeat("x", i), Data: make([]byte, 600_000)}
	}
	f.set(func(f *fakeKinesis) { f.maxEntries, f.maxBytes = 0, 0 })
	r2 := newResults(t)
	putAll(t, p, bigRecs, r2)
	r2.wait(10 * time.Second)
	closeProducer(t, p)
	if f.maxBytes > MaxBatchBytes || f.maxEntries < 2 || f.maxEntries > 8 {
		t.Fatalf("big records: largest request %d entries, %d bytes", f.maxEntries, f.maxBytes)
	}
}

func TestBackpressure(t *testing.T) {
	f := newFake(t, 1)
	gate := make(chan struct{})
	f.gate = gate
	p := newTestProducer(t, f, Config{MaxBufferedRecords: 10, Linger: -1, DisableAggregation: true})
	r := newResults(t)
	recs := makeRecords(12, 3, 10)
	r.expect(11)
	for i := range 10 {
		if err := p.TryPutAsync(&recs[i], r.done); err != nil {
			t.Fatalf("TryPutAsync %d: %v", i, err)
		}
	}
	if err := p.TryPutAsync(&recs[10], r.done); !errors.Is(err, ErrBufferFull) {
		t.Fatalf("11th TryPutAsync: %v, want ErrBufferFull", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err := p.PutAsync(ctx, &recs[10], r.done)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PutAsync on a full buffer: %v, want DeadlineExceeded", err)
	}
	// A blocked put proceeds once results free room.
	errc := make(chan error, 1)
	go func() { errc <- p.PutAsync(context.Background(), &recs[10], r.done) }()
	select {
	case err := <-errc:
		t.Fatalf("PutAsync returned %v while the buffer was full", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(gate)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	r.wait(5 * time.Second)
	// A record larger than MaxBufferedBytes goes alone into an empty buffer.
	p2 := newTestProducer(t, newFake(t, 1), Config{MaxBufferedBytes: 100})
	res, err := p2.Put(context.Background(), Record{PartitionKey: "k", Data: make([]byte, 1000)})
	if err != nil || res.Err != nil {
		t.Fatalf("oversized record into an empty buffer: %v", err)
	}
	closeProducer(t, p2)
	closeProducer(t, p)
}

func TestRetriesOnlyFailedEntries(t *testing.T) {
	f := newFake(t, 4)
	var failed atomic.Int64
	rng := rand.New(rand.NewPCG(7, 7))
	var rngMu sync.Mutex
	f.entryHook = func(shardID string, e types.PutRecordsRequestEntry) string {
		rngMu.Lock()
		defer rngMu.Unlock()
		if rng.IntN(3) == 0 {
			failed.Add(1)
			if rng.IntN(2) == 0 {
				return "ProvisionedThroughputExceededException"
			}
			return "InternalFailure"
		}
		return ""
	}
	p := newTestProducer(t, f, Config{DisableAggregation: true, RetryBaseDelay: time.Millisecond, RetryMaxDelay: 10 * time.Millisecond, DisableAdaptiveRate: true})
	recs := makeRecords(2000, 30, 20)
	r := newResults(t)
	putAll(t, p, recs, r)
	r.wait(20 * time.Second)
	closeProducer(t, p)
	maxAttempts := 0
	for i := range recs {
		res, _ := r.get(&recs[i])
		if res.Err != nil {
			t.Fatalf("record %d: %v", i, res.Err)
		}
		maxAttempts = max(maxAttempts, res.Attempts)
	}
	checkStream(t, f.read(t), recs, unordered)
	f.mu.Lock()
	entries := f.entries
	f.mu.Unlock()
	// Only failed entries are sent again: the stream holds each record once.
	if entries != 2000 {
		t.Fatalf("stream holds %d entries for 2000 records", entries)
	}
	s := p.Stats()
	if s.Retries != failed.Load() || maxAttempts < 2 {
		t.Fatalf("%d retries for %d failed entries (max attempts %d)", s.Retries, failed.Load(), maxAttempts)
	}
	if s.ErrorsByCode["ProvisionedThroughputExceededException"] == 0 || s.ErrorsByCode["InternalFailure"] == 0 {
		t.Fatalf("errors by code %v", s.ErrorsByCode)
	}
}

func TestNonRetryableFailsAtOnce(t *testing.T) {
	f := newFake(t, 2)
	f.callHook = func(int, *kinesis.PutRecordsInput) error {
		return &types.ResourceNotFoundException{Message: aws.String("Stream test not found")}
	}
	p := newTestProducer(t, f, Config{})
	defer closeProducer(t, p)
	recs := makeRecords(100, 5, 10)
	r := newResults(t)
	putAll(t, p, recs, r)
	r.wait(5 * time.Second)
	for i := range recs {
		res, _ := r.get(&recs[i])
		var pe *PutError
		if !errors.As(res.Err, &pe) || pe.Code != "ResourceNotFoundException" || pe.Retryable || res.Attempts != 1 {
			t.Fatalf("record %d: %+v", i, res)
		}
		var nf *types.ResourceNotFoundException
		if !errors.As(res.Err, &nf) || !errors.Is(res.Err, ErrPut) {
			t.Fatalf("record %d: cause not reachable: %v", i, res.Err)
		}
	}
	// A fatal per-entry code fails only its entry.
	f.set(func(f *fakeKinesis) {
		f.callHook = nil
		f.entryHook = func(_ string, e types.PutRecordsRequestEntry) string {
			if aws.ToString(e.PartitionKey) == "bad" {
				return "KMSAccessDeniedException"
			}
			return ""
		}
	})
	bad := Record{PartitionKey: "bad", Data: []byte("x")}
	good := Record{PartitionKey: "good", Data: []byte("y")}
	r2 := newResults(t)
	r2.expect(2)
	_ = p.PutAsync(context.Background(), &bad, r2.done)
	_ = p.PutAsync(context.Background(), &good, r2.done)
	r2.wait(5 * time.Second)
	if res, _ := r2.get(&bad); !errors.Is(res.Err, ErrPut) || !strings.Contains(res.Err.Error(), "KMSAccessDenied") {
		t.Fatalf("bad: %v", res.Err)
	}
	if res, _ := r2.get(&good); res.Err != nil {
		t.Fatalf("good: %v", res.Err)
	}
}

func TestRecordTTL(t *testing.T) {
	f := newFake(t, 2)
	f.entryHook = func(string, types.PutRecordsRequestEntry) string { return "ProvisionedThroughputExceededException" }
	ttl := 400 * time.Millisecond
	p := newTestProducer(t, f, Config{RecordTTL: ttl, RetryBaseDelay: 20 * time.Millisecond, Linger: 10 * time.Millisecond})
	defer closeProducer(t, p)
	recs := makeRecords(50, 5, 10)
	r := newResults(t)
	start := time.Now()
	putAll(t, p, recs, r)
	r.wait(10 * time.Second)
	if time.Since(start) < ttl-20*time.Millisecond {
		t.Fatalf("records expired after %v, TTL %v", time.Since(start), ttl)
	}
	for i := range recs {
		res, _ := r.get(&recs[i])
		var ee *ExpiredError
		if !errors.Is(res.Err, ErrRecordExpired) || !errors.As(res.Err, &ee) || ee.Attempts < 2 {
			t.Fatalf("record %d: %v", i, res.Err)
		}
		var pe *PutError
		if !errors.As(res.Err, &pe) || pe.Code != "ProvisionedThroughputExceededException" {
			t.Fatalf("record %d: last cause %v", i, ee.Last)
		}
	}
	if s := p.Stats(); s.UserRecordsExpired != 50 || s.ThrottledRecords == 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCloseGivesUpWithResults(t *testing.T) {
	defer checkNoLeak(t)()
	f := newFake(t, 2)
	f.gate = make(chan struct{}) // never opened: every call hangs until cancelled
	p := newTestProducer(t, f, Config{Linger: -1})
	recs := makeRecords(500, 20, 20)
	r := newResults(t)
	putAll(t, p, recs, r)
	// Some records are in flight, some queued behind them.
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := p.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want DeadlineExceeded", err)
	}
	r.wait(time.Second) // every record has a result once Close returned
	for i := range recs {
		res, _ := r.get(&recs[i])
		if !errors.Is(res.Err, ErrClosed) || !errors.Is(res.Err, context.DeadlineExceeded) {
			t.Fatalf("record %d: %v", i, res.Err)
		}
	}
	if err := p.PutAsync(context.Background(), &recs[0], r.done); !errors.Is(err, ErrClosed) {
		t.Fatalf("put after Close: %v", err)
	}
	if err := p.Close(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

func TestCloseDrains(t *testing.T) {
	defer checkNoLeak(t)()
	f := newFake(t, 3)
	p := newTestProducer(t, f, Config{Linger: time.Hour})
	recs := makeRecords(1000, 20, 40)
	r := newResults(t)
	putAll(t, p, recs, r)
	closeProducer(t, p) // sends despite the hour of Linger
	r.wait(time.Second)
	checkStream(t, f.read(t), recs, 0)
}

// TestStrictOrdering fails a quarter of the entries at random under StrictOrdering and checks
// that every key's records are read back in order, and that no request carries two Kinesis
// records of one shard that hold records of the same partition key (which a failure of the
// first and a success of the second would put out of order). Records of different keys do
// share requests: with many keys, requests carry several records per shard.
func TestStrictOrdering(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		keys int
	}{
		{"unaggregated, few keys", Config{DisableAggregation: true}, 6},
		{"unaggregated, many keys", Config{DisableAggregation: true}, 300},
		{"aggregated, many keys", Config{AggregationMaxSize: 200}, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, 2)
			rng := rand.New(rand.NewPCG(3, 4))
			var mu sync.Mutex
			most := 0 // Kinesis records of one shard in one request, at most
			f.perCall = func(in *kinesis.PutRecordsInput) {
				perShard := map[string]int{}
				keys := map[string]map[string]bool{} // shard -> partition keys in the request
				f.mu.Lock()
				defer f.mu.Unlock()
				for _, e := range in.Records {
					k, _ := aggregation.EffectiveHashKey(aws.ToString(e.PartitionKey), aws.ToString(e.ExplicitHashKey))
					sh := p2id(f, k)
					perShard[sh]++
					mu.Lock()
					most = max(most, perShard[sh])
					mu.Unlock()
					if keys[sh] == nil {
						keys[sh] = map[string]bool{}
					}
					users, err := aggregation.Deaggregate(nil, e.Data, aws.ToString(e.PartitionKey), "")
					if err != nil {
						t.Errorf("deaggregate: %v", err)
					}
					seen := map[string]bool{}
					for _, u := range users {
						if keys[sh][u.PartitionKey] && !seen[u.PartitionKey] {
							t.Errorf("request carries two Kinesis records for %s with key %s", sh, u.PartitionKey)
						}
						seen[u.PartitionKey] = true
					}
					for k := range seen {
						keys[sh][k] = true
					}
				}
			}
			f.entryHook = func(string, types.PutRecordsRequestEntry) string {
				mu.Lock()
				defer mu.Unlock()
				if rng.IntN(4) == 0 {
					return "InternalFailure"
				}
				return ""
			}
			cfg := tc.cfg
			cfg.StrictOrdering, cfg.RetryBaseDelay, cfg.RetryMaxDelay = true, time.Millisecond, 2*time.Millisecond
			p := newTestProducer(t, f, cfg)
			recs := makeRecords(1200, tc.keys, 10)
			r := newResults(t)
			putAll(t, p, recs, r)
			r.wait(20 * time.Second)
			closeProducer(t, p)
			checkStream(t, f.read(t), recs, 0)
			mu.Lock()
			defer mu.Unlock()
			if tc.keys > 100 && most < 10 {
				t.Errorf("at most %d Kinesis records of a shard per request with %d keys", most, tc.keys)
			}
			t.Logf("at most %d Kinesis records of one shard in a request", most)
		})
	}
}

// p2id names the open shard of the fake holding k. The caller holds the fake's lock.
func p2id(f *fakeKinesis, k aggregation.HashKey) string {
	for _, s := range f.shards {
		if s.open && s.start.Cmp(k) <= 0 && k.Cmp(s.end) <= 0 {
			return s.id
		}
	}
	return ""
}

func TestWholeRequestFailuresRetry(t *testing.T) {
	f := newFake(t, 2)
	var n atomic.Int64
	f.callHook = func(call int, _ *kinesis.PutRecordsInput) error {
		switch n.Add(1) % 4 {
		case 1:
			return &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}
		case 2:
			return &types.InternalFailureException{Message: aws.String("oops")}
		case 3:
			return context.DeadlineExceeded
		}
		return nil
	}
	p := newTestProducer(t, f, Config{RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond, Linger: 5 * time.Millisecond, DisableAdaptiveRate: true})
	recs := makeRecords(600, 12, 30)
	r := newResults(t)
	putAll(t, p, recs, r)
	r.wait(20 * time.Second)
	closeProducer(t, p)
	for i := range recs {
		if res, _ := r.get(&recs[i]); res.Err != nil {
			t.Fatalf("record %d: %v", i, res.Err)
		}
	}
	checkStream(t, f.read(t), recs, 0)
	s := p.Stats()
	for _, code := range []string{"ProvisionedThroughputExceededException", "InternalFailureException", "Timeout"} {
		if s.ErrorsByCode[code] == 0 {
			t.Errorf("no %s in %v", code, s.ErrorsByCode)
		}
	}
}

func TestNoShardMap(t *testing.T) {
	f := newFake(t, 1)
	f.listErr = &types.ResourceNotFoundException{Message: aws.String("no such stream")}
	p := newTestProducer(t, f, Config{})
	defer closeProducer(t, p)
	_, err := p.Put(context.Background(), Record{PartitionKey: "k", Data: []byte("x")})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("Put without a stream: %v", err)
	}
	// A transient ListShards failure just delays the records.
	f.set(func(f *fakeKinesis) { f.listErr = &types.LimitExceededException{Message: aws.String("slow")} })
	time.Sleep(50 * time.Millisecond)
	done := make(chan Result, 1)
	rec := Record{PartitionKey: "k", Data: []byte("y")}
	if err := p.PutAsync(context.Background(), &rec, func(_ *Record, res Result) { done <- res }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	f.set(func(f *fakeKinesis) { f.listErr = nil })
	select {
	case res := <-done:
		if res.Err != nil {
			t.Fatal(res.Err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("no result after ListShards recovered")
	}
}

func TestConfigErrors(t *testing.T) {
	f := newFake(t, 1)
	for _, cfg := range []Config{
		{},
		{StreamName: "s", MaxBatchRecords: 501},
		{StreamName: "s", MaxBatchBytes: MaxRequestBytes + 1},
		{StreamName: "s", AggregationMaxSize: 2 << 20},
		{StreamName: "s", RateLimit: -1},
		{StreamName: "s", Compression: 9},
	} {
		if _, err := New(f, cfg); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
	if _, err := New(nil, Config{StreamName: "s"}); err == nil {
		t.Error("New accepted a nil client")
	}
}
