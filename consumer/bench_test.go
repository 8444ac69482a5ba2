package consumer

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/compression"
)

// ringKinesis serves the same pre-generated Kinesis records over and over from memory, so a
// benchmark measures the consumer and not a network or an emulator.
type ringKinesis struct {
	recs     []types.Record
	perBatch int
	pos      int
}

func (r *ringKinesis) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return &kinesis.ListShardsOutput{}, nil
}

func (r *ringKinesis) GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String("ring")}, nil
}

var zero = aws.Int64(0)

func (r *ringKinesis) GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	if r.pos+r.perBatch > len(r.recs) {
		r.pos = 0
	}
	out := &kinesis.GetRecordsOutput{Records: r.recs[r.pos : r.pos+r.perBatch], NextShardIterator: aws.String("ring"), MillisBehindLatest: zero}
	r.pos += r.perBatch
	return out, nil
}

// sinkProcessor touches every record and checkpoints nothing.
type sinkProcessor struct{ bytes int }

func (p *sinkProcessor) Initialize(context.Context, InitializeInput) error { return nil }
func (p *sinkProcessor) ProcessRecords(_ context.Context, in ProcessRecordsInput) error {
	for i := range in.Records {
		p.bytes += len(in.Records[i].Data)
	}
	return nil
}
func (p *sinkProcessor) LeaseLost(context.Context, LeaseLostInput)                       {}
func (p *sinkProcessor) ShardEnded(context.Context, ShardEndedInput) error               { return nil }
func (p *sinkProcessor) ShutdownRequested(context.Context, ShutdownRequestedInput) error { return nil }

// benchRecords pre-generates aggregates of user records of the given size, with distinct
// partition keys that all hash into the first quarter of the key space (the shard's range),
// compressed with codec unless it is compression.None... passed as -1.
func benchRecords(b *testing.B, size int, codec int) []types.Record {
	b.Helper()
	var keys []string
	for i := 0; len(keys) < 4096; i++ {
		k := fmt.Sprintf("partition-key-%d", i)
		if aggregation.PartitionKeyHash(k).Hi>>62 == 0 {
			keys = append(keys, k)
		}
	}
	payload := []byte(strings.Repeat("d", size))
	var out []types.Record
	a := aggregation.NewAggregator(0)
	now := time.Now()
	seq := int64(1)
	flush := func() {
		kr, ok := a.Flush()
		if !ok {
			return
		}
		data := kr.Data
		if codec >= 0 {
			var err error
			data, err = compression.Encode(nil, kr.Data, compression.Codec(codec))
			if err != nil {
				b.Fatal(err)
			}
		}
		out = append(out, types.Record{
			Data: data, PartitionKey: aws.String(kr.PartitionKey), ApproximateArrivalTimestamp: &now,
			SequenceNumber: aws.String(fmt.Sprintf("4968%052d", seq)),
		})
		seq++
	}
	for i := 0; len(out) < 64; i++ {
		r := aggregation.UserRecord{PartitionKey: keys[i%len(keys)], Data: payload}
		if err := a.Add(r); err == aggregation.ErrFull {
			flush()
			_ = a.Add(r)
		}
	}
	return out
}

// BenchmarkDecodeDispatch measures one core's cost of turning Kinesis records into processor
// calls: polling from memory, decompression, deaggregation, the shard-range check, checkpointer
// bookkeeping, metrics and the ProcessRecords call. One op is one user record.
func BenchmarkDecodeDispatch(b *testing.B) {
	cases := []struct {
		name  string
		size  int
		codec int
		fn    bool // through RecordFunc (checkpointing every batch) instead of a batch processor
	}{
		{"100B", 100, -1, false},
		{"1KiB", 1024, -1, false},
		{"100B-zstd", 100, int(compression.Zstd), false},
		{"1KiB-zstd", 1024, int(compression.Zstd), false},
		{"100B-RecordFunc", 100, -1, true},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			recs := benchRecords(b, tc.size, tc.codec)
			perBatch := 16
			ring := &ringKinesis{recs: recs, perBatch: perBatch}
			store := checkpoint.NewMemoryStore()
			w, err := New(Config{
				StreamName: "bench", ApplicationName: "bench", WorkerID: "w", Kinesis: ring, LeaseStore: store,
				Processor:           ProcessorFactoryFunc(func(string) RecordProcessor { return &sinkProcessor{} }),
				MinTimeBetweenReads: -1, Logger: testLogger(b),
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			w.hardCtx, w.hardCancel = context.WithCancel(ctx)
			defer w.hardCancel()
			quarter := quarterRange(0)
			l, _ := store.CreateLeaseIfNotExists(ctx, checkpoint.Lease{Key: "shardId-000000000000", Checkpoint: checkpoint.TrimHorizon, HashKeyRange: quarter})
			l, _ = store.TakeLease(ctx, l, "w")
			holder, _ := checkpoint.NewLeaseHolder(store, l)
			c := newShardConsumer(w, l, holder, time.Now())
			src, _ := w.sources().open(ctx, l.Key, startPosition{kind: types.ShardIteratorTypeTrimHorizon})
			dec := newRecordDecoder(quarter, checkpoint.TrimHorizon)
			sink := &sinkProcessor{}
			var proc RecordProcessor = sink
			if tc.fn {
				proc = RecordFunc(func(_ context.Context, r Record) error { sink.bytes += len(r.Data); return nil }).NewProcessor(l.Key)
				_ = proc.Initialize(ctx, InitializeInput{ShardID: l.Key, Checkpoint: l.Checkpoint})
			}

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			start := time.Now()
			n := 0
			for n < b.N {
				res, err := src.next(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if !c.handleBatch(proc, dec, &res) {
					b.Fatal("batch refused")
				}
				n += len(dec.out)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			runtime.ReadMemStats(&after)
			if dec.stats.outsideRange != 0 || sink.bytes == 0 {
				b.Fatalf("records dropped (%d) or not delivered", dec.stats.outsideRange)
			}
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n), "ns/record")
			b.ReportMetric(float64(n)/elapsed.Seconds(), "records/s")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(n), "allocs/record")
		})
	}
}

