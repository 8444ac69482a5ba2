package producer_test

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/shardline/shardline/compression"
	"github.com/shardline/shardline/internal/testenv"
	"github.com/shardline/shardline/kinesistest"
	"github.com/shardline/shardline/metrics"
	"github.com/shardline/shardline/producer"
)

// faultyKinesis starts an in-process Kinesis endpoint with the service's limits, whose
// fault rules the test sets, and returns a client for it (one attempt per call, so the
// producer sees every fault) and the server. The fault rules' random choices are seeded,
// so a failing run repeats.
func faultyKinesis(t *testing.T, seed uint64, optFns ...func(*kinesis.Options)) (*kinesis.Client, *kinesistest.Server) {
	srv := kinesistest.NewServer(kinesistest.Options{Seed: seed})
	t.Cleanup(srv.Close)
	return srv.Client(optFns...), srv
}

// TestIntegrationFaults injects each kind of fault into PutRecords while producing and
// checks that every record gets exactly one result, that every record reported written is
// in the stream with its data intact, and that nothing is lost.
func TestIntegrationFaults(t *testing.T) {
	cases := []struct {
		name      string
		rule      kinesistest.FaultRule
		timeout   time.Duration // the producer's RequestTimeout; zero: the default
		aggregate bool
		dups      bool // the fault can write records the producer then writes again
	}{
		{name: "ThrottleEntries", rule: kinesistest.FaultRule{ThrottleEntries: 0.3, Duration: 2 * time.Second}},
		{name: "FailEntries", rule: kinesistest.FaultRule{ThrottleEntries: 0.3, EntryError: kinesistest.CodeInternalFailure, Duration: 2 * time.Second}, aggregate: true},
		{name: "Throttle", rule: kinesistest.FaultRule{Error: kinesistest.CodeProvisionedThroughputExceeded, Times: 4}, aggregate: true},
		{name: "InternalError", rule: kinesistest.FaultRule{Error: kinesistest.CodeInternalFailure, Times: 4}},
		{name: "ServiceUnavailable", rule: kinesistest.FaultRule{Error: kinesistest.CodeServiceUnavailable, Times: 3}, aggregate: true},
		// A server that never answers: the producer's RequestTimeout ends each call.
		{name: "Timeout", rule: kinesistest.FaultRule{Latency: time.Hour, Times: 3}, timeout: 300 * time.Millisecond, aggregate: true},
		{name: "ConnectionReset", rule: kinesistest.FaultRule{Reset: true, Times: 4}},
		{name: "ResetAfterServe", rule: kinesistest.FaultRule{ResetAfterServe: true, Times: 3}, aggregate: true, dups: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kc, srv := faultyKinesis(t, uint64(i+1))
			stream := testenv.CreateStream(t, kc, 2)
			tc.rule.Operation = "PutRecords"
			p := newProducer(t, kc, producer.Config{
				StreamName:         stream,
				DisableAggregation: !tc.aggregate,
				Linger:             20 * time.Millisecond,
				RetryBaseDelay:     20 * time.Millisecond,
				RetryMaxDelay:      200 * time.Millisecond,
				// Small aggregates make requests of many entries, for partial failures.
				AggregationMaxSize: 8000,
				RequestTimeout:     tc.timeout,
			})
			srv.AddFault(tc.rule)
			n := 3000
			if !tc.aggregate {
				n = 1000
			}
			recs := testRecords(n, 50, 60)
			o := newOutcome(t, len(recs))
			putAll(t, p, recs, o)
			closeWithin(t, p, 50*time.Second)
			o.wait(time.Second)
			if got := srv.FaultCount("PutRecords"); got == 0 {
				t.Fatalf("no %s fault was injected", tc.name)
			}
			for i := range recs {
				if o.res[i].Err != nil {
					t.Fatalf("record %d: %v", i, o.res[i].Err)
				}
			}
			dups := verify(t, readStream(t, kc, stream), recs, o.ok, false)
			if dups > 0 && !tc.dups {
				t.Fatalf("%d duplicates from a fault that writes nothing", dups)
			}
			s := p.Stats()
			if len(s.ErrorsByCode) == 0 || s.Retries == 0 {
				t.Fatalf("faults left no trace in stats: %+v", s)
			}
			t.Logf("%d faults, %d retries, %d duplicates, errors %v", srv.FaultCount("PutRecords"), s.Retries, dups, s.ErrorsByCode)
		})
	}
}

