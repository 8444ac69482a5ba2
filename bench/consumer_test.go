package bench

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	simdbase64 "github.com/segmentio/asm/base64"

	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/consumer"
	"github.com/shardline/shardline/internal/md5lanes"
)

// The consumer benchmarks serve GetRecords answers from prepared bytes through the real SDK
// client: a kinesis.Client whose HTTP client's transport answers each request in process
// (getRecordsTransport), so that the SDK's request signing, middleware and response
// handling all run, and what is timed is the consumer's CPU alone, without a loopback
// connection's system calls. The floor decodes the same bytes.

// Aggregates per GetRecords answer, of the KPL's default aggregate size: at 100 B some
// 13,000 user records an answer, at 1 KiB some 1,500.
const aggregatesPerAnswer = 32

// answersInRing is how many distinct answers the transport rotates through.
const answersInRing = 4

// seqWidth is the width of the sequence numbers the transport writes into the answers.
const seqWidth = 56

// consumerAnswer is one prepared GetRecords answer of shard 0.
type consumerAnswer struct {
	body   []byte
	seqAt  []int    // offsets of each record's sequence number in body
	data   [][]byte // each record's Data, base64, aliasing body
	users  int      // user records in the answer
	maxAgg int      // the largest aggregate, decoded
}

// shardRanges splits the key space in four; shard 0's range is the first quarter.
var shardRanges = func() [4][2]string {
	var r [4][2]string
	quarter := new(big.Int).Lsh(big.NewInt(1), 126)
	for i := range r {
		start := new(big.Int).Mul(quarter, big.NewInt(int64(i)))
		end := new(big.Int).Sub(new(big.Int).Add(start, quarter), big.NewInt(1))
		r[i] = [2]string{start.String(), end.String()}
	}
	return r
}()

// consumerAnswers builds the answers: aggregates of user records of size bytes, with
// partition keys drawn from 4,096 that hash into shard 0's range, each aggregate's own key
// one of its records' as the KPL sets it.
func consumerAnswers(b *testing.B, size int) []*consumerAnswer {
	b.Helper()
	var ks []string
	for i := 0; len(ks) < keyCount; i++ {
		k := "user-" + strconv.Itoa(i*7919)
		if aggregation.PartitionKeyHash(k).Hi>>62 == 0 {
			ks = append(ks, k)
		}
	}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	a := aggregation.NewAggregator(0)
	ki := 0
	arrival := float64(time.Now().UnixMilli()) / 1000
	var out []*consumerAnswer
	for range answersInRing {
		ans := &consumerAnswer{}
		body := []byte(`{"Records":[`)
		type span struct{ off, n int }
		var spans []span
		for n := 0; n < aggregatesPerAnswer; {
			r := aggregation.UserRecord{PartitionKey: ks[ki%len(ks)], Data: payload}
			if err := a.Add(r); err == nil {
				ki++
				ans.users++
				continue
			} else if err != aggregation.ErrFull {
				b.Fatal(err)
			}
			kr, ok := a.Flush()
			if !ok {
				b.Fatal("nothing to flush")
			}
			ans.maxAgg = max(ans.maxAgg, len(kr.Data))
			if n > 0 {
				body = append(body, ',')
			}
			body = append(body, `{"SequenceNumber":"`...)
			ans.seqAt = append(ans.seqAt, len(body))
			body = append(body, strings.Repeat("0", seqWidth)...)
			body = append(body, `","ApproximateArrivalTimestamp":`...)
			body = strconv.AppendFloat(body, arrival, 'E', -1, 64)
			body = append(body, `,"Data":"`...)
			off := len(body)
			body = base64.StdEncoding.AppendEncode(body, kr.Data)
			spans = append(spans, span{off, len(body) - off})
			body = append(body, `","PartitionKey":"`...)
			body = append(body, kr.PartitionKey...)
			body = append(body, `","EncryptionType":"NONE"}`...)
			n++
		}
		// The record that did not fit starts the next answer's first aggregate.
		body = append(body, `],"NextShardIterator":"shardId-000000000000","MillisBehindLatest":0}`...)
		ans.body = body
		for _, s := range spans {
			ans.data = append(ans.data, body[s.off:s.off+s.n])
		}
		out = append(out, ans)
	}
	// Users counted as added include the one left in the aggregator at each answer's end;
	// count each answer's records by decoding instead.
	for _, ans := range out {
		ans.users = 0
		for _, d := range ans.data {
			raw, _ := base64.StdEncoding.DecodeString(string(d))
			users, err := aggregation.Deaggregate(nil, raw, "k", "")
			if err != nil {
				b.Fatal(err)
			}
			ans.users += len(users)
		}
	}
	return out
}

