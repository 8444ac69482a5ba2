package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/producer"
)

// fakeKinesis is a one-shard stream behind the producer.Client interface. It can be made
// unreachable (every call fails as a refused connection, which the producer retries until
// RecordTTL) or made to reject every entry with a code the producer does not retry.
type fakeKinesis struct {
	down   atomic.Bool
	reject atomic.Bool

	mu      sync.Mutex
	calls   int
	entries int
	seq     int
	lines   []string // user records in the order the stream stored them
}

const fakeShardID = "shardId-000000000000"

func (c *fakeKinesis) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return &kinesis.ListShardsOutput{Shards: []types.Shard{{
		ShardId: aws.String(fakeShardID),
		HashKeyRange: &types.HashKeyRange{
			StartingHashKey: aws.String("0"),
			EndingHashKey:   aws.String("340282366920938463463374607431768211455"),
		},
		SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("1")},
	}}}, nil
}

func (c *fakeKinesis) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.down.Load() {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records))}
	for i, e := range in.Records {
		if c.reject.Load() {
			out.Records[i] = types.PutRecordsResultEntry{ErrorCode: aws.String("AccessDeniedException"), ErrorMessage: aws.String("denied")}
			out.FailedRecordCount = aws.Int32(aws.ToInt32(out.FailedRecordCount) + 1)
			continue
		}
		c.entries++
		c.seq++
		users, err := aggregation.Deaggregate(nil, e.Data, aws.ToString(e.PartitionKey), aws.ToString(e.ExplicitHashKey))
		if err != nil {
			return nil, err
		}
		for _, u := range users {
			c.lines = append(c.lines, string(u.Data))
		}
		out.Records[i] = types.PutRecordsResultEntry{ShardId: aws.String(fakeShardID), SequenceNumber: aws.String(fmt.Sprintf("%056d", c.seq))}
	}
	return out, nil
}

func (c *fakeKinesis) stored() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

func (c *fakeKinesis) counts() (calls, entries int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls, c.entries
}

// numbered returns n lines "line 000001" ... in order.
func numbered(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("line %06d\n", i+1)
	}
	return out
}

// storedAll reports whether every line is in the stream, and how many copies it holds in all.
func storedAll(c *fakeKinesis, lines []string) (bool, int) {
	got := map[string]int{}
	for _, l := range c.stored() {
		got[l]++
	}
	for _, l := range lines {
		if got[l] == 0 {
			return false, len(got)
		}
	}
	n := 0
	for _, k := range got {
		n += k
	}
	return true, n
}

// sinkConfig is testConfig with the shortest buffer age agent.json allows, since it becomes
// the producer's Linger.
func sinkConfig(t *testing.T, dir string) *Config {
	cfg := testConfig(t, filepath.Join(dir, "*.log"))
	cfg.Flows[0].MaxBufferAge = time.Second
	return cfg
}