// TestIntegrationStrictOrderingUnderFaults fails entries at random and checks that with
// StrictOrdering every key's records are still read back in put order.
func TestIntegrationStrictOrderingUnderFaults(t *testing.T) {
	kc, srv := faultyKinesis(t, 99)
	stream := testenv.CreateStream(t, kc, 2)
	p := newProducer(t, kc, producer.Config{
		StreamName:     stream,
		StrictOrdering: true,
		Linger:         10 * time.Millisecond,
		RetryBaseDelay: 5 * time.Millisecond,
		RetryMaxDelay:  50 * time.Millisecond,
		// Small aggregates make many Kinesis records per shard, so order is really at stake.
		AggregationMaxSize: 2000,
	})
	srv.AddFault(kinesistest.FaultRule{Operation: "PutRecords", ThrottleEntries: 0.3, EntryError: kinesistest.CodeInternalFailure})
	recs := testRecords(2000, 20, 40)
	o := newOutcome(t, len(recs))
	putAll(t, p, recs, o)
	closeWithin(t, p, 50*time.Second)
	o.wait(time.Second)
	for i := range recs {
		if o.res[i].Err != nil {
			t.Fatalf("record %d: %v", i, o.res[i].Err)
		}
	}
	if dups := verify(t, readStream(t, kc, stream), recs, o.ok, true); dups != 0 {
		t.Fatalf("%d duplicates", dups)
	}
	if srv.FaultCount("PutRecords") == 0 {
		t.Fatal("no entry failed")
	}
}

// shardCapacity throttles entries beyond a fixed number per second, as a shard at its limit
// does: the storm of TestIntegrationAdaptiveRate.
type shardCapacity struct {
	mu      sync.Mutex
	perSec  int
	window  time.Time
	used    int
	history []bool // per entry in arrival order: throttled or not
}

func (c *shardCapacity) over(kinesistest.Entry) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if now.Sub(c.window) >= time.Second {
		c.window, c.used = now, 0
	}
	c.used++
	c.history = append(c.history, c.used > c.perSec)
	return c.used > c.perSec
}

// throttledShare returns the share of throttled entries among entries [from, to) of the
// history, and how many entries the history holds.
func (c *shardCapacity) throttledShare(from, to int) (float64, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	to = min(to, len(c.history))
	if to <= from {
		return 0, len(c.history)
	}
	n := 0
	for _, th := range c.history[from:to] {
		if th {
			n++
		}
	}
	return float64(n) / float64(to-from), len(c.history)
}

