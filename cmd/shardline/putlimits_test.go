package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/kinesistest"
)

// TestBinaryPutStreamRecordSize runs the built command against kinesistest, which enforces a
// stream's maximum record size as the service does, on a stream whose maximum was raised to
// 2 MiB (UpdateMaxRecordSize): put writes a 1.5 MB line, which a 1 MiB stream refuses, and
// names a line over 2 MiB as too long for this stream's records.
func TestBinaryPutStreamRecordSize(t *testing.T) {
	cleanAWSEnv(t)
	srv := kinesistest.NewServer(kinesistest.Options{})
	t.Cleanup(srv.Close)
	kc := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const stream = "large"
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.UpdateMaxRecordSize(ctx, &kinesis.UpdateMaxRecordSizeInput{StreamARN: aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/" + stream), MaxRecordSizeInKiB: aws.Int32(2048)}); err != nil {
		t.Fatal(err)
	}
	large := strings.Repeat("L", 1_500_000)
	tooLarge := strings.Repeat("T", 2_100_000)
	r := runBinary(ctx, t, binary(t), "small\n"+large+"\n"+tooLarge+"\n", "--endpoint", srv.URL, "put", stream, "-k", "fixed:k")
	if r.code != exitFailure ||
		!strings.Contains(r.stderr, "line 3 of stdin: line of 2,100,000 bytes is longer than a record can hold (2,097,152 bytes with its partition key)") ||
		!strings.Contains(r.stderr, "put 2 of 3 records") {
		t.Fatalf("put on a 2 MiB stream: %s", r)
	}
	sh, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	got, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: sh.ShardIterator})
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, rec := range got.Records {
		sizes = append(sizes, len(rec.Data))
	}
	// The large line goes alone, unaggregated; the small one in an aggregate (or alone).
	found := false
	for _, n := range sizes {
		found = found || n == len(large)
	}
	if !found {
		t.Fatalf("the 1.5 MB line is not in the stream: record sizes %v", sizes)
	}
}

// TestBinaryPutKeyLength gives put a fixed partition key of 200 characters outside the Basic
// Multilingual Plane: 200 characters, but 400 UTF-16 code units, which is what Kinesis counts,
// so put refuses it and says how it counted.
func TestBinaryPutKeyLength(t *testing.T) {
	cleanAWSEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key := strings.Repeat("\U0001F600", 200)
	r := runBinary(ctx, t, binary(t), "x\n", "--endpoint", "http://127.0.0.1:1", "put", "s", "-k", "fixed:"+key)
	if r.code != exitUsage || !strings.Contains(r.stderr, "the key must be 1 to 256 UTF-16 code units long") {
		t.Fatalf("put with a 400-code-unit key: %s", r)
	}
}
