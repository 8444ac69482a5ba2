package bench

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/transport/http/protocol/rpcv2"
	simdbase64 "github.com/segmentio/asm/base64"
	"github.com/shardline/shardline/producer"
)

// The loopback benchmarks send to kinesis-stub running as a separate process, so the CPU time
// this process reports is the client's alone.

// stubs are the kinesis-stub processes started so far, by shard count.
var (
	stubMu sync.Mutex
	stubs  = map[int]*stubProc{}
)

type stubProc struct {
	url string
	cmd *exec.Cmd
	// stdin is held open for the life of the process.
	stdin io.WriteCloser
}

func TestMain(m *testing.M) {
	if rssChild() {
		os.Exit(0)
	}
	code := m.Run()
	for _, s := range stubs {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
	os.Exit(code)
}

// stubEndpoint builds and starts kinesis-stub with four shards once per test binary and
// returns its URL.
func stubEndpoint(b *testing.B) string { return stubEndpointShards(b, 4) }

// stubEndpointShards starts (once) a kinesis-stub whose stream has the given shards.
func stubEndpointShards(b *testing.B, shards int) string {
	stubMu.Lock()
	defer stubMu.Unlock()
	if s := stubs[shards]; s != nil {
		return s.url
	}
	dir, err := os.MkdirTemp("", "kinesis-stub")
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(dir, "kinesis-stub")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/kinesis-stub").CombinedOutput(); err != nil {
		b.Fatalf("build kinesis-stub: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-shards", strconv.Itoa(shards))
	stdout, _ := cmd.StdoutPipe()
	// The stub exits when its stdin closes, so it never outlives this process.
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("kinesis-stub did not start: %v", err)
	}
	s := &stubProc{url: "http://" + strings.TrimSpace(strings.TrimPrefix(line, "listening on ")), cmd: cmd, stdin: stdin}
	stubs[shards] = s
	return s.url
}

func loopbackClient(b *testing.B, cbor bool) *kinesis.Client {
	return loopbackClientShards(b, cbor, 4)
}

func loopbackClientShards(b *testing.B, cbor bool, shards int) *kinesis.Client {
	return newLoopbackClient(stubEndpointShards(b, shards), cbor)
}

// newLoopbackClient is a Kinesis client of kinesis-stub at ep.
func newLoopbackClient(ep string, cbor bool) *kinesis.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     time.Minute,
	}
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("bench", "bench", ""),
		HTTPClient:  &http.Client{Transport: tr},
	}
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(ep)
		if cbor {
			o.Protocol = rpcv2.NewCBOR(schemas.Kinesis_20131202)
		}
	})
}

// usage is what the process has spent so far.
type usage struct {
	cpu, sys time.Duration // user plus kernel CPU time, and the kernel's share
	faults   int64         // minor page faults: memory touched for the first time
	mallocs  uint64        // heap allocations
}

func readUsage() usage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return usage{
		cpu:     time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		sys:     time.Duration(ru.Stime.Nano()),
		faults:  ru.Minflt,
		mallocs: ms.Mallocs,
	}
}

// cpuTime is the process's CPU time so far, user and kernel.
func cpuTime() time.Duration { return readUsage().cpu }

// heapPeak samples the Go heap's in-use objects every 10 ms until stop is called, and
// returns their peak in MiB. The process's maxrss-MiB is a peak over the whole process and
// all benchmarks run in it so far, so a case's own memory is judged by BenchmarkPeakRSS,
// which runs each case in a process of its own, or by this peak, which covers the timed loop
// only.
func heapPeak() (stop func() float64) { return metricPeak("/memory/classes/heap/objects:bytes") }

// metricPeak samples the runtime metric name (a byte count) every 10 ms until stop is
// called, and returns its peak in MiB.
func metricPeak(name string) (stop func() float64) {
	sample := []metrics.Sample{{Name: name}}
	var peak uint64
	end := sampleEvery(10*time.Millisecond, func() {
		metrics.Read(sample)
		peak = max(peak, sample[0].Value.Uint64())
	})
	return func() float64 {
		end()
		return float64(peak) / (1 << 20)
	}
}