// TestIntegrationAdaptiveRate puts records into one shard faster than the shard accepts:
// the adaptive rate must fall under the storm so that the throttled entries per second
// drop, and climb back once the storm ends.
func TestIntegrationAdaptiveRate(t *testing.T) {
	kc, srv := faultyKinesis(t, 7)
	stream := testenv.CreateStream(t, kc, 1)
	reg := metrics.NewRegistry()
	p := newProducer(t, kc, producer.Config{
		StreamName:         stream,
		DisableAggregation: true,
		Linger:             10 * time.Millisecond,
		RetryBaseDelay:     20 * time.Millisecond,
		RetryMaxDelay:      200 * time.Millisecond,
		MaxBufferedRecords: 1500,
		Metrics:            reg,
	})
	capacity := &shardCapacity{perSec: 200}
	remove := srv.AddFault(kinesistest.FaultRule{Operation: "PutRecords", Entries: capacity.over})

	var wg sync.WaitGroup
	recs := testRecords(6000, 30, 50)
	o := newOutcome(t, len(recs))
	var accepted atomic.Int64
	putCtx, stopPuts := context.WithCancel(context.Background())
	defer stopPuts()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range recs {
			recs[i].Meta = i
			if err := p.PutAsync(putCtx, &recs[i], o.done); err != nil {
				return // stopped while waiting for room: the rest are never put
			}
			accepted.Add(1)
		}
	}()

	shardRate := func() float64 {
		for _, v := range p.Stats().AdaptiveRateLimit {
			return v
		}
		return 0
	}
	initial := 1500.0 // RateLimit 150% of 1,000 records/s
	// Judge by counts of entries, not by wall-clock windows: the test shares the CPU with
	// other suites and can stall for seconds. The storm runs until the shard has seen
	// 3,000 entries; the share of them throttled must fall from the first 600 to the last.
	const early, total = 600, 6000
	minRate := shardRate()
	deadline := time.Now().Add(40 * time.Second)
	for {
		time.Sleep(50 * time.Millisecond)
		minRate = min(minRate, shardRate())
		if _, n := capacity.throttledShare(0, 0); n >= total {
			break
		}
		if time.Now().After(deadline) {
			_, n := capacity.throttledShare(0, 0)
			t.Fatalf("the storm saw only %d entries", n)
		}
	}
	first, _ := capacity.throttledShare(0, early)
	last, _ := capacity.throttledShare(total-early, total)
	t.Logf("throttled share: %.2f of the first %d entries, %.2f of the last; rate fell to %.0f records/s", first, early, last, minRate)
	if minRate > initial/2 {
		t.Fatalf("rate stayed at %.0f records/s under a storm", minRate)
	}
	if last >= first/2 {
		t.Fatalf("throttling did not settle: %.2f of the first entries throttled, %.2f of the last", first, last)
	}
	if g, ok := reg.Snapshot().Find(metrics.AdaptiveRateLimit, metrics.Dim(metrics.DimStreamName, stream), metrics.Dim(metrics.DimShardID, "shardId-000000000000")); !ok || g.Gauge >= initial {
		t.Fatalf("AdaptiveRateLimit gauge %+v (found %v)", g, ok)
	}
	if reg.Snapshot().CounterSum(metrics.ThrottledRecords) == 0 {
		t.Fatal("ThrottledRecords counter is zero")
	}

	// The storm ends: the rate climbs back to the configured one.
	remove()
	stopPuts()
	wg.Wait()
	deadline = time.Now().Add(20 * time.Second)
	for shardRate() < initial*0.95 {
		if time.Now().After(deadline) {
			t.Fatalf("rate only back to %.0f records/s", shardRate())
		}
		time.Sleep(100 * time.Millisecond)
	}
	closeWithin(t, p, 50*time.Second)
	n := int(accepted.Load())
	o.pending.Add(n - len(recs)) // records never put expect no result
	o.wait(time.Second)
	for i := range n {
		if o.res[i].Err != nil {
			t.Fatalf("record %d: %v", i, o.res[i].Err)
		}
	}
	verify(t, readStream(t, kc, stream), recs[:n], o.ok, false)
}

