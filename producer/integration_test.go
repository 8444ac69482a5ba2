package producer_test

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/compression"
	"github.com/shardline/shardline/internal/testenv"
	"github.com/shardline/shardline/producer"
)

// readBack is one user record read from the stream.
type readBack struct {
	shard string
	pk    string
	data  string
	seq   *big.Int
	sub   int64
}

// readStream reads every record of every shard from TRIM_HORIZON, parents before children,
// undoing compression and aggregation as a Java KCL consumer does: an aggregate with any user
// record outside the shard's range is dropped whole (see kclKeeps).
func readStream(t *testing.T, kc *kinesis.Client, stream string) []readBack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var shards []types.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := kc.ListShards(ctx, in)
		if err != nil {
			t.Fatalf("ListShards: %v", err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	// Shard IDs grow with creation, so sorting puts parents before their children.
	slices.SortFunc(shards, func(a, b types.Shard) int { return strings.Compare(*a.ShardId, *b.ShardId) })
	var all []readBack
	for _, s := range shards {
		start, _ := aggregation.ParseHashKey(*s.HashKeyRange.StartingHashKey)
		end, _ := aggregation.ParseHashKey(*s.HashKeyRange.EndingHashKey)
		rng := aggregation.ShardRange{ShardID: *s.ShardId, Start: start, End: end}
		it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: s.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatalf("GetShardIterator %s: %v", *s.ShardId, err)
		}
		iter := it.ShardIterator
		empty := 0
		for iter != nil && empty < 3 {
			out, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
			var pte *types.ProvisionedThroughputExceededException
			if errors.As(err, &pte) {
				// A shard serves five reads a second (kinesistest enforces it, as the
				// service does); wait for the next second's allowance.
				time.Sleep(200 * time.Millisecond)
				continue
			}
			if err != nil {
				t.Fatalf("GetRecords %s: %v", *s.ShardId, err)
			}
			if len(out.Records) == 0 {
				empty++
			}
			for _, r := range out.Records {
				blob, err := compression.Decode(r.Data)
				if err != nil {
					t.Fatalf("compression.Decode: %v", err)
				}
				urs, err := aggregation.Deaggregate(nil, blob, aws.ToString(r.PartitionKey), "")
				if err != nil {
					t.Fatalf("Deaggregate: %v", err)
				}
				seq, _ := new(big.Int).SetString(*r.SequenceNumber, 10)
				if len(urs) > 0 && urs[0].Aggregated && !kclKeeps(urs, rng) {
					continue
				}
				for _, u := range urs {
					all = append(all, readBack{shard: *s.ShardId, pk: u.PartitionKey, data: string(u.Data), seq: seq, sub: u.SubSequenceNumber})
				}
			}
			iter = out.NextShardIterator
		}
	}
	return all
}

// kclKeeps applies the Java KCL's rule (software.amazon.kinesis.retrieval.AggregatorUtil.deaggregate
// in awslabs/amazon-kinesis-client): when one user record of an aggregate lies outside the
// shard's hash key range, the application gets none of the aggregate's records.
func kclKeeps(urs []aggregation.UserRecord, rng aggregation.ShardRange) bool {
	for _, u := range urs {
		k, err := aggregation.EffectiveHashKey(u.PartitionKey, u.ExplicitHashKey)
		if err != nil || !rng.Contains(k) {
			return false
		}
	}
	return true
}

// testRecords builds n records over keys partition keys; each record's data names its key and
// its position among that key's records.
func testRecords(n, keys, size int) []producer.Record {
	return prefixedRecords("pk", n, keys, size)
}

// prefixedRecords is testRecords with partition keys that start with prefix, so that the
// records of two batches can be told apart when read back.
func prefixedRecords(prefix string, n, keys, size int) []producer.Record {
	recs := make([]producer.Record, n)
	count := make([]int, keys)
	for i := range recs {
		k := i % keys
		pk := fmt.Sprintf("%s-%d", prefix, k)
		data := fmt.Sprintf("%s#%07d#", pk, count[k])
		count[k]++
		if pad := size - len(data); pad > 0 {
			data += strings.Repeat(string(rune('a'+k%26)), pad)
		}
		recs[i] = producer.Record{PartitionKey: pk, Data: []byte(data)}
	}
	return recs
}

