package kinesistest

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/transport/http/protocol/rpcv2"
)

// cpuTime is the process's user plus system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRates reports records/s and the cores the whole process used, the SDK client and
// the server together; with -cpu 1 the process, and so the server, has at most one core.
// handler-cores is the handlers' wall time per second, an upper bound of the server's
// share without its HTTP parsing (it includes time waiting for a core).
func reportRates(b *testing.B, srv *Server, records int, wall, cpu time.Duration, busy int64) {
	b.ReportMetric(float64(records)/wall.Seconds(), "records/s")
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "proc-cores")
	b.ReportMetric(time.Duration(busy).Seconds()/wall.Seconds(), "handler-cores")
	b.ReportMetric(0, "ns/op")
}

func benchServer(b *testing.B, shards int32, opts ...func(*kinesis.Options)) (*Server, *kinesis.Client, string) {
	srv := NewServer(Options{Limits: Limits{Unthrottled: true}})
	b.Cleanup(srv.Close)
	client := srv.Client(opts...)
	if _, err := client.CreateStream(context.Background(), &kinesis.CreateStreamInput{StreamName: aws.String("bench"), ShardCount: aws.Int32(shards)}); err != nil {
		b.Fatal(err)
	}
	return srv, client, "bench"
}

func batch(n int) []types.PutRecordsRequestEntry {
	data := make([]byte, 100)
	recs := make([]types.PutRecordsRequestEntry, n)
	for i := range recs {
		recs[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("pk-%d", i)), Data: data}
	}
	return recs
}

// BenchmarkPutRecords sends PutRecords calls of 500 records of 100 bytes from the SDK
// client over loopback, four calls in flight. Run it with -benchtime=20x or more.
func BenchmarkPutRecords(b *testing.B) { benchPutRecords(b) }

// BenchmarkPutRecordsCBOR is BenchmarkPutRecords with the client speaking RPC v2 CBOR.
func BenchmarkPutRecordsCBOR(b *testing.B) {
	benchPutRecords(b, func(o *kinesis.Options) { o.Protocol = rpcv2.NewCBOR(schemas.Kinesis_20131202) })
}

func benchPutRecords(b *testing.B, opts ...func(*kinesis.Options)) {
	srv, client, name := benchServer(b, 8, opts...)
	recs := batch(500)
	ctx := context.Background()
	const inFlight = 4
	calls := make(chan struct{}, b.N)
	for range b.N {
		calls <- struct{}{}
	}
	close(calls)
	b.ResetTimer()
	busy0, cpu0, t0 := srv.busy.Load(), cpuTime(b), time.Now()
	var wg sync.WaitGroup
	for range inFlight {
		wg.Go(func() {
			for range calls {
				out, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: recs})
				if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
					b.Errorf("PutRecords: %v, %v failed", err, out.FailedRecordCount)
					return
				}
			}
		})
	}
	wg.Wait()
	wall, cpu := time.Since(t0), cpuTime(b)-cpu0
	b.StopTimer()
	reportRates(b, srv, b.N*len(recs), wall, cpu, srv.busy.Load()-busy0)
}

// BenchmarkGetRecords reads 100-byte records from one shard, 10,000 per call.
func BenchmarkGetRecords(b *testing.B) {
	srv, client, name := benchServer(b, 1)
	ctx := context.Background()
	recs := batch(500)
	for range 40 { // 20,000 records
		if _, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: recs}); err != nil {
			b.Fatal(err)
		}
	}
	iterator := func() *string {
		out, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			b.Fatal(err)
		}
		return out.ShardIterator
	}
	it := iterator()
	b.ResetTimer()
	busy0, cpu0, t0 := srv.busy.Load(), cpuTime(b), time.Now()
	total := 0
	for range b.N {
		out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
		if err != nil {
			b.Fatal(err)
		}
		total += len(out.Records)
		it = out.NextShardIterator
		if aws.ToInt64(out.MillisBehindLatest) == 0 {
			it = iterator()
		}
	}
	wall, cpu := time.Since(t0), cpuTime(b)-cpu0
	b.StopTimer()
	reportRates(b, srv, total, wall, cpu, srv.busy.Load()-busy0)
}

// BenchmarkRetainedMemory measures what the server's heap holds per byte of retained record
// data: each iteration writes a 24-hour retention's worth of records to a 4-shard stream,
// reports the live heap per data byte, then lets the records age out (a manual clock moves
// past the retention period, and one more put trims each shard) and reports the heap left.
// Memory proportional to the retained data shows as a heap-per-data-byte near 1 for every
// record size, falling to nothing once the records are trimmed.
func BenchmarkRetainedMemory(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			const records = 40_000
			var held, left float64
			for range b.N {
				h, l := retainedHeap(b, size, records)
				held += h
				left += l
			}
			n := float64(b.N) * records * float64(size)
			b.ReportMetric(held/n, "heap/data-byte")
			b.ReportMetric(held/(float64(b.N)*records), "heap-B/record")
			b.ReportMetric(left/(float64(b.N)*(1<<20)), "heap-MiB-after-trim")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// retainedHeap writes records of size bytes and returns the live heap they add, and what
// is left of it after retention trimmed them.
func retainedHeap(b *testing.B, size, records int) (held, left float64) {
	b.StopTimer()
	defer b.StartTimer()
	clock := NewManualClock(time.Now())
	srv := NewServer(Options{Clock: clock, Limits: Limits{Unthrottled: true}})
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()
	if _, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("mem"), ShardCount: aws.Int32(4)}); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, size)
	entries := make([]types.PutRecordsRequestEntry, 500)
	for i := range entries {
		entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("k%03d", i)), Data: data}
	}
	put := func(recs []types.PutRecordsRequestEntry) {
		out, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("mem"), Records: recs})
		if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
			b.Fatalf("PutRecords: %v, %v failed", err, out.FailedRecordCount)
		}
	}
	before := liveHeap()
	for range records / len(entries) {
		put(entries)
	}
	held = liveHeap() - before
	clock.Advance(25 * time.Hour)
	put(entries[:8]) // eight keys reach all four shards; each put trims its shard
	left = liveHeap() - before
	return held, max(left, 0)
}

// liveHeap is the heap in use after a full collection.
func liveHeap() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc)
}
