package producer_test

import (
	"context"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/shardline/shardline/producer"
)

// exampleClient stands in for a *kinesis.Client, which is what a program passes to
// producer.New: kinesis.NewFromConfig(cfg).
type exampleClient struct{ seq atomic.Int64 }

func (c *exampleClient) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	out := &kinesis.PutRecordsOutput{}
	for range in.Records {
		out.Records = append(out.Records, types.PutRecordsResultEntry{
			ShardId:        aws.String("shardId-000000000000"),
			SequenceNumber: aws.String(fmt.Sprint(c.seq.Add(1))),
		})
	}
	return out, nil
}

func (c *exampleClient) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return &kinesis.ListShardsOutput{Shards: []types.Shard{{
		ShardId: aws.String("shardId-000000000000"),
		HashKeyRange: &types.HashKeyRange{
			StartingHashKey: aws.String("0"),
			EndingHashKey:   aws.String("340282366920938463463374607431768211455"),
		},
		SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("0")},
	}}}, nil
}

func ExampleNew() {
	p, err := producer.New(&exampleClient{}, producer.Config{
		StreamName: "clicks",
		Linger:     50 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(context.Background())
	fmt.Println("ready")
	// Output: ready
}

func ExampleProducer_Put() {
	p, _ := producer.New(&exampleClient{}, producer.Config{StreamName: "clicks"})
	defer p.Close(context.Background())

	res, err := p.Put(context.Background(), producer.Record{PartitionKey: "user-42", Data: []byte(`{"click":1}`)})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.ShardID, res.Attempts)
	// Output: shardId-000000000000 1
}

func ExampleProducer_PutAsync() {
	p, _ := producer.New(&exampleClient{}, producer.Config{StreamName: "clicks"})

	var ok, failed atomic.Int64
	done := func(rec *producer.Record, res producer.Result) {
		// rec (and rec.Data) is the caller's again from here on.
		if res.Err != nil {
			failed.Add(1)
			return
		}
		ok.Add(1)
	}
	recs := make([]producer.Record, 1000)
	for i := range recs {
		recs[i] = producer.Record{PartitionKey: fmt.Sprintf("user-%d", i%10), Data: []byte("event")}
		if err := p.PutAsync(context.Background(), &recs[i], done); err != nil {
			log.Fatal(err) // not accepted: validation error, ErrClosed or the context's error
		}
	}
	// Close sends what is buffered and returns once every callback has run.
	if err := p.Close(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println(ok.Load(), failed.Load())
	// Output: 1000 0
}

func ExampleProducer_Flush() {
	p, _ := producer.New(&exampleClient{}, producer.Config{StreamName: "clicks", Linger: time.Minute})
	defer p.Close(context.Background())

	var n atomic.Int64
	rec := producer.Record{PartitionKey: "k", Data: []byte("v")}
	_ = p.PutAsync(context.Background(), &rec, func(*producer.Record, producer.Result) { n.Add(1) })

	// Flush does not wait for the minute of Linger.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(n.Load())
	// Output: 1
}

func ExampleProducer_TryPutAsync() {
	p, _ := producer.New(&exampleClient{}, producer.Config{StreamName: "clicks", MaxBufferedRecords: 1, Linger: time.Minute})
	defer p.Close(context.Background())

	a := producer.Record{PartitionKey: "k", Data: []byte("a")}
	b := producer.Record{PartitionKey: "k", Data: []byte("b")}
	fmt.Println(p.TryPutAsync(&a, nil))
	fmt.Println(p.TryPutAsync(&b, nil))
	// Output:
	// <nil>
	// producer: buffer full
}

func ExampleProducer_Close() {
	p, _ := producer.New(&exampleClient{}, producer.Config{StreamName: "clicks"})
	rec := producer.Record{PartitionKey: "k", Data: []byte("v")}
	_ = p.PutAsync(context.Background(), &rec, nil)

	// Give Close a deadline: if the stream cannot take the records in time, the ones left
	// get a result matching producer.ErrClosed and Close returns the context's error.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fmt.Println(p.Close(ctx))
	fmt.Println(p.Close(ctx))
	// Output:
	// <nil>
	// producer: closed
}
