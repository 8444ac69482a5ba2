package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// benchLines and benchLineLen shape the benchmark file: 64 MiB of 128-byte lines, a common
// size for application logs.
const (
	benchLines   = 1 << 19
	benchLineLen = 128
)

func writeBenchFile(b *testing.B) (path string, size int64) {
	b.Helper()
	path = filepath.Join(b.TempDir(), "bench.log")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	pad := strings.Repeat("p", benchLineLen)
	for i := 0; i < benchLines; i++ {
		head := fmt.Sprintf("2024-05-01T12:00:00.%06dZ INFO request id=%08d ", i%1000000, i)
		w.WriteString(head)
		w.WriteString(pad[:benchLineLen-len(head)-1])
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return path, int64(benchLines * benchLineLen)
}

// BenchmarkRawRead is the floor: reading the same file with os.File.Read into a 64 KiB
// buffer, with nothing done to the bytes.
func BenchmarkRawRead(b *testing.B) {
	path, size := writeBenchFile(b)
	buf := make([]byte, maxChunk)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := f.Read(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		f.Close()
	}
}

// countingSink acknowledges inside Send and signals when it has seen every record.
type countingSink struct {
	n      atomic.Int64
	target int64
	done   chan struct{}
}

func (s *countingSink) Send(_ context.Context, _ Record, ack Ack) error {
	ack.Done(nil)
	if s.n.Add(1) == s.target {
		close(s.done)
	}
	return nil
}

// BenchmarkAgentSingleLine measures the whole path from file to sink for single-line
// records: discovery, reading, cutting lines, partition keys, the in-flight bound, the window
// of acknowledgements and checkpoints, with a sink that acknowledges at once.
func BenchmarkAgentSingleLine(b *testing.B) {
	for _, pk := range []PartitionKeyOption{PartitionKeyRandom, PartitionKeyDeterministic} {
		b.Run(strings.ToLower(string(pk)), func(b *testing.B) {
			path, size := writeBenchFile(b)
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			var elapsed time.Duration
			for i := 0; i < b.N; i++ {
				cfg := &Config{
					CheckpointFile: filepath.Join(b.TempDir(), "cp.json"),
					Logger:         slog.New(slog.DiscardHandler),
					Flows: []Flow{{FilePattern: path, KinesisStream: "bench", InitialPosition: StartOfFile,
						PartitionKeyOption: pk}},
				}
				sink := &countingSink{target: benchLines, done: make(chan struct{})}
				a, err := New(cfg, sink)
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				errc := make(chan error, 1)
				start := time.Now()
				go func() { errc <- a.Run(ctx) }()
				<-sink.done
				elapsed += time.Since(start)
				b.StopTimer()
				cancel()
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(benchLines)*float64(b.N)/elapsed.Seconds(), "lines/s")
		})
	}
}
