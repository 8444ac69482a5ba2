package fanout_test

import (
	"context"
	"errors"
	"io"
	"log"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/shardline/shardline/internal/fanout"
)

// A worker that owns the lease of one shard reads it through the application's consumer.
// Against kinesis-mock, the client's HTTP client is built on fanout.EmulatorTransport.
func ExampleSubscribe() {
	ctx := context.Background()
	var client *kinesis.Client // from kinesis.NewFromConfig

	streamARN, err := fanout.StreamARN(ctx, client, "orders")
	if err != nil {
		log.Fatal(err)
	}
	consumerARN, err := fanout.EnsureConsumer(ctx, client, streamARN, "billing")
	if err != nil {
		log.Fatal(err)
	}
	sub, err := fanout.Subscribe(ctx, fanout.Config{
		Client:           client,
		ConsumerARN:      consumerARN,
		StreamARN:        streamARN,
		ShardID:          "shardId-000000000000",
		StartingPosition: types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	for {
		batch, err := sub.Next(ctx)
		if errors.Is(err, io.EOF) {
			return // the shard ended; its children were in the last batch
		}
		if err != nil {
			log.Fatal(err)
		}
		for _, r := range batch.Records {
			_ = r.Data // process, then checkpoint r.SequenceNumber
		}
		if batch.ShardEnded {
			log.Printf("continue with %d child shards", len(batch.ChildShards))
		}
	}
}