// getRecordsTransport answers the Kinesis calls of a worker reading a stream of four
// shards: shard 0 returns the prepared answers in turn, each with sequence numbers that go
// on from the last answer's, and the other shards have no records.
type getRecordsTransport struct {
	answers []*consumerAnswer
	next    int
	seq     uint64
	calls   atomic.Int64
}

func (t *getRecordsTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	req, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		return nil, err
	}
	var body []byte
	switch op := r.Header.Get("X-Amz-Target"); op {
	case "Kinesis_20131202.ListShards":
		var sb strings.Builder
		sb.WriteString(`{"Shards":[`)
		for i, rg := range shardRanges {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"ShardId":"shardId-%012d","HashKeyRange":{"StartingHashKey":"%s","EndingHashKey":"%s"},"SequenceNumberRange":{"StartingSequenceNumber":"1"}}`, i, rg[0], rg[1])
		}
		sb.WriteString(`]}`)
		body = []byte(sb.String())
	case "Kinesis_20131202.GetShardIterator":
		i := bytes.Index(req, []byte(`"ShardId":"`))
		if i < 0 {
			return nil, fmt.Errorf("GetShardIterator without a shard: %s", req)
		}
		id := req[i+len(`"ShardId":"`):]
		id = id[:bytes.IndexByte(id, '"')]
		body = fmt.Appendf(nil, `{"ShardIterator":"%s"}`, id)
	case "Kinesis_20131202.GetRecords":
		if !bytes.Contains(req, []byte(`"ShardIterator":"shardId-000000000000"`)) {
			body = []byte(`{"Records":[],"NextShardIterator":"idle","MillisBehindLatest":0}`)
			break
		}
		t.calls.Add(1)
		ans := t.answers[t.next%len(t.answers)]
		t.next++
		// The consumer is done with the answer before it asks for the next one (it has
		// read the body and copied what it keeps), so the numbers are written in place.
		for _, at := range ans.seqAt {
			t.seq++
			dst := ans.body[at : at+seqWidth]
			v := t.seq
			for i := len(dst) - 1; i >= 0; i-- {
				dst[i] = byte('0' + v%10)
				v /= 10
			}
			dst[0] = '4' // a Kinesis sequence number starts with 49
			dst[1] = '9'
		}
		body = ans.body
	default:
		return nil, fmt.Errorf("unexpected call %q", op)
	}
	return &http.Response{
		StatusCode:    200,
		Status:        "200 OK",
		Header:        http.Header{"Content-Type": {"application/x-amz-json-1.1"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}, nil
}

// inProcessClient is a kinesis.Client whose requests t answers.
func inProcessClient(t http.RoundTripper) *kinesis.Client {
	return kinesis.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("bench", "bench", ""),
		HTTPClient:  &http.Client{Transport: t},
	}, func(o *kinesis.Options) { o.BaseEndpoint = aws.String("http://kinesis.invalid") })
}

// sdkOnly hides the client behind an interface of the caller's own, as an application's
// wrapper or fake does, and drops the per-call options: the consumer then reads with the
// SDK's own decoder.
type sdkOnly struct{ c *kinesis.Client }