// TestIntegrationSplitWhileProducing splits a shard while records flow: none may be lost,
// and the producer must notice the new shards.
func TestIntegrationSplitWhileProducing(t *testing.T) {
	kc := testenv.Kinesis(t, nil)
	stream := testenv.CreateStream(t, kc, 2)
	reg := metrics.NewRegistry()
	p := newProducer(t, kc, producer.Config{StreamName: stream, Linger: 20 * time.Millisecond, Metrics: reg})
	recs := testRecords(6000, 200, 80)
	o := newOutcome(t, len(recs))
	split := make(chan error, 1)
	for i := range recs {
		recs[i].Meta = i
		if err := p.PutAsync(context.Background(), &recs[i], o.done); err != nil {
			t.Fatal(err)
		}
		if i == 2000 {
			go func() { split <- splitFirstShard(kc, stream) }()
		}
		if i%100 == 0 {
			time.Sleep(5 * time.Millisecond) // spread the puts over the split
		}
	}
	if err := <-split; err != nil {
		t.Fatal(err)
	}
	// Keep producing after the split so records meet the new shards.
	more := prefixedRecords("after", 2000, 200, 80)
	o2 := newOutcome(t, len(more))
	putAll(t, p, more, o2)
	closeWithin(t, p, 50*time.Second)
	o.wait(time.Second)
	o2.wait(time.Second)
	for i := range recs {
		if o.res[i].Err != nil {
			t.Fatalf("record %d: %v", i, o.res[i].Err)
		}
	}
	got := readStream(t, kc, stream)
	var before, after []readBack
	for _, r := range got {
		if strings.HasPrefix(r.pk, "after-") {
			after = append(after, r)
		} else {
			before = append(before, r)
		}
	}
	verify(t, before, recs, o.ok, false)
	verify(t, after, more, o2.ok, false)
	s := p.Stats()
	if s.Shards != 3 || s.ShardMapRefreshes < 2 {
		t.Fatalf("after the split: %d open shards, %d refreshes", s.Shards, s.ShardMapRefreshes)
	}
	if n := reg.Snapshot().CounterSum(metrics.ShardMapRefreshes); n < 2 {
		t.Fatalf("ShardMapRefreshes metric %d", n)
	}
	t.Logf("%d refreshes; results on %d shards", s.ShardMapRefreshes, len(shardsOf(o2)))
}

func shardsOf(o *outcome) map[string]bool {
	m := map[string]bool{}
	for _, r := range o.res {
		m[r.ShardID] = true
	}
	return m
}

// splitFirstShard splits the stream's first open shard in the middle of its range and waits
// until the stream is active again.
func splitFirstShard(kc *kinesis.Client, stream string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		return err
	}
	var s types.Shard
	for _, sh := range out.Shards {
		if sh.SequenceNumberRange.EndingSequenceNumber == nil {
			s = sh
			break
		}
	}
	// The first shard starts at 0; its middle is half its ending key.
	mid := halfDecimal(*s.HashKeyRange.EndingHashKey)
	if _, err := kc.SplitShard(ctx, &kinesis.SplitShardInput{
		StreamName: aws.String(stream), ShardToSplit: s.ShardId, NewStartingHashKey: aws.String(mid),
	}); err != nil {
		return err
	}
	return testenv.WaitStreamActive(ctx, kc, stream)
}

func halfDecimal(s string) string {
	out := make([]byte, 0, len(s))
	rem := 0
	for i := 0; i < len(s); i++ {
		d := rem*10 + int(s[i]-'0')
		out = append(out, byte('0'+d/2))
		rem = d % 2
	}
	for len(out) > 1 && out[0] == '0' {
		out = out[1:]
	}
	return string(out)
}

// TestIntegrationCompression writes compressed aggregates and reads them back through
// compression.Decode.
func TestIntegrationCompression(t *testing.T) {
	kc := testenv.Kinesis(t, nil)
	stream := testenv.CreateStream(t, kc, 2)
	for _, codec := range []compression.Codec{compression.Zstd, compression.Gzip, compression.Snappy} {
		p := newProducer(t, kc, producer.Config{StreamName: stream, Compression: codec})
		recs := prefixedRecords(codec.String(), 2000, 40, 200)
		o := newOutcome(t, len(recs))
		putAll(t, p, recs, o)
		closeWithin(t, p, 50*time.Second)
		o.wait(time.Second)
		s := p.Stats()
		if s.UserRecordsPut != 2000 || s.KinesisRecordsDataPut*3 > s.UserRecordsDataPut {
			t.Fatalf("%s: %d records, %d bytes of user data in %d bytes of Kinesis records", codec, s.UserRecordsPut, s.UserRecordsDataPut, s.KinesisRecordsDataPut)
		}
		t.Logf("%s: %d user bytes in %d Kinesis bytes", codec, s.UserRecordsDataPut, s.KinesisRecordsDataPut)
	}
	got := readStream(t, kc, stream)
	byCodec := map[string][]readBack{}
	for _, r := range got {
		c, _, _ := strings.Cut(r.pk, "-")
		byCodec[c] = append(byCodec[c], r)
	}
	for _, codec := range []compression.Codec{compression.Zstd, compression.Gzip, compression.Snappy} {
		want := prefixedRecords(codec.String(), 2000, 40, 200)
		if dups := verify(t, byCodec[codec.String()], want, func(int) bool { return true }, true); dups != 0 {
			t.Fatalf("%s: %d duplicates", codec, dups)
		}
	}
}

