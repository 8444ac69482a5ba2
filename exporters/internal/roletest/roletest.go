// Package roletest runs Shardline's producer, consumer and agent against an in-memory
// Kinesis endpoint, recording into one metrics.Registry, so that the exporters' tests read
// back metrics the roles really recorded rather than values set by hand.
package roletest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardline/shardline/agent"
	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/consumer"
	"github.com/shardline/shardline/metrics"
	"github.com/shardline/shardline/producer"
)

// Streams and sizes of a Run.
const (
	OrdersStream = "orders" // written by the producer, read by the consumer
	OrdersShards = 2
	LogStream    = "web-logs" // written by the agent
	Records      = 300        // user records the producer puts
	Lines        = 40         // lines the agent tails
	Throttled    = 3          // PutRecords entries of the producer the endpoint throttles once
	WorkerID     = "worker-1"
)

// Result is what a Run did, as the roles report it in their Stats.
type Result struct {
	Producer  producer.Stats
	Consumer  consumer.Stats
	Agent     agent.Stats
	LineBytes int64 // bytes of the lines the agent read, newlines included

	// UserRecordsPerKinesisRecord holds, for every Kinesis record the endpoint stored in
	// OrdersStream, how many user records it carries: the raw observations behind the
	// producer's UserRecordsPerKinesisRecord distribution.
	UserRecordsPerKinesisRecord []float64
}

var quiet = slog.New(slog.DiscardHandler)

// Run puts Records user records through a producer into OrdersStream, the first Throttled
// of its Kinesis records throttled once and retried; consumes them all with a consumer
// worker; and has an agent tail a file of Lines lines into LogStream. All three record into
// reg. whileConsuming, when not nil, is called once the consumer has processed every record
// and still holds its leases, so a test can read the consumer's gauges. Every goroutine has
// stopped when Run returns.
func Run(t testing.TB, reg *metrics.Registry, whileConsuming func()) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k := NewKinesis(map[string]int{OrdersStream: OrdersShards, LogStream: 1})
	var res Result

	// Producer.
	k.Throttle(Throttled)
	p, err := producer.New(k, producer.Config{StreamName: OrdersStream, Linger: 10 * time.Millisecond, Metrics: reg, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var putErr atomic.Pointer[error]
	for i := range Records {
		wg.Add(1)
		rec := &producer.Record{PartitionKey: fmt.Sprintf("customer-%d", i), Data: []byte(fmt.Sprintf("order %d", i))}
		err := p.PutAsync(ctx, rec, func(_ *producer.Record, r producer.Result) {
			if r.Err != nil {
				putErr.Store(&r.Err)
			}
			wg.Done()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if e := putErr.Load(); e != nil {
		t.Fatalf("put: %v", *e)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	res.Producer = p.Stats()
	res.UserRecordsPerKinesisRecord = k.userRecordsPerRecord(t, OrdersStream)

	// Consumer.
	w, err := consumer.New(consumer.Config{
		StreamName:           OrdersStream,
		ApplicationName:      "exporter-test",
		WorkerID:             WorkerID,
		Kinesis:              k,
		LeaseStore:           checkpoint.NewMemoryStore(),
		InitialPosition:      consumer.TrimHorizon,
		IdleTimeBetweenReads: 20 * time.Millisecond,
		MinTimeBetweenReads:  -1,
		Logger:               quiet,
		Metrics:              reg,
		Processor:            consumer.RecordFunc(func(context.Context, consumer.Record) error { return nil }),
	})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	// The worker counts a batch once its processor returns, so wait for its own count.
	for w.Stats().RecordsProcessed < Records {
		select {
		case <-ctx.Done():
			t.Fatalf("consumer processed %d of %d records", w.Stats().RecordsProcessed, Records)
		case <-time.After(5 * time.Millisecond):
		}
	}
	// Stats read while the worker runs: at the end it releases its leases.
	res.Consumer = w.Stats()
	if whileConsuming != nil {
		whileConsuming()
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("consumer: %v", err)
	}

	// Agent.
	dir := t.TempDir()
	var lines strings.Builder
	for i := range Lines {
		fmt.Fprintf(&lines, "GET /item/%d 200\n", i)
	}
	res.LineBytes = int64(lines.Len())
	if err := os.WriteFile(filepath.Join(dir, "access.log"), []byte(lines.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := &agent.Config{
		StateDirectory: filepath.Join(dir, "state"),
		Flows: []agent.Flow{{
			FilePattern: filepath.Join(dir, "*.log"), KinesisStream: LogStream,
			InitialPosition: agent.StartOfFile, MaxBufferAge: time.Second,
		}},
		Logger:  quiet,
		Metrics: reg,
	}
	sink, err := agent.NewProducerSink(k, producer.Config{Logger: quiet, Metrics: reg}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	actx, astop := context.WithCancel(ctx)
	adone := make(chan error, 1)
	go func() { adone <- a.Run(actx) }()
	for a.Stats().RecordsAcked < Lines {
		select {
		case <-ctx.Done():
			t.Fatalf("agent delivered %d of %d lines", a.Stats().RecordsAcked, Lines)
		case <-time.After(5 * time.Millisecond):
		}
	}
	res.Agent = a.Stats()
	astop()
	if err := <-adone; err != nil {
		t.Fatalf("agent: %v", err)
	}
	if err := sink.Close(ctx); err != nil {
		t.Fatalf("agent sink: %v", err)
	}
	return res
}
