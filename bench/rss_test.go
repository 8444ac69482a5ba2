package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/shardline/shardline/producer"
)

// A process's peak resident memory (getrusage's ru_maxrss) never goes down, so it says
// nothing about one case once other cases have run in the same process. BenchmarkPeakRSS
// runs every case in a process of its own: the test binary again, told by rssCaseEnv what
// to run instead of the tests.
const (
	rssCaseEnv = "SHARDLINE_BENCH_RSS_CASE"
	rssURLEnv  = "SHARDLINE_BENCH_RSS_URL"
	// rssHeapProfileEnv names a file to which a child writes a heap profile each time its
	// heap reaches a new peak, so the last one written shows what the peak held.
	rssHeapProfileEnv = "BENCH_RSS_HEAPPROFILE"
)

// BenchmarkPeakRSS reports, per case and from a process of its own, the peak resident
// memory (maxrss-MiB) and the Go heap's peak (heap-peak-MiB) of moving b.N records to
// kinesis-stub, and the CPU time per record of the whole process (start-up included, so
// run enough records: -benchtime=200000x). The records stream: the caller keeps no more of
// them than the producer holds, as a service putting what it receives would. The cases:
//   - shardline: the producer's defaults with the rate limit lifted, so the caller outruns
//     the stub and the producer's buffers fill to their bounds (MaxBufferedRecords,
//     MaxBufferedBytes);
//   - shardline-limited: the defaults as they are, so the four shards' limits bind and the
//     buffers stay full for the whole run;
//   - shardline-own: shardline with every record's data in a buffer of its own, recycled
//     with the record once its callback has run, as a service's records would be: the
//     buffered data is then memory too (in the other cases the records share one payload);
//   - sdk-loop: a plain aws-sdk-go-v2 PutRecords loop, 500-record batches from 8 goroutines;
//   - floor: a process that builds the same SDK client and makes one PutRecords call, the
//     memory any Go client of the SDK starts from.
func BenchmarkPeakRSS(b *testing.B) {
	for _, sz := range sizes {
		for _, c := range []string{"shardline", "shardline-limited", "shardline-own", "sdk-loop", "floor"} {
			b.Run(sz.name+"/"+c, func(b *testing.B) { runRSSChild(b, c, sz.n) })
		}
	}
}

func runRSSChild(b *testing.B, name string, size int) {
	url := stubEndpoint(b)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		rssCaseEnv+"="+name+","+strconv.Itoa(size)+","+strconv.Itoa(b.N),
		rssURLEnv+"="+url)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var heapPeak, livePeak float64
	var failed int64 = -1
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "rss-child" {
			heapPeak, _ = strconv.ParseFloat(f[1], 64)
			livePeak, _ = strconv.ParseFloat(f[2], 64)
			failed, _ = strconv.ParseInt(f[3], 10, 64)
		}
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("%s child: %v", name, err)
	}
	b.StopTimer()
	if failed != 0 {
		b.Fatalf("%s child: %d records failed (-1: no result line)", name, failed)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/rec")
	b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MiB") // Linux reports KiB
	b.ReportMetric(heapPeak, "heap-peak-MiB")
	b.ReportMetric(livePeak, "live-peak-MiB")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rec/s")
}