func (s sdkOnly) ListShards(ctx context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return s.c.ListShards(ctx, in)
}

func (s sdkOnly) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	return s.c.GetShardIterator(ctx, in)
}

func (s sdkOnly) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	return s.c.GetRecords(ctx, in)
}

// meter times a run from the warm-up's end to the last record: the processor calls add
// with the records it was handed, and at each of the two marks the processor's goroutine
// waits while the benchmark reads the process's usage.
type meter struct {
	warm, total int
	n           int
	gate        chan int
}

func (m *meter) add(k int) {
	before := m.n
	m.n += k
	for _, mark := range [2]int{m.warm, m.total} {
		if before < mark && m.n >= mark {
			m.gate <- m.n
			<-m.gate
		}
	}
}

// batchSink is a batch RecordProcessor that touches every record's Data.
type batchSink struct {
	m     *meter
	bytes int
}

func (p *batchSink) Initialize(context.Context, consumer.InitializeInput) error { return nil }
func (p *batchSink) ProcessRecords(_ context.Context, in consumer.ProcessRecordsInput) error {
	for i := range in.Records {
		p.bytes += len(in.Records[i].Data)
	}
	p.m.add(len(in.Records))
	return nil
}
func (p *batchSink) LeaseLost(context.Context, consumer.LeaseLostInput) {}
func (p *batchSink) ShardEnded(_ context.Context, in consumer.ShardEndedInput) error {
	return in.Checkpointer.Checkpoint(context.Background())
}
func (p *batchSink) ShutdownRequested(context.Context, consumer.ShutdownRequestedInput) error {
	return nil
}

// floorNs holds the floors' CPU ns per record of the last floor cases run, by size and
// floor, so that each path reports its ratios to the floors measured in the same run.
var floorNs = map[string]float64{}

// BenchmarkConsumerPolling measures, per user record and in the same run, at 100 B and
// 1 KiB, KPL aggregates read with GetRecords from prepared bytes through the SDK client:
//   - floor: what a record cannot avoid, in process on the same answers: the base64 decode
//     of every record's Data and the MD5 of every aggregate, with the standard library, one
//     aggregate after the other;
//   - floor-simd: the same with the vectorized base64 decoder the consumer uses and the
//     MD5 of sixteen aggregates at a time, as the consumer hashes them: the lower floor;
//   - batch: a worker with a batch RecordProcessor;
//   - recordfunc: a worker with RecordFunc and its default checkpoint cadence, the path
//     the README shows;
//   - batch-sdk: the batch processor behind a KinesisAPI of the application's own, which
//     the consumer reads through the SDK's decoder.
//
// Each path reports cpu-ns/record (the process's CPU time, which a shared machine's other
// work does not inflate the way it does wall time), allocs/record, and x-floor and
// x-floor-simd, its CPU time over each floor's of the same size in the same run (-count
// repeats floors and paths together).
func BenchmarkConsumerPolling(b *testing.B) {
	for _, sz := range sizes {
		answers := consumerAnswers(b, sz.n)
		b.Run(sz.name+"/floor", func(b *testing.B) { benchConsumerFloor(b, sz.name, answers, false) })
		b.Run(sz.name+"/floor-simd", func(b *testing.B) { benchConsumerFloor(b, sz.name, answers, true) })
		b.Run(sz.name+"/batch", func(b *testing.B) { benchConsumerPath(b, sz.name, answers, false, false) })
		b.Run(sz.name+"/recordfunc", func(b *testing.B) { benchConsumerPath(b, sz.name, answers, true, false) })
		b.Run(sz.name+"/batch-sdk", func(b *testing.B) { benchConsumerPath(b, sz.name, answers, false, true) })
	}
}

