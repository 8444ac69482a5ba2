package kinesistest_test

import (
	"context"
	"fmt"
	"log"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/kinesistest"
)

// A test starts the emulator in one line and talks to it with an ordinary SDK client.
func Example() {
	srv := kinesistest.NewServer(kinesistest.Options{}) // in a test: defer srv.Close(), or t.Cleanup(srv.Close)
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()

	if _, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName: aws.String("orders"), ShardCount: aws.Int32(1),
	}); err != nil {
		log.Fatal(err)
	}
	put, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{
		StreamName: aws.String("orders"),
		Records: []types.PutRecordsRequestEntry{
			{PartitionKey: aws.String("a"), Data: []byte("first")},
			{PartitionKey: aws.String("b"), Data: []byte("second")},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("failed:", aws.ToInt32(put.FailedRecordCount))

	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String("orders"), ShardId: put.Records[0].ShardId,
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		log.Fatal(err)
	}
	got, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range got.Records {
		fmt.Printf("%s %s\n", aws.ToString(r.PartitionKey), r.Data)
	}
	// Output:
	// failed: 0
	// a first
	// b second
}
