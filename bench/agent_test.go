package bench

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shardline/shardline/agent"
	"github.com/shardline/shardline/producer"
)

const (
	agentLines    = 200_000
	agentLineSize = 128 // bytes, newline included
)

// writeLogFile writes agentLines single-line records of agentLineSize bytes and returns its
// path and size.
func writeLogFile(b *testing.B) (string, int64) {
	path := filepath.Join(b.TempDir(), "access.log")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	pad := make([]byte, agentLineSize)
	for i := range pad {
		pad[i] = byte('a' + i%26)
	}
	for i := 0; i < agentLines; i++ {
		head := fmt.Sprintf("%09d ", i)
		w.WriteString(head)
		w.Write(pad[:agentLineSize-len(head)-1])
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return path, int64(agentLines * agentLineSize)
}

// BenchmarkAgentLoopback measures the agent end to end: it tails a file of single-line
// records and delivers them through the producer (aggregation on) over HTTP to kinesis-stub,
// waiting until every line is acknowledged. One op is one file of 200,000 lines of 128 bytes;
// lines/s, MB/s, client CPU per line and the process's peak resident memory are reported.
// BenchmarkRawFileRead is the floor: reading the same file into a buffer.
func BenchmarkAgentLoopback(b *testing.B) {
	path, size := writeLogFile(b)
	kc := loopbackClient(b, false)
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		cfg, err := agent.ParseConfig([]byte(fmt.Sprintf(`{
		  "checkpointFile": %q,
		  "flows": [{"filePattern": %q, "kinesisStream": "bench", "initialPosition": "START_OF_FILE",
		             "maxBufferAgeMillis": 1000}]}`, filepath.Join(b.TempDir(), "cp.json"), path)))
		if err != nil {
			b.Fatal(err)
		}
		cfg.Logger = slog.New(slog.DiscardHandler)
		sink, err := agent.NewProducerSink(kc, producer.Config{RateLimit: 1_000_000}, cfg)
		if err != nil {
			b.Fatal(err)
		}
		a, err := agent.New(cfg, sink)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- a.Run(ctx) }()
		for a.Stats().RecordsAcked < agentLines {
			time.Sleep(time.Millisecond)
		}
		cancel()
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		if err := sink.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	n := b.N * agentLines
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/line")
	b.ReportMetric(float64(size)*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
	b.ReportMetric(maxRSSMiB(), "maxrss-MiB")
}

// BenchmarkRawFileRead reads the same file with plain os.File reads: the floor for the agent.
func BenchmarkRawFileRead(b *testing.B) {
	path, size := writeLogFile(b)
	buf := make([]byte, 256<<10)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		for {
			n, err := f.Read(buf)
			if n == 0 || err != nil {
				break
			}
		}
		f.Close()
	}
}