// sampleEvery calls fn now, every interval and once more when stop is called, from one
// goroutine; stop returns after that last call.
func sampleEvery(interval time.Duration, fn func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			fn()
			select {
			case <-t.C:
			case <-done:
				fn()
				return
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// maxRSSMiB is the process's peak resident memory so far.
func maxRSSMiB() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024
}

const keyCount = 4096

func keys() []string {
	ks := make([]string, keyCount)
	for i := range ks {
		ks[i] = "user-" + strconv.Itoa(i*7919)
	}
	return ks
}

// report adds the per-record metrics every loopback benchmark shares, measured from start,
// the usage when the timed loop began. allocs/op rounds to an integer, which hides the
// difference between one allocation per hundred records and none; allocs/rec does not.
// sys-ns/rec is the kernel's share of cpu-ns/rec (loopback TCP, and page faults, counted
// apart as faults/Mrec).
func report(b *testing.B, n int, start usage) {
	end := readUsage()
	cpu := end.cpu - start.cpu
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/rec")
	b.ReportMetric(float64((end.sys-start.sys).Nanoseconds())/float64(n), "sys-ns/rec")
	b.ReportMetric(float64(end.faults-start.faults)*1e6/float64(n), "faults/Mrec")
	b.ReportMetric(float64(end.mallocs-start.mallocs)/float64(n), "allocs/rec")
	b.ReportMetric(cpu.Seconds()*1e6/float64(n), "cpu-s/Mrec")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rec/s")
	b.ReportMetric(maxRSSMiB(), "maxrss-MiB")
}

var sizes = []struct {
	name string
	n    int
}{{"100B", 100}, {"1KiB", 1024}}

// BenchmarkPutLoopback compares, per user record and in the same run:
//   - shardline: the producer with its defaults (aggregation on), over HTTP to kinesis-stub,
//     once warm: a long-running producer sends from buffers it has already touched;
//   - shardline-cold: the same from a new producer, whose first requests fault in its
//     buffers (on a virtual machine a page fault costs microseconds);
//   - shardline-cbor: the same with the SDK's RPC v2 CBOR protocol, which sends raw bytes
//     instead of base64;
//   - sdk-loop: a plain aws-sdk-go-v2 PutRecords loop, 500-record batches from 8 goroutines;
//   - floor: MD5 of the record (the aggregate checksum), SHA-256 of its bytes (SigV4's payload
//     hash) and their base64 encoding (the JSON wire form), computed in-process with the
//     standard library;
//   - floor-simd: the same with the vectorized base64 encoder the producer uses, the lower
//     of the two floors.
func BenchmarkPutLoopback(b *testing.B) {
	ks := keys()
	for _, sz := range sizes {
		data := make([]byte, sz.n)
		for i := range data {
			data[i] = byte('a' + i%26)
		}
		b.Run(sz.name+"/shardline", func(b *testing.B) { benchProducer(b, loopbackClient(b, false), ks, data, warmRecords) })
		b.Run(sz.name+"/shardline-cold", func(b *testing.B) { benchProducer(b, loopbackClient(b, false), ks, data, 0) })
		b.Run(sz.name+"/shardline-cbor", func(b *testing.B) { benchProducer(b, loopbackClient(b, true), ks, data, warmRecords) })
		b.Run(sz.name+"/sdk-loop", func(b *testing.B) { benchSDKLoop(b, loopbackClient(b, false), ks, data) })
		b.Run(sz.name+"/floor", func(b *testing.B) { benchFloor(b, ks, data, base64.StdEncoding.Encode) })
		b.Run(sz.name+"/floor-simd", func(b *testing.B) { benchFloor(b, ks, data, simdbase64.StdEncoding.Encode) })
	}
}

// BenchmarkRateLimitedLoopback is BenchmarkPutLoopback's shardline case at 1 KiB with the
// producer's default RateLimit, which holds the stub's four shards to 6 MiB/s in all: the
// producer spends most of the run waiting for its rate limiter and for buffer room, and
// what it costs per record shows whether it waits without spinning. At the default
// 64 MiB buffer a run needs well over 64,000 records to fill it (-benchtime=150000x takes
// some 25 s). The 64shards case binds the limits of 64 shards at RateLimit 25 (16 MiB/s in
// all, well under what the client can send here), where some shard earns a token every
// few milliseconds and requests used to be built short; krec/req reports how full the
// requests were (-benchtime=60000x: 60 MiB, some 3 s at the limit).
func BenchmarkRateLimitedLoopback(b *testing.B) {
	data := make([]byte, 1024)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	b.Run("4shards", func(b *testing.B) {
		benchProducerConfig(b, loopbackClient(b, false), keys(), data, producer.Config{StreamName: "bench"}, 0)
	})
	b.Run("64shards", func(b *testing.B) {
		benchProducerConfig(b, loopbackClientShards(b, false, 64), keys(), data, producer.Config{StreamName: "bench", RateLimit: 25}, 0)
	})
}

// warmRecords are put before the timed records of a warm run: enough for every buffer the
// steady state uses (request bodies, aggregates, record lists) to have been filled once.
// After 200,000 records about a third of the runs still faulted in megabytes of new buffers
// (some 6,000 page faults per million records, and 25% more CPU time); after 600,000,
// one in five or fewer do.
const warmRecords = 600_000

func benchProducer(b *testing.B, kc *kinesis.Client, ks []string, data []byte, warm int) {
	// The stub's four shards would cap the producer at the real per-shard limits (1 MiB/s
	// each); the benchmark measures the client's cost, so the local rate limit is lifted.
	benchProducerConfig(b, kc, ks, data, producer.Config{StreamName: "bench", RateLimit: 1_000_000}, warm)
}

func benchProducerConfig(b *testing.B, kc *kinesis.Client, ks []string, data []byte, cfg producer.Config, warm int) {
	p, err := producer.New(kc, cfg)
	if err != nil {
		b.Fatal(err)
	}
	var failed atomic.Int64
	done := func(_ *producer.Record, res producer.Result) {
		if res.Err != nil {
			failed.Add(1)
		}
	}
	ctx := context.Background()
	if warm > 0 {
		warmRecs := make([]producer.Record, warm)
		for i := range warmRecs {
			warmRecs[i] = producer.Record{PartitionKey: ks[i%len(ks)], Data: data}
			if err := p.PutAsync(ctx, &warmRecs[i], done); err != nil {
				b.Fatal(err)
			}
		}
		if err := p.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	// Records are owned by the producer until their callback, so each put gets its own;
	// they are built before the timer starts.
	recs := make([]producer.Record, b.N)
	for i := range recs {
		recs[i] = producer.Record{PartitionKey: ks[i%len(ks)], Data: data}
	}
	// Collect now the garbage of building them, and of the runs before, or the collector
	// would mark (and charge to the client) while the timed loop runs.
	runtime.GC()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	stopProfile := profileTimedLoop(b)
	peak := heapPeak()
	start := readUsage()
	for i := range recs {
		if err := p.PutAsync(ctx, &recs[i], done); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	report(b, b.N, start)
	b.ReportMetric(peak(), "heap-peak-MiB")
	// The records put, which the benchmark holds (and a warm run's too): part of the heap
	// peak that is the caller's, not the producer's.
	b.ReportMetric(float64(len(recs)+warm)*float64(unsafe.Sizeof(producer.Record{}))/(1<<20), "recs-MiB")
	if st := p.Stats(); st.Requests > 0 {
		b.ReportMetric(float64(st.KinesisRecordsPut)/float64(st.Requests), "krec/req")
	}
	stopProfile()
	b.StopTimer()
	if err := p.Close(ctx); err != nil {
		b.Fatal(err)
	}
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d records failed", n)
	}
}

// profileTimedLoop writes a CPU profile of the timed loop alone to the file named by
// BENCH_LOOP_CPUPROFILE, if set: -cpuprofile would also hold building the records and
// starting the producer, which the per-record numbers leave out.
func profileTimedLoop(b *testing.B) (stop func()) {
	path := os.Getenv("BENCH_LOOP_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

func benchSDKLoop(b *testing.B, kc *kinesis.Client, ks []string, data []byte) {
	const workers, batch = 8, 500
	entries := make([]types.PutRecordsRequestEntry, batch*workers)
	for i := range entries {
		entries[i] = types.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(ks[i%len(ks)])}
	}
	var next atomic.Int64
	var failed atomic.Int64
	// Warm up as the producer does: each worker's first calls open its connection and grow
	// the SDK's buffers.
	var warm sync.WaitGroup
	for w := range workers {
		warm.Add(1)
		go func() {
			defer warm.Done()
			for range warmRecords / (batch * workers) {
				_, err := kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("bench"), Records: entries[w*batch : (w+1)*batch]})
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	warm.Wait()
	runtime.GC()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	peak := heapPeak()
	start := readUsage()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := entries[w*batch : (w+1)*batch]
			for {
				start := next.Add(batch) - batch
				if start >= int64(b.N) {
					return
				}
				n := min(int64(batch), int64(b.N)-start)
				out, err := kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("bench"), Records: mine[:n]})
				if err != nil || aws.ToInt32(out.FailedRecordCount) > 0 {
					failed.Add(n)
				}
			}
		}()
	}
	wg.Wait()
	report(b, b.N, start)
	b.ReportMetric(peak(), "heap-peak-MiB")
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d records failed", n)
	}
}

var floorSink byte

// benchFloor times the work a record cannot avoid, with encode as the wire encoding.
func benchFloor(b *testing.B, ks []string, data []byte, encode func(dst, src []byte)) {
	b64 := make([]byte, base64.StdEncoding.EncodedLen(len(data)))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	start := readUsage()
	h := sha256.New()
	for i := 0; i < b.N; i++ {
		sum := md5.Sum(data)
		encode(b64, data)
		h.Write(b64)
		h.Write([]byte(ks[i%len(ks)]))
		floorSink ^= sum[0]
	}
	floorSink ^= h.Sum(nil)[0]
	report(b, b.N, start)
	b.StopTimer()
}