// TestIntegrationSDKRetriesOff passes a client configured with the SDK's own retries and
// checks that the producer still sees (and counts, and adapts to) every throttle, because
// it turns the SDK's retries off for its calls.
func TestIntegrationSDKRetriesOff(t *testing.T) {
	kc, srv := faultyKinesis(t, 5, func(o *kinesis.Options) { o.RetryMaxAttempts = 5 })
	stream := testenv.CreateStream(t, kc, 1)
	p := newProducer(t, kc, producer.Config{StreamName: stream, RetryBaseDelay: 10 * time.Millisecond})
	srv.AddFault(kinesistest.FaultRule{Operation: "PutRecords", Error: kinesistest.CodeProvisionedThroughputExceeded, Times: 2})
	res, err := p.Put(context.Background(), producer.Record{PartitionKey: "k", Data: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	closeWithin(t, p, 30*time.Second)
	if res.Attempts != 3 || p.Stats().ErrorsByCode["ProvisionedThroughputExceededException"] != 2 {
		t.Fatalf("attempts %d, errors %v: the SDK retried behind the producer's back", res.Attempts, p.Stats().ErrorsByCode)
	}
}

// TestIntegrationReshardKCLOrder splits a shard and then merges its children back while
// records flow, with and without StrictOrdering, and reads the stream back with the Java
// KCL's rule for aggregates (kclKeeps): every record must be there once a KCL application
// would see it, in per-key order. The numbers, beside a run without resharding, go to the
// log.
func TestIntegrationReshardKCLOrder(t *testing.T) {
	run := func(t *testing.T, strict, reshard bool) {
		kc := testenv.Kinesis(t, nil)
		stream := testenv.CreateStream(t, kc, 2)
		p := newProducer(t, kc, producer.Config{StreamName: stream, Linger: 20 * time.Millisecond, StrictOrdering: strict})
		recs := testRecords(4000, 100, 80)
		o := newOutcome(t, len(recs))
		reshards := make(chan error, 1)
		start := time.Now()
		for i := range recs {
			recs[i].Meta = i
			if err := p.PutAsync(context.Background(), &recs[i], o.done); err != nil {
				t.Fatal(err)
			}
			if reshard && i == 1000 {
				go func() { reshards <- splitFirstShard(kc, stream) }()
			}
			if reshard && i == 2500 {
				if err := <-reshards; err != nil {
					t.Fatal(err)
				}
				go func() { reshards <- mergeFirstTwo(kc, stream) }()
			}
			if i%20 == 0 {
				time.Sleep(10 * time.Millisecond) // spread the puts over the reshards
			}
		}
		if reshard {
			if err := <-reshards; err != nil {
				t.Fatal(err)
			}
		}
		closeWithin(t, p, 60*time.Second)
		elapsed := time.Since(start)
		o.wait(time.Second)
		expired := 0
		for i := range recs {
			if o.res[i].Err != nil {
				if errors.Is(o.res[i].Err, producer.ErrRecordExpired) {
					expired++
				}
				t.Errorf("record %d: %v", i, o.res[i].Err)
			}
		}
		got := readStream(t, kc, stream)
		dups := verify(t, got, recs, o.ok, true)
		s := p.Stats()
		t.Logf("strict=%v reshard=%v: %d records, %d read by a KCL-rule reader, %d expired, %d duplicates, 0 order inversions, %v, %d refreshes, %d open shards",
			strict, reshard, len(recs), len(got), expired, dups, elapsed.Round(time.Millisecond), s.ShardMapRefreshes, s.Shards)
		if dups > 0 {
			t.Errorf("%d duplicates visible to a KCL reader", dups)
		}
	}
	for _, strict := range []bool{false, true} {
		name := "default"
		if strict {
			name = "strict"
		}
		t.Run(name+"/clean", func(t *testing.T) { run(t, strict, false) })
		t.Run(name+"/split-merge", func(t *testing.T) { run(t, strict, true) })
	}
}

// mergeFirstTwo merges the two open shards with the lowest hash keys and waits until the
// stream is active again.
func mergeFirstTwo(kc *kinesis.Client, stream string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		return err
	}
	var open []types.Shard
	for _, sh := range out.Shards {
		if sh.SequenceNumberRange.EndingSequenceNumber == nil {
			open = append(open, sh)
		}
	}
	slices.SortFunc(open, func(a, b types.Shard) int {
		x, _ := new(big.Int).SetString(*a.HashKeyRange.StartingHashKey, 10)
		y, _ := new(big.Int).SetString(*b.HashKeyRange.StartingHashKey, 10)
		return x.Cmp(y)
	})
	if len(open) < 2 {
		return fmt.Errorf("only %d open shards", len(open))
	}
	if _, err := kc.MergeShards(ctx, &kinesis.MergeShardsInput{
		StreamName: aws.String(stream), ShardToMerge: open[0].ShardId, AdjacentShardToMerge: open[1].ShardId,
	}); err != nil {
		return err
	}
	return testenv.WaitStreamActive(ctx, kc, stream)
}

// TestIntegrationThrottleStorm throttles half the entries of every PutRecords for the whole
// run, with the default RecordTTL and retry delays, and reads the stream back with the KCL's
// aggregate rule: every record must be there once, in per-key order with StrictOrdering.
// The times beside a clean run go to the log (speed is judged there, not asserted). With
// StrictOrdering the number of partition keys matters: a request carries a shard's Kinesis
// records only while their keys differ, so with 400 keys (every aggregate holds a good share
// of them) each shard sends one at a time, and with 20,000 they share requests.
func TestIntegrationThrottleStorm(t *testing.T) {
	for _, c := range []struct {
		strict bool
		keys   int
	}{{false, 400}, {true, 400}, {true, 20000}} {
		strict := c.strict
		var clean time.Duration
		for _, storm := range []bool{false, true} {
			kc, srv := faultyKinesis(t, 11)
			stream := testenv.CreateStream(t, kc, 4)
			if storm {
				srv.AddFault(kinesistest.FaultRule{Operation: "PutRecords", ThrottleEntries: 0.5})
			}
			p := newProducer(t, kc, producer.Config{StreamName: stream, StrictOrdering: strict, AggregationMaxSize: 8000})
			recs := testRecords(20000, c.keys, 100)
			o := newOutcome(t, len(recs))
			start := time.Now()
			putAll(t, p, recs, o)
			o.wait(90 * time.Second)
			took := time.Since(start)
			s := p.Stats()
			closeWithin(t, p, 30*time.Second)
			failed := 0
			for i := range recs {
				if o.res[i].Err != nil {
					failed++
					if failed == 1 {
						t.Errorf("strict %v storm %v: record %d: %v", strict, storm, i, o.res[i].Err)
					}
				}
			}
			got := readStream(t, kc, stream)
			dups := verify(t, got, recs, o.ok, strict)
			if !storm {
				clean = took
			}
			t.Logf("strict %v, %d keys, storm %v: %d records, %d failed or expired, %d duplicates, %d Kinesis records throttled, %v (clean run %v, %.1f×)",
				strict, c.keys, storm, len(recs), failed, dups, s.ThrottledRecords, took.Round(time.Millisecond), clean.Round(time.Millisecond), float64(took)/float64(clean))
		}
	}
}