// verify checks that every successful record is in the stream with its data intact, that no
// record appears that was not put, and (when ordered) that each key's first appearances are
// in put order. It returns the number of duplicates.
func verify(t *testing.T, got []readBack, want []producer.Record, ok func(i int) bool, ordered bool) int {
	t.Helper()
	index := make(map[string]int, len(want))
	for i, r := range want {
		index[string(r.Data)] = i
	}
	seen := make(map[string]bool, len(got))
	last := map[string]int{}
	dups := 0
	for _, r := range got {
		if _, ok := index[r.data]; !ok {
			t.Fatalf("stream holds a record that was not put: %.60q", r.data)
		}
		if seen[r.data] {
			dups++
			continue
		}
		seen[r.data] = true
		parts := strings.SplitN(r.data, "#", 3)
		if parts[0] != r.pk {
			t.Fatalf("record %.40q under partition key %q", r.data, r.pk)
		}
		n, _ := strconv.Atoi(parts[1])
		if prev, has := last[r.pk]; ordered && has && n < prev {
			t.Fatalf("key %s: record %d read after record %d", r.pk, n, prev)
		}
		last[r.pk] = n
	}
	missing := 0
	for i, r := range want {
		if ok(i) && !seen[string(r.Data)] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d records reported written are missing from the stream", missing)
	}
	return dups
}

// outcome collects the result of each record by index.
type outcome struct {
	t       *testing.T
	mu      sync.Mutex
	res     []producer.Result
	got     []bool
	pending sync.WaitGroup
}

func newOutcome(t *testing.T, n int) *outcome {
	o := &outcome{t: t, res: make([]producer.Result, n), got: make([]bool, n)}
	o.pending.Add(n)
	return o
}

func (o *outcome) done(rec *producer.Record, res producer.Result) {
	i := rec.Meta.(int)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.got[i] {
		o.t.Errorf("record %d got a second result: %+v", i, res)
		return
	}
	o.got[i], o.res[i] = true, res
	o.pending.Done()
}

func (o *outcome) wait(d time.Duration) {
	o.t.Helper()
	ch := make(chan struct{})
	go func() { o.pending.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(d):
		o.t.Fatalf("results missing after %v", d)
	}
}

func (o *outcome) ok(i int) bool { return o.res[i].Err == nil }

func putAll(t *testing.T, p *producer.Producer, recs []producer.Record, o *outcome) {
	t.Helper()
	for i := range recs {
		recs[i].Meta = i
		if err := p.PutAsync(context.Background(), &recs[i], o.done); err != nil {
			t.Fatalf("PutAsync %d: %v", i, err)
		}
	}
}

