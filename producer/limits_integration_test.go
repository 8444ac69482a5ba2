package producer_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardline/shardline/kinesistest"
	"github.com/shardline/shardline/producer"
)

// limitedStream starts a kinesistest server, which enforces the service's per-shard write
// limits (1,000 records/s and 1 MiB/s, token buckets on the real clock), creates a stream of
// shards shards on it, and returns a client and the stream's name.
//
// Reading the stream back meets the per-shard read limits too (5 GetRecords calls/s, 2 MiB/s):
// read with reader, whose SDK retries throttled calls.
func limitedStream(t *testing.T, shards int, faults ...kinesistest.FaultRule) (*kinesis.Client, *kinesistest.Server, string) {
	t.Helper()
	srv := kinesistest.NewServer(kinesistest.Options{Faults: faults, Seed: 5})
	t.Cleanup(srv.Close)
	kc := srv.Client()
	const stream = "limits"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(int32(shards))}); err != nil {
		t.Fatal(err)
	}
	return kc, srv, stream
}

func reader(srv *kinesistest.Server) *kinesis.Client {
	return srv.Client(func(o *kinesis.Options) { o.RetryMaxAttempts = 30 })
}

// tally counts what a reader saw: user records read more than once, and per-key order
// inversions (a record read after a later record of its key had been read first). Records
// that are not in want, or that are missing although reported written, fail the test.
func tally(t *testing.T, got []readBack, want []producer.Record, ok func(int) bool) (dups, inversions int) {
	t.Helper()
	index := make(map[string]int, len(want))
	for i, r := range want {
		index[string(r.Data)] = i
	}
	seen := make(map[string]bool, len(got))
	last := map[string]int{}
	for _, r := range got {
		if _, ok := index[r.data]; !ok {
			t.Fatalf("stream holds a record that was not put: %.60q", r.data)
		}
		if seen[r.data] {
			dups++
			continue
		}
		seen[r.data] = true
		n, _ := strconv.Atoi(strings.SplitN(r.data, "#", 3)[1])
		if prev, has := last[r.pk]; has && n < prev {
			inversions++
		}
		last[r.pk] = max(last[r.pk], n)
	}
	for i, r := range want {
		if ok(i) && !seen[string(r.Data)] {
			t.Fatalf("record %d reported written is missing from the stream", i)
		}
	}
	return dups, inversions
}

// failures counts the records whose result is an error, and reports the first.
func failures(t *testing.T, o *outcome, label string) int {
	t.Helper()
	n := 0
	for i := range o.res {
		if o.res[i].Err != nil {
			if n == 0 {
				t.Errorf("%s: record %d: %v", label, i, o.res[i].Err)
			}
			n++
		}
	}
	return n
}