func newTestProducerSink(t *testing.T, client producer.Client, base producer.Config, cfg *Config) *ProducerSink {
	t.Helper()
	if base.Logger == nil {
		base.Logger = testLogger(t)
	}
	s, err := NewProducerSink(client, base, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

// TestProducerSinkDeliversInOrder runs the agent into the producer with a fake client: every
// line arrives once, aggregated into far fewer Kinesis records, in file order (one shard and
// no failure), and every ack counts.
func TestProducerSinkDeliversInOrder(t *testing.T) {
	dir := t.TempDir()
	lines := numbered(3000)
	appendFile(t, filepath.Join(dir, "a.log"), strings.Join(lines, ""))
	cfg := sinkConfig(t, dir)
	fc := &fakeKinesis{}
	sink := newTestProducerSink(t, fc, producer.Config{}, cfg)
	a, stop := running(t, cfg, sink)
	eventually(t, 15*time.Second, "every line in the stream", func() bool { ok, _ := storedAll(fc, lines); return ok })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := fc.stored()
	if strings.Join(got, "") != strings.Join(lines, "") {
		t.Errorf("the stream holds %d lines, not the file's %d in order", len(got), len(lines))
	}
	st := a.Stats()
	if st.RecordsAcked != int64(len(lines)) || st.RecordsFailed != 0 {
		t.Errorf("acked %d, failed %d; want %d and 0", st.RecordsAcked, st.RecordsFailed, len(lines))
	}
	if _, entries := fc.counts(); entries == 0 || entries > len(lines)/20 {
		t.Errorf("%d Kinesis records for %d lines: aggregation did not pack them", entries, len(lines))
	}
	ps := sink.Stats()["test-stream"]
	if ps.UserRecordsPut != int64(len(lines)) {
		t.Errorf("producer put %d user records, want %d", ps.UserRecordsPut, len(lines))
	}
}

// TestProducerSinkResendsFailedRecords: a record the producer gives up on, because its TTL
// passed while the stream was unreachable or because the stream refused it, is acknowledged
// with the error; the agent sends it again after its backoff, and once the stream takes
// records again every line arrives.
func TestProducerSinkResendsFailedRecords(t *testing.T) {
	for _, mode := range []string{"unreachable", "refused"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			lines := numbered(500)
			appendFile(t, filepath.Join(dir, "a.log"), strings.Join(lines, ""))
			cfg := sinkConfig(t, dir)
			fc := &fakeKinesis{}
			fail := &fc.down
			if mode == "refused" {
				fail = &fc.reject
			}
			fail.Store(true)
			base := producer.Config{RecordTTL: 100 * time.Millisecond, RetryBaseDelay: 10 * time.Millisecond, RetryMaxDelay: 50 * time.Millisecond}
			sink := newTestProducerSink(t, fc, base, cfg)
			a, stop := running(t, cfg, sink)
			eventually(t, 15*time.Second, "failed deliveries sent again", func() bool {
				s := a.Stats()
				return s.RecordsFailed >= int64(len(lines)) && s.RecordsRetried > 0
			})
			if got := fc.stored(); len(got) != 0 {
				t.Fatalf("%d lines stored while the stream failed", len(got))
			}
			fail.Store(false)
			eventually(t, 20*time.Second, "every line after recovery", func() bool { ok, _ := storedAll(fc, lines); return ok })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			st := a.Stats()
			if st.RecordsAcked != int64(len(lines)) {
				t.Errorf("acked %d, want %d", st.RecordsAcked, len(lines))
			}
			ps := sink.Stats()["test-stream"]
			if mode == "unreachable" && ps.UserRecordsExpired == 0 {
				t.Errorf("no record expired: %+v", ps)
			}
			if ps.UserRecordsFailed == 0 {
				t.Errorf("the producer failed no record: %+v", ps)
			}
			t.Logf("failed %d, retried %d, acked %d; producer expired %d, failed %d", st.RecordsFailed, st.RecordsRetried, st.RecordsAcked, ps.UserRecordsExpired, ps.UserRecordsFailed)
		})
	}
}

