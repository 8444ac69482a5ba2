package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/consumer"
)

// orderProcessor prints each order and checkpoints after every batch, so that a restart or a
// failover resumes after the last batch it finished.
type orderProcessor struct {
	shardID string
	done    chan<- struct{}
}

func (p *orderProcessor) Initialize(ctx context.Context, in consumer.InitializeInput) error {
	fmt.Println("start", in.ShardID, "at", in.Checkpoint)
	return nil
}

func (p *orderProcessor) ProcessRecords(ctx context.Context, in consumer.ProcessRecordsInput) error {
	for _, r := range in.Records {
		fmt.Printf("order %s (key %s)\n", r.Data, r.PartitionKey)
	}
	if err := in.Checkpointer.Checkpoint(ctx); err != nil {
		return err // the batch comes again
	}
	p.done <- struct{}{}
	return nil
}

func (p *orderProcessor) LeaseLost(ctx context.Context, in consumer.LeaseLostInput) {}

func (p *orderProcessor) ShardEnded(ctx context.Context, in consumer.ShardEndedInput) error {
	return in.Checkpointer.Checkpoint(ctx) // SHARD_END: the children may start
}

func (p *orderProcessor) ShutdownRequested(ctx context.Context, in consumer.ShutdownRequestedInput) error {
	fmt.Println("shutdown:", in.Cause)
	return nil // everything delivered was checkpointed already
}

// A worker with a record processor. In production Kinesis is a *kinesis.Client and the
// leases live in DynamoDB (Config.DynamoDB, a *dynamodb.Client), shared by every worker of
// the application; here a one-shard stream in memory and a memory lease store stand in.
func ExampleWorker() {
	done := make(chan struct{}, 10)
	w, err := consumer.New(consumer.Config{
		StreamName:      "orders",
		ApplicationName: "order-audit",
		WorkerID:        "worker-1",
		Processor: consumer.ProcessorFactoryFunc(func(shardID string) consumer.RecordProcessor {
			return &orderProcessor{shardID: shardID, done: done}
		}),
		Kinesis:         newDemoStream("orders", "o-1", "o-2", "o-3"),
		LeaseStore:      checkpoint.NewMemoryStore(),
		InitialPosition: consumer.TrimHorizon,
		Logger:          slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-done
		cancel() // a graceful shutdown, as on SIGTERM
	}()
	if err := w.Run(ctx); err != nil {
		panic(err)
	}
	// Output:
	// start shardId-000000000000 at TRIM_HORIZON
	// order o-1 (key key-0)
	// order o-2 (key key-1)
	// order o-3 (key key-2)
	// shutdown: worker shutdown
}

// The per-record form: the worker calls the function for each record in order and checkpoints
// after each batch, at the end of a shard and on shutdown. A function that fails gets the
// same record again after a pause.
func ExampleRecordFunc() {
	seen := make(chan struct{}, 10)
	w, err := consumer.New(consumer.Config{
		StreamName:      "clicks",
		ApplicationName: "click-counter",
		WorkerID:        "worker-1",
		Processor: consumer.RecordFunc(func(ctx context.Context, r consumer.Record) error {
			fmt.Printf("%s from %s\n", r.Data, r.PartitionKey)
			seen <- struct{}{}
			return nil
		}),
		Kinesis:         newDemoStream("clicks", "home", "search", "cart"),
		LeaseStore:      checkpoint.NewMemoryStore(),
		InitialPosition: consumer.TrimHorizon,
		Logger:          slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for i := 0; i < 3; i++ {
			<-seen
		}
		cancel()
	}()
	if err := w.Run(ctx); err != nil {
		panic(err)
	}
	// Output:
	// home from key-0
	// search from key-1
	// cart from key-2
}

// demoStream is a one-shard stream in memory holding the given records.
type demoStream struct {
	name string
	recs []types.Record
}

func newDemoStream(name string, data ...string) *demoStream {
	s := &demoStream{name: name}
	now := time.Now()
	for i, d := range data {
		s.recs = append(s.recs, types.Record{
			Data: []byte(d), PartitionKey: aws.String(fmt.Sprintf("key-%d", i)),
			SequenceNumber: aws.String(fmt.Sprintf("4960000000000000000000000000000000000000000000000000000%d", i+1)), ApproximateArrivalTimestamp: &now,
		})
	}
	return s
}

func (s *demoStream) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return &kinesis.ListShardsOutput{Shards: []types.Shard{{
		ShardId:             aws.String("shardId-000000000000"),
		HashKeyRange:        &types.HashKeyRange{StartingHashKey: aws.String("0"), EndingHashKey: aws.String("340282366920938463463374607431768211455")},
		SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("1")},
	}}}, nil
}

func (s *demoStream) GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String("0")}, nil
}

func (s *demoStream) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	i, _ := strconv.Atoi(aws.ToString(in.ShardIterator))
	return &kinesis.GetRecordsOutput{Records: s.recs[i:], NextShardIterator: aws.String(strconv.Itoa(len(s.recs))), MillisBehindLatest: aws.Int64(0)}, nil
}