// leaseTableFormula is the expected lease-table requests per shard-hour of one idle worker
// holding n leases: a renewal per lease every RenewInterval, and per worker a scan every
// TakeInterval, shared by its leases (a shard sync uses the taker's fresh scan).
func leaseTableFormula(c Config, n int) float64 {
	perHour := func(d time.Duration) float64 { return float64(time.Hour) / float64(d) }
	return perHour(c.RenewInterval) + perHour(c.TakeInterval)/float64(n)
}

// kclFormula is the same for the KCL 2.x at failover time f: renewals every f/3 - 25 ms and a
// lease-taker scan every 2 × (f + 25 ms); its periodic shard sync runs on the leader only and
// is left out.
func kclFormula(f time.Duration, n int) float64 {
	eps := 25 * time.Millisecond
	perHour := func(d time.Duration) float64 { return float64(time.Hour) / float64(d) }
	return perHour(f/3-eps) + perHour(2*(f+eps))/float64(n)
}

// BenchmarkLeaseTableRequests measures the DynamoDB requests per shard-hour of one worker
// holding four leases on dynalite, idle and then under load, with the failover time cut to
// 1.5 s so that an hour's pattern shows in seconds; checks the idle figure against
// leaseTableFormula, and reports the formula at the default failover time next to the KCL's.
// The op is the whole run; the figures are in the reported metrics.
func BenchmarkLeaseTableRequests(b *testing.B) {
	env := newEmuEnv(b, 4, nil, nil)
	prod := newTestProducer(b, env.kc, env.stream)
	var processed atomicCounter
	cfg := env.config(b, "w1", RecordFunc(func(ctx context.Context, r Record) error { processed.add(1); return nil }))
	cfg.FailoverTime = 1500 * time.Millisecond
	cfg.ShardSyncInterval = 3 * time.Second
	cfg.IdleTimeBetweenReads = 200 * time.Millisecond
	cfg.MinTimeBetweenReads = 200 * time.Millisecond
	w, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rw := runWorker(b, w)
	defer rw.stop()
	waitFor(b, 20*time.Second, "four leases", func() bool { return w.Stats().LeasesHeld == 4 })
	time.Sleep(cfg.FailoverTime)
	applied, _ := w.cfg.withDefaults()

	measure := func(d time.Duration, load func(ctx context.Context)) (float64, map[string]int64) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		s0, t0 := w.ddb.Stats(), time.Now()
		if load != nil {
			go load(ctx)
		}
		<-ctx.Done()
		s1, el := w.ddb.Stats(), time.Since(t0)
		ops := map[string]int64{}
		for op, o := range s1.Operations {
			ops[op] = o.Requests - s0.Operations[op].Requests
		}
		return float64(totalRequests(s1)-totalRequests(s0)) / (4 * el.Hours()), ops
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		idle, idleOps := measure(6*time.Second, nil)
		loaded, loadedOps := measure(6*time.Second, func(ctx context.Context) {
			keys := testKeys(100)
			for ctx.Err() == nil {
				_, _ = prod.round(ctx, keys)
				time.Sleep(50 * time.Millisecond)
			}
		})
		want := leaseTableFormula(applied, 4)
		if idle < want*0.8 || idle > want*1.2 {
			b.Errorf("idle: measured %.0f requests per shard-hour, formula %.0f (ops %v)", idle, want, idleOps)
		}
		b.ReportMetric(idle, "req/shard-h-idle@1.5s")
		b.ReportMetric(want, "formula-idle@1.5s")
		b.ReportMetric(loaded, "req/shard-h-load@1.5s")
		def, _ := Config{StreamName: "s", ApplicationName: "a", Processor: RecordFunc(nil), Kinesis: env.kc, LeaseStore: checkpoint.NewMemoryStore()}.withDefaults()
		b.ReportMetric(leaseTableFormula(def, 4), "formula-idle@10s")
		b.ReportMetric(kclFormula(10*time.Second, 4), "kcl-idle@10s")
		b.Logf("idle ops %v; loaded ops %v; records processed %d", idleOps, loadedOps, processed.load())
	}
}

type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) add(d int64) { c.n.Add(d) }
func (c *atomicCounter) load() int64 { return c.n.Load() }