// TestProducerSinkBackpressure: while the stream cannot be reached, reading stops at the
// agent's in-flight bound, and the producer holds no more than its buffer bound, so memory
// stays bounded however much the files hold; when the stream comes back, everything arrives
// promptly. Records the producer gave up on stay in the agent's window until they are sent
// again, so the agent's bound is the one that stops reading; the producer's bound makes Send
// block. The first case also shows that a full in-flight window flushes the producer instead
// of waiting out the buffer age: at one window per Linger, recovery would take a minute.
func TestProducerSinkBackpressure(t *testing.T) {
	cases := []struct {
		name                  string
		agentMax, producerMax int
	}{
		{"agent in-flight bound", 300, 0},
		{"producer buffer bound", 300, 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			lines := numbered(20000)
			appendFile(t, filepath.Join(dir, "a.log"), strings.Join(lines, ""))
			cfg := sinkConfig(t, dir)
			cfg.MaxInFlightRecords = tc.agentMax
			fc := &fakeKinesis{}
			fc.down.Store(true)
			base := producer.Config{MaxBufferedRecords: tc.producerMax, RecordTTL: 200 * time.Millisecond,
				RetryBaseDelay: 10 * time.Millisecond, RetryMaxDelay: 50 * time.Millisecond}
			sink := newTestProducerSink(t, fc, base, cfg)
			a, stop := running(t, cfg, sink)

			var maxInFlight, maxPending int64
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
				maxInFlight = max(maxInFlight, a.Stats().InFlightRecords)
				maxPending = max(maxPending, sink.Stats()["test-stream"].UserRecordsPending)
			}
			s := a.Stats()
			t.Logf("while unreachable: max in flight %d (bound %d), max producer pending %d, failed %d, retried %d",
				maxInFlight, tc.agentMax, maxPending, s.RecordsFailed, s.RecordsRetried)
			if maxInFlight > int64(tc.agentMax) {
				t.Errorf("%d records read and not delivered, more than the bound %d", maxInFlight, tc.agentMax)
			}
			// The producer counts a put before it checks for room and takes it back when there
			// is none, so a reading may show one more than the bound for an instant.
			if tc.producerMax > 0 && maxPending > int64(tc.producerMax)+1 {
				t.Errorf("%d records pending in the producer, more than its bound %d", maxPending, tc.producerMax)
			}
			if s.RecordsFailed == 0 {
				t.Error("no record failed while the stream was unreachable")
			}

			fc.down.Store(false)
			start := time.Now()
			eventually(t, 20*time.Second, "every line after the stream came back", func() bool { ok, _ := storedAll(fc, lines); return ok })
			t.Logf("%d lines delivered %v after the stream came back", len(lines), time.Since(start).Round(time.Millisecond))
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// recordingProducer stands in for a producer to look at the sink alone: it reports every
// record delivered at once, from inside PutAsync.
type recordingProducer struct {
	cfg    producer.Config
	seen   func(rec *producer.Record)
	closed atomic.Bool
	puts   atomic.Int64
}

func (p *recordingProducer) PutAsync(_ context.Context, rec *producer.Record, done producer.Callback) error {
	return p.TryPutAsync(rec, done)
}

func (p *recordingProducer) TryPutAsync(rec *producer.Record, done producer.Callback) error {
	if p.closed.Load() {
		return producer.ErrClosed
	}
	p.puts.Add(1)
	if p.seen != nil {
		p.seen(rec)
	}
	done(rec, producer.Result{})
	return nil
}

func (p *recordingProducer) Flush(context.Context) error { return nil }
func (p *recordingProducer) Close(context.Context) error { p.closed.Store(true); return nil }
func (p *recordingProducer) Stats() producer.Stats       { return producer.Stats{} }

// TestProducerSinkCarriesAckInMetaWithoutAllocations: the record's Meta leads the producer's
// callback to the Ack, and a send allocates nothing. make test runs the tests named
// ...Allocations once more without the race detector, where the count is checked.
func TestProducerSinkCarriesAckInMetaWithoutAllocations(t *testing.T) {
	var got Ack
	var metaOK bool
	s := newProducerSink(producer.Config{}, func(c producer.Config) (recordProducer, error) {
		return &recordingProducer{cfg: c, seen: func(rec *producer.Record) {
			f, ok := rec.Meta.(*inFlight)
			metaOK = ok && &f.rec == rec
			if ok {
				got = f.ack
			}
		}}, nil
	})
	if err := s.Update(&Config{Flows: []Flow{{FilePattern: "/x/*.log", KinesisStream: "s"}}}); err != nil {
		t.Fatal(err)
	}
	rec := Record{Stream: "s", PartitionKey: "k", Data: []byte("line\n")}
	want := Ack{seq: 7, attempt: 2}
	if err := s.Send(context.Background(), rec, want); err != nil {
		t.Fatal(err)
	}
	if !metaOK || got != want {
		t.Fatalf("Meta carried %+v (is *inFlight: %v), want %+v", got, metaOK, want)
	}
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items, which allocates")
	}
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { _ = s.Send(ctx, rec, want) }); n != 0 {
		t.Errorf("Send and its callback allocate %v times per record, want 0", n)
	}
}

