// Command consumer is one worker of a consumer fleet that reads the order events written by
// examples/producer and keeps running totals of orders and revenue. Start it on as many
// machines as you like with the same -app: the workers share the stream's shards through
// leases in a DynamoDB table of that name, and a shard whose worker stops moves to another,
// resuming from its last checkpoint.
//
// Usage:
//
//	consumer -stream orders -app order-totals [-worker-id host-1] [-from trim_horizon]
//
// AWS settings come from the standard places (environment, shared config files, instance
// role). AWS_ENDPOINT_URL_KINESIS and AWS_ENDPOINT_URL_DYNAMODB point it at emulators.
// SIGINT or SIGTERM stops it gracefully: every shard checkpoints and its lease is released,
// so the other workers take over at once.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/consumer"
)

// config is what run needs besides the clients.
type config struct {
	Stream   string
	App      string // the application: workers with the same name share the work; also the lease table
	WorkerID string // unique in the fleet; empty for the host name plus a random suffix
	From     consumer.InitialPosition
	// StopAfter stops the worker gracefully once this many orders were processed; 0 runs until
	// the context ends.
	StopAfter     int64
	StatsInterval time.Duration // how often progress is logged; 0 never
	Logger        *slog.Logger
}

func main() {
	cfg := config{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	var from string
	flag.StringVar(&cfg.Stream, "stream", os.Getenv("STREAM_NAME"), "stream to read (default $STREAM_NAME)")
	flag.StringVar(&cfg.App, "app", "order-totals", "application name, shared by the fleet; also the DynamoDB lease table's name")
	flag.StringVar(&cfg.WorkerID, "worker-id", "", "this worker's id in the lease table (default: host name and a random suffix)")
	flag.StringVar(&from, "from", "trim_horizon", "where shards without a checkpoint start: trim_horizon or latest")
	flag.Int64Var(&cfg.StopAfter, "stop-after", 0, "stop gracefully after this many orders; 0 runs until SIGINT or SIGTERM")
	flag.DurationVar(&cfg.StatsInterval, "stats-interval", 10*time.Second, "how often progress is logged; 0 never")
	flag.Parse()
	switch strings.ToLower(from) {
	case "trim_horizon":
		cfg.From = consumer.TrimHorizon
	case "latest":
		cfg.From = consumer.Latest
	default:
		fmt.Fprintln(os.Stderr, "consumer: -from must be trim_horizon or latest")
		os.Exit(2)
	}
	if cfg.Stream == "" {
		fmt.Fprintln(os.Stderr, "consumer: -stream (or STREAM_NAME) is required")
		os.Exit(2)
	}

	// The first SIGINT or SIGTERM shuts the worker down gracefully; a second one exits at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }()

	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		cfg.Logger.Error("loading the AWS configuration", "err", err)
		os.Exit(1)
	}
	if awsCfg.Region == "" {
		cfg.Logger.Error("no AWS region: set AWS_REGION or a profile's region")
		os.Exit(1)
	}
	if err := run(ctx, kinesis.NewFromConfig(awsCfg), dynamodb.NewFromConfig(awsCfg), cfg); err != nil {
		cfg.Logger.Error("consumer failed", "err", err)
		os.Exit(1)
	}
}

// order is the event examples/producer writes.
type order struct {
	OrderID    string    `json:"order_id"`
	CustomerID string    `json:"customer_id"`
	Items      int       `json:"items"`
	TotalCents int       `json:"total_cents"`
	Currency   string    `json:"currency"`
	CreatedAt  time.Time `json:"created_at"`
}

// totals are the application's results, shared by the processors of every shard.
type totals struct {
	mu        sync.Mutex
	orders    int64
	items     int64
	revenue   map[string]int64 // cents per currency
	malformed int64
	onOrders  func(total int64) // told the new total after each batch
}

func (t *totals) add(batch []order, malformed int64) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, o := range batch {
		t.orders++
		t.items += int64(o.Items)
		t.revenue[o.Currency] += int64(o.TotalCents)
	}
	t.malformed += malformed
	return t.orders
}

// orderProcessor processes one shard. The worker calls it from one goroutine: Initialize, then
// ProcessRecords for each batch, then exactly one of LeaseLost, ShardEnded or
// ShutdownRequested.
type orderProcessor struct {
	shard  string
	totals *totals
	log    *slog.Logger
	batch  []order // reused between batches
}

func (p *orderProcessor) Initialize(_ context.Context, in consumer.InitializeInput) error {
	p.log.Info("processing shard", "shard", in.ShardID, "from", in.Checkpoint)
	return nil
}