func closeWithin(t *testing.T, p *producer.Producer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func newProducer(t *testing.T, kc *kinesis.Client, cfg producer.Config) *producer.Producer {
	t.Helper()
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 20 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	p, err := producer.New(kc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestIntegrationAggregated(t *testing.T) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	done := leakCheck(t, tr.CloseIdleConnections)
	kc := testenv.Kinesis(t, testenv.HTTPClient(tr))
	stream := testenv.CreateStream(t, kc, 4)
	p := newProducer(t, kc, producer.Config{StreamName: stream})
	recs := testRecords(20_000, 500, 100)
	o := newOutcome(t, len(recs))
	start := time.Now()
	putAll(t, p, recs, o)
	closeWithin(t, p, 50*time.Second)
	o.wait(time.Second)
	produced := time.Since(start)
	for i := range recs {
		if o.res[i].Err != nil {
			t.Fatalf("record %d: %v", i, o.res[i].Err)
		}
	}
	got := readStream(t, kc, stream)
	t.Logf("produced in %v, read back in %v", produced, time.Since(start)-produced)
	s := p.Stats()
	// A call that timed out may have been written before it was retried: only then may a
	// record appear twice. (kinesis-mock, starved of CPU by parallel suites, can be slow.)
	if dups := verify(t, got, recs, o.ok, true); dups != 0 && s.ErrorsByCode["Timeout"] == 0 {
		t.Fatalf("%d duplicates without a timeout; stats %+v", dups, s)
	}
	// Results name the shard and sequence number the record was read back under.
	bySeq := map[string]readBack{}
	for _, r := range got {
		bySeq[r.data] = r
	}
	for i := range recs {
		rb, res := bySeq[string(recs[i].Data)], o.res[i]
		if rb.shard != res.ShardID || rb.seq.String() != res.SequenceNumber || rb.sub != res.SubSequenceNumber {
			t.Fatalf("record %d: result %s/%s/%d, read at %s/%s/%d", i, res.ShardID, res.SequenceNumber, res.SubSequenceNumber, rb.shard, rb.seq, rb.sub)
		}
	}
	if s.UserRecordsPut != 20_000 || s.KinesisRecordsPut > 200 {
		t.Fatalf("stats: %d user records in %d Kinesis records", s.UserRecordsPut, s.KinesisRecordsPut)
	}
	t.Logf("20,000 user records in %d Kinesis records, %d requests", s.KinesisRecordsPut, s.Requests)
	done()
}

func TestIntegrationNotAggregated(t *testing.T) {
	kc := testenv.Kinesis(t, nil)
	stream := testenv.CreateStream(t, kc, 2)
	p := newProducer(t, kc, producer.Config{StreamName: stream, DisableAggregation: true})
	recs := testRecords(1500, 40, 80)
	o := newOutcome(t, len(recs))
	putAll(t, p, recs, o)
	closeWithin(t, p, 50*time.Second)
	o.wait(time.Second)
	for i := range recs {
		if o.res[i].Err != nil {
			t.Fatalf("record %d: %v", i, o.res[i].Err)
		}
	}
	verify(t, readStream(t, kc, stream), recs, o.ok, true)
	if s := p.Stats(); s.KinesisRecordsPut != 1500 {
		t.Fatalf("%d Kinesis records for 1500 unaggregated user records", s.KinesisRecordsPut)
	}
}

func TestIntegrationBadInput(t *testing.T) {
	kc := testenv.Kinesis(t, nil)
	stream := testenv.CreateStream(t, kc, 1)
	p := newProducer(t, kc, producer.Config{StreamName: stream})
	good := testRecords(300, 10, 50)
	o := newOutcome(t, len(good))
	bad := []producer.Record{
		{PartitionKey: "", Data: []byte("x")},
		{PartitionKey: strings.Repeat("k", 257), Data: []byte("x")},
		{PartitionKey: "k", ExplicitHashKey: "x1", Data: []byte("x")},
		{PartitionKey: "k", ExplicitHashKey: "340282366920938463463374607431768211456", Data: []byte("x")},
		{PartitionKey: "k", Data: make([]byte, 1<<20)},
	}
	fields := []string{"PartitionKey", "PartitionKey", "ExplicitHashKey", "ExplicitHashKey", "Data"}
	for i := range good {
		good[i].Meta = i
		if err := p.PutAsync(context.Background(), &good[i], o.done); err != nil {
			t.Fatal(err)
		}
		if i < len(bad) {
			err := p.PutAsync(context.Background(), &bad[i], o.done)
			var ve *producer.ValidationError
			if !errors.As(err, &ve) || ve.Field != fields[i] {
				t.Fatalf("bad record %d: %v, want a validation error on %s", i, err, fields[i])
			}
		}
	}
	closeWithin(t, p, 50*time.Second)
	o.wait(time.Second)
	for i := range good {
		if o.res[i].Err != nil {
			t.Fatalf("good record %d: %v", i, o.res[i].Err)
		}
	}
	verify(t, readStream(t, kc, stream), good, o.ok, true)
}