// TestProducerSinkUpdate: producers follow the configuration. A stream gets its producer
// once; a change of its buffer settings replaces it (the old one is closed, and sends move to
// the new one); a new stream gets one; a stream no flow names gets one on first use.
func TestProducerSinkUpdate(t *testing.T) {
	var mu sync.Mutex
	made := map[string][]*recordingProducer{}
	s := newProducerSink(producer.Config{}, func(c producer.Config) (recordProducer, error) {
		mu.Lock()
		defer mu.Unlock()
		p := &recordingProducer{cfg: c}
		made[c.StreamName] = append(made[c.StreamName], p)
		return p, nil
	})
	flow := func(stream string, age time.Duration) Flow {
		return Flow{FilePattern: "/logs/" + stream + "/*.log", KinesisStream: stream, MaxBufferAge: age}
	}
	count := func(stream string) int { mu.Lock(); defer mu.Unlock(); return len(made[stream]) }
	latest := func(stream string) *recordingProducer {
		mu.Lock()
		defer mu.Unlock()
		return made[stream][len(made[stream])-1]
	}

	cfg := &Config{Flows: []Flow{flow("a", 2*time.Second)}}
	if err := s.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(cfg); err != nil || count("a") != 1 {
		t.Fatalf("an unchanged configuration made %d producers for a (err %v)", count("a"), err)
	}
	first := latest("a")
	if err := s.Update(&Config{Flows: []Flow{flow("a", 3*time.Second), flow("b", time.Second)}}); err != nil {
		t.Fatal(err)
	}
	if count("a") != 2 || count("b") != 1 {
		t.Fatalf("producers a %d, b %d; want 2 and 1", count("a"), count("b"))
	}
	if l := latest("a").cfg.Linger; l != 3*time.Second {
		t.Errorf("a's new producer lingers %v, want 3s", l)
	}
	eventually(t, 5*time.Second, "the replaced producer closed", first.closed.Load)
	if err := s.Send(context.Background(), Record{Stream: "a", PartitionKey: "k", Data: []byte("x\n")}, Ack{}); err != nil {
		t.Fatal(err)
	}
	if latest("a").puts.Load() != 1 {
		t.Error("the send did not go to a's new producer")
	}
	if err := s.Send(context.Background(), Record{Stream: "c", PartitionKey: "k", Data: []byte("x\n")}, Ack{}); err != nil || count("c") != 1 {
		t.Errorf("a stream no flow names: %d producers, err %v", count("c"), err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), Record{Stream: "a", PartitionKey: "k", Data: []byte("x\n")}, Ack{}); err == nil {
		t.Error("Send after Close succeeded")
	}
}

func TestProducerConfigMapping(t *testing.T) {
	base := producer.Config{RecordTTL: 10 * time.Second, MaxConcurrentRequests: 3}
	flows := []Flow{
		{KinesisStream: "a", MaxBufferAge: 5 * time.Second, MaxBufferSizeRecords: 200, MaxBufferSizeBytes: 1 << 20},
		{KinesisStream: "a", MaxBufferAge: 2 * time.Second, MaxBufferSizeRecords: 400, MaxBufferSizeBytes: 2 << 20},
		{KinesisStream: "b", MaxBufferAge: time.Second, MaxBufferSizeRecords: 1, MaxBufferSizeBytes: 1},
		{KinesisStream: "d"},
	}
	c := ProducerConfig(base, "a", flows)
	if c.StreamName != "a" || c.Linger != 2*time.Second || c.MaxBatchRecords != 200 || c.MaxBatchBytes != 1<<20 {
		t.Errorf("a: stream %q linger %v batch %d records %d bytes", c.StreamName, c.Linger, c.MaxBatchRecords, c.MaxBatchBytes)
	}
	if c.RecordTTL != 12*time.Second || c.MaxConcurrentRequests != 3 {
		t.Errorf("a: TTL %v (want base 10s plus the 2s linger), concurrency %d", c.RecordTTL, c.MaxConcurrentRequests)
	}
	d := ProducerConfig(producer.Config{}, "d", flows)
	if d.Linger != DefaultMaxBufferAge || d.MaxBatchRecords != DefaultMaxBufferSizeRecords || d.MaxBatchBytes != DefaultMaxBufferSizeBytes ||
		d.RecordTTL != producer.DefaultRecordTTL+DefaultMaxBufferAge {
		t.Errorf("d (Kinesis Agent defaults): linger %v batch %d/%d TTL %v", d.Linger, d.MaxBatchRecords, d.MaxBatchBytes, d.RecordTTL)
	}
	if n := ProducerConfig(base, "none", flows); n.Linger != 0 || n.RecordTTL != 10*time.Second {
		t.Errorf("a stream no flow names keeps the base settings: linger %v TTL %v", n.Linger, n.RecordTTL)
	}

	_, err := NewProducerSink(&fakeKinesis{}, producer.Config{}, &Config{Flows: []Flow{
		{FilePattern: "/x/*.log", KinesisStream: "a", MaxRecordSizeBytes: 2 << 20},
	}})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Path != "flows[0].maxRecordSizeBytes" {
		t.Errorf("a flow with records larger than Kinesis takes: %v", err)
	}
}