// TestLimitsOverCapacity puts records into one shard of kinesistest, which throttles what a
// real shard would, far faster than the shard takes them: the default RateLimit (150 %)
// starts above the shard's limit, so the service throttles, and the adaptive rate must
// settle near the shard's limit instead of collapsing to its floor. Every record must be
// delivered once within the default RecordTTL; with StrictOrdering, in per-key order.
// One case binds the record limit (100-byte records, unaggregated), the other the byte
// limit (4 KiB records, aggregated). The accepted rate goes to the log beside the limit;
// the test asserts the state the limiter ends in, not the speed.
func TestLimitsOverCapacity(t *testing.T) {
	cases := []struct {
		name      string
		n, size   int
		aggregate bool
		strict    bool
		aggSize   int     // AggregationMaxSize; zero for the default
		limit     float64 // the shard's limit in records per second for these records
	}{
		{name: "Records", n: 5000, size: 100, limit: 1000},
		// StrictOrdering sends one Kinesis record per shard and request, so small
		// aggregates are bound by the round trip; aggregates of up to 1 MiB meet the byte
		// limit.
		{name: "BytesStrict", n: 4000, size: 1024, aggregate: true, strict: true, aggSize: 1 << 20, limit: float64(1<<20) / 1024},
		{name: "Bytes", n: 1000, size: 4096, aggregate: true, limit: float64(1<<20) / 4096},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kc, srv, stream := limitedStream(t, 1)
			p := newProducer(t, kc, producer.Config{
				StreamName:         stream,
				DisableAggregation: !tc.aggregate,
				StrictOrdering:     tc.strict,
				AggregationMaxSize: tc.aggSize,
				MaxBufferedRecords: tc.n, // the whole load is offered at once
				Linger:             20 * time.Millisecond,
			})
			recs := testRecords(tc.n, 50, tc.size)
			o := newOutcome(t, len(recs))
			start := time.Now()
			putAll(t, p, recs, o)
			o.wait(60 * time.Second)
			took := time.Since(start)
			s := p.Stats()
			closeWithin(t, p, 10*time.Second)
			failed := failures(t, o, tc.name)
			dups, inv := tally(t, readStream(t, reader(srv), stream), recs, o.ok)
			var rate float64
			for _, v := range s.AdaptiveRateLimit {
				rate = v
			}
			accepted := float64(tc.n) / took.Seconds()
			t.Logf("%s: %d records, %d failed or expired, %d duplicates, %d order inversions, %d Kinesis records throttled; "+
				"%v, accepted %.0f records/s (%.0f%% of the shard's %.0f/s; ideal %v); adaptive rate at the end %.0f records/s",
				tc.name, tc.n, failed, dups, inv, s.ThrottledRecords, took.Round(time.Millisecond), accepted,
				100*accepted/tc.limit, tc.limit, time.Duration(float64(tc.n)/tc.limit*float64(time.Second)).Round(time.Millisecond), rate)
			if s.ThrottledRecords == 0 {
				t.Fatal("the shard never throttled: the load was not over its capacity")
			}
			if dups != 0 {
				t.Errorf("%d duplicates from throttles, which write nothing", dups)
			}
			if tc.strict && inv != 0 {
				t.Errorf("%d order inversions with StrictOrdering", inv)
			}
			// The adaptive rate is the configured 1,500 records/s times a factor; a collapse
			// leaves it at or near its floor (2 %, 30 records/s). Settling near the shard's
			// limit leaves it at least at half of 1,000 records/s.
			if rate < 500 {
				t.Errorf("adaptive rate ended at %.0f records/s, far under the shard's 1,000", rate)
			}
		})
	}
}

// TestLimitsThrottleStorm runs the 50 % per-entry throttle storm on kinesistest, on top of
// its real per-shard limits: every record must be delivered once within the default
// RecordTTL, in per-key order with StrictOrdering. The time beside a clean run on the same
// server goes to the log.
func TestLimitsThrottleStorm(t *testing.T) {
	for _, strict := range []bool{false, true} {
		var clean time.Duration
		for _, storm := range []bool{false, true} {
			var rules []kinesistest.FaultRule
			if storm {
				rules = append(rules, kinesistest.FaultRule{Operation: "PutRecords", ThrottleEntries: 0.5})
			}
			kc, srv, stream := limitedStream(t, 4, rules...)
			p := newProducer(t, kc, producer.Config{StreamName: stream, StrictOrdering: strict, AggregationMaxSize: 8000})
			recs := testRecords(20000, 400, 100)
			o := newOutcome(t, len(recs))
			start := time.Now()
			putAll(t, p, recs, o)
			o.wait(90 * time.Second)
			took := time.Since(start)
			s := p.Stats()
			closeWithin(t, p, 30*time.Second)
			label := "strict " + strconv.FormatBool(strict) + " storm " + strconv.FormatBool(storm)
			failed := failures(t, o, label)
			dups, inv := tally(t, readStream(t, reader(srv), stream), recs, o.ok)
			if !storm {
				clean = took
			}
			t.Logf("%s: %d records, %d failed or expired, %d duplicates, %d order inversions, %d Kinesis records throttled, %v (clean run %v, %.1f×)",
				label, len(recs), failed, dups, inv, s.ThrottledRecords, took.Round(time.Millisecond), clean.Round(time.Millisecond), float64(took)/float64(clean))
			if dups != 0 {
				t.Errorf("%s: %d duplicates from throttles, which write nothing", label, dups)
			}
			if strict && inv != 0 {
				t.Errorf("%s: %d order inversions with StrictOrdering", label, inv)
			}
			if storm && s.ThrottledRecords == 0 {
				t.Fatalf("%s: nothing was throttled", label)
			}
		}
	}
}
