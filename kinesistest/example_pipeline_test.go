package kinesistest_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"sort"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/consumer"
	"github.com/shardline/shardline/kinesistest"
	"github.com/shardline/shardline/producer"
)

// Shardline's producer writes to the emulator and a consumer worker reads it back, as a
// user's test of a pipeline would: the emulator enforces the service's limits, so a
// producer or a worker that misbehaves under them fails here rather than in production.
func Example_producerAndConsumer() {
	srv := kinesistest.NewServer(kinesistest.Options{})
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()
	if _, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName: aws.String("orders"), ShardCount: aws.Int32(2),
	}); err != nil {
		log.Fatal(err)
	}

	p, err := producer.New(client, producer.Config{StreamName: "orders"})
	if err != nil {
		log.Fatal(err)
	}
	orders := []string{"o-1", "o-2", "o-3", "o-4"}
	for _, o := range orders {
		if _, err := p.Put(ctx, producer.Record{PartitionKey: o, Data: []byte(o)}); err != nil {
			log.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		log.Fatal(err)
	}

	var mu sync.Mutex
	var got []string
	runCtx, stop := context.WithCancel(ctx)
	w, err := consumer.New(consumer.Config{
		StreamName:      "orders",
		ApplicationName: "order-audit",
		Kinesis:         client,
		LeaseStore:      checkpoint.NewMemoryStore(),
		InitialPosition: consumer.TrimHorizon,
		Logger:          slog.New(slog.DiscardHandler),
		Processor: consumer.RecordFunc(func(_ context.Context, r consumer.Record) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, string(r.Data))
			if len(got) == len(orders) {
				stop() // everything arrived: shut down gracefully
			}
			return nil
		}),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := w.Run(runCtx); err != nil {
		log.Fatal(err)
	}
	sort.Strings(got) // two shards: the order across keys is not defined
	fmt.Println(got)
	// Output: [o-1 o-2 o-3 o-4]
}
