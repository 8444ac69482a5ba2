// Command producer is a small service that writes order events to a Kinesis data stream with
// the Shardline producer: records are aggregated and batched per shard, each record's outcome
// comes back through a callback, and on SIGINT or SIGTERM the service stops taking new events
// and sends what it holds before it exits.
//
// Usage:
//
//	producer -stream orders [-count 1000] [-rate 200] [-endpoint URL]
//
// AWS settings come from the standard places (environment, shared config files, instance
// role). AWS_ENDPOINT_URL_KINESIS, or -endpoint, points it at an emulator.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardline/shardline/producer"
)

// config is what run needs besides the Kinesis client.
type config struct {
	Stream        string
	Count         int           // orders to put; 0 puts until the context ends
	Rate          float64       // orders per second; 0 puts as fast as the producer accepts them
	StatsInterval time.Duration // how often progress is logged; 0 never
	CloseTimeout  time.Duration // how long Close may take to send what is buffered
	Logger        *slog.Logger
}

func main() {
	cfg := config{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	var endpoint string
	flag.StringVar(&cfg.Stream, "stream", os.Getenv("STREAM_NAME"), "stream to write to (default $STREAM_NAME)")
	flag.IntVar(&cfg.Count, "count", 0, "orders to put, then exit; 0 runs until SIGINT or SIGTERM")
	flag.Float64Var(&cfg.Rate, "rate", 100, "orders per second; 0 for as fast as possible")
	flag.DurationVar(&cfg.StatsInterval, "stats-interval", 10*time.Second, "how often progress is logged; 0 never")
	flag.DurationVar(&cfg.CloseTimeout, "close-timeout", 30*time.Second, "how long to wait, when stopping, for buffered orders to be sent")
	flag.StringVar(&endpoint, "endpoint", "", "Kinesis endpoint URL, e.g. an emulator's (default: AWS_ENDPOINT_URL_KINESIS, else the region's)")
	flag.Parse()
	if cfg.Stream == "" {
		fmt.Fprintln(os.Stderr, "producer: -stream (or STREAM_NAME) is required")
		os.Exit(2)
	}

	// The first SIGINT or SIGTERM stops the service gracefully; once it is stopping, the
	// default handling is back, so a second one exits at once.
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
	client := kinesis.NewFromConfig(awsCfg, func(o *kinesis.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	if err := run(ctx, client, cfg); err != nil {
		cfg.Logger.Error("producer failed", "err", err)
		os.Exit(1)
	}
}

// order is the event the service publishes.
type order struct {
	OrderID    string    `json:"order_id"`
	CustomerID string    `json:"customer_id"`
	Items      int       `json:"items"`
	TotalCents int       `json:"total_cents"`
	Currency   string    `json:"currency"`
	CreatedAt  time.Time `json:"created_at"`
}

func newOrder(n int) order {
	return order{
		OrderID:    fmt.Sprintf("ord-%08d", n),
		CustomerID: fmt.Sprintf("cust-%04d", rand.IntN(1000)),
		Items:      1 + rand.IntN(5),
		TotalCents: 499 + rand.IntN(20000),
		Currency:   "EUR",
		CreatedAt:  time.Now().UTC(),
	}
}

// run puts orders until cfg.Count are put or ctx ends, then closes the producer, which sends
// every order it accepted (or gives up on them at CloseTimeout), and logs its statistics. It
// returns an error when an order could not be delivered.
func run(ctx context.Context, client producer.Client, cfg config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	p, err := producer.New(client, producer.Config{StreamName: cfg.Stream, Logger: log})
	if err != nil {
		return err
	}

	var delivered, failed atomic.Int64
	// onResult runs once per accepted order, on one of the producer's goroutines, when the
	// order is in the stream or the producer gave up on it (its TTL passed, the stream
	// refused it, or Close ran out of time). It must return quickly.
	onResult := func(rec *producer.Record, res producer.Result) {
		if res.Err != nil {
			failed.Add(1)
			log.Warn("order not delivered", "order", rec.Meta, "err", res.Err)
			return
		}
		delivered.Add(1)
		log.Debug("order delivered", "order", rec.Meta, "shard", res.ShardID, "sequence", res.SequenceNumber, "subsequence", res.SubSequenceNumber)
	}

	if cfg.StatsInterval > 0 {
		progressCtx, stopProgress := context.WithCancel(ctx)
		defer stopProgress()
		go func() {
			t := time.NewTicker(cfg.StatsInterval)
			defer t.Stop()
			for {
				select {
				case <-progressCtx.Done():
					return
				case <-t.C:
					s := p.Stats()
					log.Info("progress", "delivered", delivered.Load(), "failed", failed.Load(),
						"pending", s.UserRecordsPending, "kinesisRecords", s.KinesisRecordsPut, "retries", s.Retries)
				}
			}
		}()
	}

	start := time.Now()
	put := 0
	for cfg.Count == 0 || put < cfg.Count {
		if cfg.Rate > 0 {
			// Pace the orders evenly: order n is due n/rate seconds after the start.
			due := start.Add(time.Duration(float64(put) / cfg.Rate * float64(time.Second)))
			if err := sleep(ctx, time.Until(due)); err != nil {
				break
			}
		}
		o := newOrder(put)
		data, err := json.Marshal(o)
		if err != nil {
			return err
		}
		// The partition key is the customer, so one customer's orders stay in order on one
		// shard. The record and its Data belong to the producer until onResult runs.
		rec := &producer.Record{PartitionKey: o.CustomerID, Data: data, Meta: o.OrderID}
		// PutAsync blocks while the producer's buffer is full: that is the backpressure.
		if err := p.PutAsync(ctx, rec, onResult); err != nil {
			if ctx.Err() != nil {
				break // stopping: the order was not accepted, and it is not counted
			}
			return err // a record the producer refuses (too large, bad key): a bug here
		}
		put++
	}
	if ctx.Err() != nil {
		log.Info("stopping: sending the orders still buffered", "timeout", cfg.CloseTimeout)
	}

	// Close sends what is buffered and returns once every callback ran. Its context must
	// outlive ctx, which has ended when a signal stopped the loop.
	timeout := cfg.CloseTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	closeErr := p.Close(closeCtx)

	s := p.Stats()
	log.Info("stopped", "put", put, "delivered", delivered.Load(), "failed", failed.Load(),
		"kinesisRecords", s.KinesisRecordsPut, "requests", s.Requests, "retries", s.Retries,
		"throttled", s.ThrottledRecords, "expired", s.UserRecordsExpired,
		"meanRequestMillis", fmt.Sprintf("%.1f", s.RequestTime.Mean()), "took", time.Since(start).Round(time.Millisecond))
	if closeErr != nil {
		return fmt.Errorf("closing the producer: %w", closeErr)
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d orders were not delivered", n, put)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