// rssChild runs the case named by rssCaseEnv and reports its heap peak and failures on
// stdout; it returns false when this process is not such a child.
func rssChild() bool {
	spec := os.Getenv(rssCaseEnv)
	if spec == "" {
		return false
	}
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		fmt.Fprintf(os.Stderr, "%s=%q: want name,size,records\n", rssCaseEnv, spec)
		os.Exit(2)
	}
	size, _ := strconv.Atoi(parts[1])
	n, _ := strconv.Atoi(parts[2])
	kc := newLoopbackClient(os.Getenv(rssURLEnv), false)
	data := make([]byte, size)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	stop := heapPeakProfiled(os.Getenv(rssHeapProfileEnv))
	live := livePeak()
	var failed int64
	var err error
	switch parts[0] {
	case "shardline":
		failed, err = streamProducer(kc, producer.Config{StreamName: "bench", RateLimit: 1_000_000}, data, n, false)
	case "shardline-limited":
		failed, err = streamProducer(kc, producer.Config{StreamName: "bench"}, data, n, false)
	case "shardline-own":
		failed, err = streamProducer(kc, producer.Config{StreamName: "bench", RateLimit: 1_000_000}, data, n, true)
	case "sdk-loop":
		failed = streamSDKLoop(kc, data, n)
	case "floor":
		_, err = kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("bench"),
			Records: []types.PutRecordsRequestEntry{{Data: data, PartitionKey: aws.String("k")}}})
	default:
		err = fmt.Errorf("unknown case %q", parts[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	heap := stop()
	fmt.Printf("rss-child %.2f %.2f %d\n", heap, live(), failed)
	return true
}

// streamProducer puts n records through a producer with cfg, taking each record's struct
// from a free list its callback refills, so the caller holds only what is in the producer.
// With own, every record carries a copy of data in a buffer that is recycled with it.
func streamProducer(kc *kinesis.Client, cfg producer.Config, data []byte, n int, own bool) (int64, error) {
	p, err := producer.New(kc, cfg)
	if err != nil {
		return 0, err
	}
	ks := keys()
	var failed atomic.Int64
	var mu sync.Mutex
	var free []*producer.Record
	done := func(rec *producer.Record, res producer.Result) {
		if res.Err != nil {
			failed.Add(1)
		}
		mu.Lock()
		free = append(free, rec)
		mu.Unlock()
	}
	ctx := context.Background()
	for i := range n {
		mu.Lock()
		var rec *producer.Record
		if k := len(free); k > 0 {
			rec, free = free[k-1], free[:k-1]
		}
		mu.Unlock()
		if rec == nil {
			rec = new(producer.Record)
		}
		d := data
		if own {
			d = append(rec.Data[:0], data...)
		}
		*rec = producer.Record{PartitionKey: ks[i%len(ks)], Data: d}
		if err := p.PutAsync(ctx, rec, done); err != nil {
			return 0, err
		}
	}
	if err := p.Close(ctx); err != nil {
		return 0, err
	}
	return failed.Load(), nil
}

// streamSDKLoop is benchSDKLoop's loop without the benchmark around it.
func streamSDKLoop(kc *kinesis.Client, data []byte, n int) int64 {
	const workers, batch = 8, 500
	ks := keys()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			entries := make([]types.PutRecordsRequestEntry, batch)
			for i := range entries {
				entries[i] = types.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(ks[i%len(ks)])}
			}
			for {
				start := next.Add(batch) - batch
				if start >= int64(n) {
					return
				}
				k := min(int64(batch), int64(n)-start)
				out, err := kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("bench"), Records: entries[:k]})
				if err != nil || aws.ToInt32(out.FailedRecordCount) > 0 {
					failed.Add(k)
				}
			}
		}()
	}
	wg.Wait()
	return failed.Load()
}

// livePeak samples the heap that the last garbage collection found live every 10 ms until
// stop is called, and returns its peak in MiB: what the process held, where heapPeak also
// counts the garbage that the collector lets accumulate (GOGC) before it runs again.
func livePeak() (stop func() float64) { return metricPeak("/gc/heap/live:bytes") }

// heapPeakProfiled is heapPeak, which also writes a heap profile to path (when set) each
// time the heap grows 10% past the last profiled peak.
func heapPeakProfiled(path string) (stop func() float64) {
	if path == "" {
		return heapPeak()
	}
	runtime.MemProfileRate = 64 << 10
	var last uint64
	var ms runtime.MemStats
	end := sampleEvery(20*time.Millisecond, func() {
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse > last+last/10 {
			last = ms.HeapInuse
			if f, err := os.Create(path); err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				_ = f.Close()
			}
		}
	})
	peak := heapPeak()
	return func() float64 {
		end()
		return peak()
	}
}