// ProcessRecords does the batch's work, then checkpoints: the checkpoint says "everything up
// to here is done", so it comes after the work, never before. If this worker dies between the
// two, the next owner gets the batch again: processing is at least once, and a production
// application makes its effects idempotent (here: keyed by order_id) where that matters.
func (p *orderProcessor) ProcessRecords(ctx context.Context, in consumer.ProcessRecordsInput) error {
	p.batch = p.batch[:0]
	var malformed int64
	for _, r := range in.Records {
		var o order
		if err := json.Unmarshal(r.Data, &o); err != nil || o.OrderID == "" {
			// A record that cannot be parsed will not parse next time either: count it and
			// move on. Returning an error would deliver the batch again, forever.
			malformed++
			p.log.Warn("skipping a record that is not an order", "shard", in.ShardID, "sequence", r.SequenceNumber, "subsequence", r.SubSequenceNumber)
			continue
		}
		p.batch = append(p.batch, o)
	}
	total := p.totals.add(p.batch, malformed)
	if err := in.Checkpointer.Checkpoint(ctx); err != nil {
		// Most often the lease was lost (another worker took the shard): LeaseLost follows.
		// Other failures deliver the batch again after a pause.
		return fmt.Errorf("checkpoint: %w", err)
	}
	if p.totals.onOrders != nil {
		p.totals.onOrders(total)
	}
	return nil
}

// LeaseLost: another worker owns the shard now and resumes from the last checkpoint.
// Nothing can be checkpointed any more.
func (p *orderProcessor) LeaseLost(_ context.Context, in consumer.LeaseLostInput) {
	p.log.Info("lost the lease", "shard", in.ShardID)
}

// ShardEnded: the shard was split or merged and every record was delivered. Checkpointing at
// SHARD_END is required: the shard's children start only after it.
func (p *orderProcessor) ShardEnded(ctx context.Context, in consumer.ShardEndedInput) error {
	p.log.Info("shard ended", "shard", in.ShardID, "children", in.ChildShardIDs)
	return in.Checkpointer.Checkpoint(ctx)
}

// ShutdownRequested: the worker is stopping, or hands the shard to another worker. Every
// batch was checkpointed after it was processed, so this checkpoint only repeats the last;
// a processor that checkpoints less often (every N records, every minute) must checkpoint
// here what it has done.
func (p *orderProcessor) ShutdownRequested(ctx context.Context, in consumer.ShutdownRequestedInput) error {
	p.log.Info("shutting down shard", "shard", in.ShardID, "cause", in.Cause)
	return in.Checkpointer.Checkpoint(ctx)
}

// run runs one worker until ctx ends (or cfg.StopAfter orders were processed), then shuts it
// down gracefully and logs the totals.
func run(ctx context.Context, kc consumer.KinesisAPI, ddb checkpoint.DynamoDBAPI, cfg config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	t := &totals{revenue: map[string]int64{}}
	if cfg.StopAfter > 0 {
		t.onOrders = func(total int64) {
			if total >= cfg.StopAfter {
				stop()
			}
		}
	}
	w, err := consumer.New(consumer.Config{
		StreamName:      cfg.Stream,
		ApplicationName: cfg.App,
		WorkerID:        cfg.WorkerID,
		Processor: consumer.ProcessorFactoryFunc(func(shardID string) consumer.RecordProcessor {
			return &orderProcessor{shard: shardID, totals: t, log: log}
		}),
		Kinesis:         kc,
		DynamoDB:        ddb, // the lease table, named after the application; created when missing
		InitialPosition: cfg.From,
		Logger:          log,
	})
	if err != nil {
		return err
	}
	if cfg.StatsInterval > 0 {
		go func() {
			tick := time.NewTicker(cfg.StatsInterval)
			defer tick.Stop()
			for {
				select {
				case <-runCtx.Done():
					return
				case <-tick.C:
					s := w.Stats()
					t.mu.Lock()
					orders := t.orders
					t.mu.Unlock()
					log.Info("progress", "orders", orders, "leases", s.LeasesHeld, "millisBehindLatest", s.MillisBehindLatest)
				}
			}
		}()
	}
	log.Info("worker starting", "worker", w.WorkerID(), "stream", cfg.Stream, "app", cfg.App)
	// Run returns after the graceful shutdown: processors got ShutdownRequested, leases are
	// released.
	err = w.Run(runCtx)
	t.mu.Lock()
	log.Info("worker stopped", "orders", t.orders, "items", t.items, "revenueCents", t.revenue, "malformed", t.malformed)
	t.mu.Unlock()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
