package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var errFakeDelivery = errors.New("fake delivery failure")

// sent is one Send call as the fake sink saw it.
type sent struct {
	rec   Record
	first bool // the first send of this data
}

// fakeSink stands in for the producer: a bounded queue (so Send blocks when it is full),
// workers that acknowledge after a random delay (so acks arrive out of order), and a share of
// failures.
type fakeSink struct {
	queue    chan item
	failRate float64
	maxDelay time.Duration

	mu        sync.Mutex
	sends     []sent
	sentOnce  map[string]bool
	delivered map[string]int
	order     []string // data in delivery order
	wg        sync.WaitGroup
	stop      chan struct{}
	blocked   chan struct{} // when not nil, workers wait for it to close before acking
}

type item struct {
	rec Record
	ack Ack
}

func newFakeSink(capacity, workers int, failRate float64, maxDelay time.Duration) *fakeSink {
	s := &fakeSink{queue: make(chan item, capacity), failRate: failRate, maxDelay: maxDelay,
		sentOnce: map[string]bool{}, delivered: map[string]int{}, stop: make(chan struct{})}
	for i := 0; i < workers; i++ {
		s.wg.Add(1)
		go s.work()
	}
	return s
}

func (s *fakeSink) Send(ctx context.Context, rec Record, ack Ack) error {
	select {
	case s.queue <- item{rec, ack}:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	k := keyOf(string(rec.Data))
	s.sends = append(s.sends, sent{rec: rec, first: !s.sentOnce[k]})
	s.sentOnce[k] = true
	s.mu.Unlock()
	return nil
}

func (s *fakeSink) work() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case it := <-s.queue:
			s.mu.Lock()
			b := s.blocked
			s.mu.Unlock()
			if b != nil {
				<-b
			}
			if s.maxDelay > 0 {
				time.Sleep(time.Duration(rand.Int64N(int64(s.maxDelay))))
			}
			if s.failRate > 0 && rand.Float64() < s.failRate {
				it.ack.Done(errFakeDelivery)
				continue
			}
			s.mu.Lock()
			s.delivered[keyOf(string(it.rec.Data))]++
			s.order = append(s.order, string(it.rec.Data))
			s.mu.Unlock()
			it.ack.Done(nil)
		}
	}
}

// keyOf identifies a test line by its first two words ("f1 00000042"), so lines with random
// padding can be looked up; other data is its own key.
func keyOf(data string) string {
	if i := strings.IndexByte(data, ' '); i > 0 {
		if j := strings.IndexByte(data[i+1:], ' '); j > 0 {
			return data[:i+1+j]
		}
	}
	return strings.TrimSuffix(data, "\n")
}

func (s *fakeSink) close() {
	close(s.stop)
	s.wg.Wait()
}

func (s *fakeSink) deliveredList() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.order...)
}

func (s *fakeSink) count(data string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.delivered[data]
}

// syncSink acknowledges every record inside Send, the cheapest sink there is; benchmarks use
// it to measure the agent alone.
type syncSink struct {
	mu      sync.Mutex
	records []Record
	keep    bool
	n       int64
	bytes   int64
}

func (s *syncSink) Send(_ context.Context, rec Record, ack Ack) error {
	s.mu.Lock()
	s.n++
	s.bytes += int64(len(rec.Data))
	if s.keep {
		s.records = append(s.records, rec)
	}
	s.mu.Unlock()
	ack.Done(nil)
	return nil
}

func (s *syncSink) data() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.records))
	for i, r := range s.records {
		out[i] = string(r.Data)
	}
	return out
}

func (s *syncSink) all() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.records...)
}

// testConfig is a one-flow configuration with short intervals, so tests run quickly.
func testConfig(t testing.TB, pattern string) *Config {
	t.Helper()
	return &Config{
		CheckpointFile:     filepath.Join(t.TempDir(), "state", "checkpoints.json"),
		CheckpointInterval: 50 * time.Millisecond,
		ShutdownTimeout:    5 * time.Second,
		Logger:             testLogger(t),
		Flows: []Flow{{
			FilePattern:             pattern,
			KinesisStream:           "test-stream",
			InitialPosition:         StartOfFile,
			MinTimeBetweenFilePolls: 10 * time.Millisecond,
			RescanInterval:          100 * time.Millisecond,
			PartialLineTimeout:      200 * time.Millisecond,
			MultiLineTimeout:        200 * time.Millisecond,
			CloseInactive:           time.Second,
			RetryInitialBackoff:     5 * time.Millisecond,
			RetryMaxBackoff:         50 * time.Millisecond,
		}},
	}
}

// testLogger sends the agent's logs to the test log at level Warn and above, or all of them
// with SHARDLINE_TEST_DEBUG set.
func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("SHARDLINE_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	defer func() { _ = recover() }() // a log line after the test ended is not worth a panic
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// running starts an agent and returns a function that stops it and returns Run's error.
func running(t testing.TB, cfg *Config, sink Sink) (*Agent, func() error) {
	t.Helper()
	a, err := New(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return a, stop
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func appendFile(t testing.TB, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(f, data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