func benchConsumerFloor(b *testing.B, size string, answers []*consumerAnswer, simd bool) {
	maxLen := 0
	for _, a := range answers {
		for _, d := range a.data {
			maxLen = max(maxLen, len(d))
		}
	}
	bufs := make([][]byte, aggregatesPerAnswer)
	for i := range bufs {
		bufs[i] = make([]byte, base64.StdEncoding.DecodedLen(maxLen))
	}
	bodies := make([][]byte, aggregatesPerAnswer)
	sums := make([][md5lanes.Size]byte, aggregatesPerAnswer)
	var h md5lanes.Hasher
	decode := base64.StdEncoding.Decode
	if simd {
		decode = simdbase64.StdEncoding.Decode
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := readUsage()
	n := 0
	for n < b.N {
		a := answers[n%len(answers)]
		for i, d := range a.data {
			m, err := decode(bufs[i], d)
			if err != nil {
				b.Fatal(err)
			}
			bodies[i] = bufs[i][len(aggregation.Magic) : m-aggregation.ChecksumSize]
			if !simd {
				sums[i] = md5.Sum(bodies[i])
			}
		}
		if simd {
			h.Sum(sums, bodies[:len(a.data)])
		}
		floorSink ^= sums[0][0]
		n += a.users
	}
	end := readUsage()
	b.StopTimer()
	ns := float64((end.cpu - start.cpu).Nanoseconds()) / float64(n)
	floorNs[size+fmt.Sprint(simd)] = ns
	b.ReportMetric(ns, "cpu-ns/record")
	b.ReportMetric(float64(end.mallocs-start.mallocs)/float64(n), "allocs/record")
}

func benchConsumerPath(b *testing.B, size string, answers []*consumerAnswer, recordFunc, sdk bool) {
	tr := &getRecordsTransport{answers: answers}
	client := inProcessClient(tr)
	var api consumer.KinesisAPI = client
	if sdk {
		api = sdkOnly{client}
	}
	perAnswer := answers[0].users
	m := &meter{warm: 2 * perAnswer, gate: make(chan int)}
	m.total = m.warm + b.N
	var factory consumer.ProcessorFactory
	sink := 0
	if recordFunc {
		factory = consumer.RecordFunc(func(_ context.Context, r consumer.Record) error {
			sink += len(r.Data)
			m.add(1)
			return nil
		})
	} else {
		factory = consumer.ProcessorFactoryFunc(func(shardID string) consumer.RecordProcessor { return &batchSink{m: m} })
	}
	w, err := consumer.New(consumer.Config{
		StreamName: "bench", ApplicationName: "bench", WorkerID: "bench-worker",
		Processor: factory, Kinesis: api, LeaseStore: checkpoint.NewMemoryStore(),
		InitialPosition: consumer.TrimHorizon, MinTimeBetweenReads: -1,
		Logger: benchLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			b.Error(err)
		}
	}()

	wait := func() int {
		select {
		case n := <-m.gate:
			return n
		case err := <-done:
			b.Fatalf("worker stopped: %v", err)
		case <-time.After(time.Minute):
			b.Fatal("no records for a minute")
		}
		return 0
	}
	n0 := wait()
	b.ResetTimer()
	stopProfile := profileTimedLoop(b)
	start := readUsage()
	m.gate <- 0
	n1 := wait()
	end := readUsage()
	stopProfile()
	b.StopTimer()
	m.gate <- 0
	n := n1 - n0
	ns := float64((end.cpu - start.cpu).Nanoseconds()) / float64(n)
	b.ReportMetric(ns, "cpu-ns/record")
	b.ReportMetric(float64(end.mallocs-start.mallocs)/float64(n), "allocs/record")
	if f := floorNs[size+"false"]; f > 0 {
		b.ReportMetric(ns/f, "x-floor")
	}
	if f := floorNs[size+"true"]; f > 0 {
		b.ReportMetric(ns/f, "x-floor-simd")
	}
}

func benchLogger() *slog.Logger {
	if os.Getenv("BENCH_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
