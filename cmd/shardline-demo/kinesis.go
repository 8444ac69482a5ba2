package main

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// This file holds the demo's direct AWS calls: the stream's life (create, split, delete) and
// the lease table's removal. Everything else goes through Shardline.

// region is the region of every client. The emulators accept any; it must only be the same
// for the agent and the consumers, since it is part of what they sign.
const region = "us-east-1"

// emulatorConfig is the SDK configuration of every client: the placeholder credentials the
// emulators accept. The demo never reaches real AWS: every endpoint is always set.
func emulatorConfig() aws.Config {
	return aws.Config{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider("demo", "demo", ""),
	}
}

// kinesisClient returns a Kinesis client for the emulator at endpoint.
func kinesisClient(endpoint string) *kinesis.Client {
	return kinesis.NewFromConfig(emulatorConfig(), func(o *kinesis.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

// dynamoClient returns a DynamoDB client for the emulator at endpoint.
func dynamoClient(endpoint string) *dynamodb.Client {
	return dynamodb.NewFromConfig(emulatorConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

// createStream creates a provisioned stream and waits until it is active.
func createStream(ctx context.Context, kc *kinesis.Client, name string, shards int32) error {
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		return fmt.Errorf("create stream %s: %w", name, err)
	}
	return waitActive(ctx, kc, name)
}

// waitActive waits until the stream is ACTIVE, as it is after creation and after a reshard.
func waitActive(ctx context.Context, kc *kinesis.Client, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		out, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		var notFound *types.ResourceNotFoundException
		switch {
		case err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive:
			return nil
		case err != nil && !errors.As(err, &notFound):
			return fmt.Errorf("describe stream %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream %s did not become active: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// listShards returns every shard of the stream, closed ones included.
func listShards(ctx context.Context, kc *kinesis.Client, stream string) ([]types.Shard, error) {
	var shards []types.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := kc.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", stream, err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			return shards, nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// splitShard splits the stream's first open shard at the middle of its hash key range, as an
// operator adds capacity to a hot shard. It returns the shard split and its two children.
func splitShard(ctx context.Context, kc *kinesis.Client, stream string) (parent string, children []string, err error) {
	shards, err := listShards(ctx, kc, stream)
	if err != nil {
		return "", nil, err
	}
	var target *types.Shard
	for i := range shards {
		if shards[i].SequenceNumberRange.EndingSequenceNumber == nil {
			target = &shards[i]
			break
		}
	}
	if target == nil {
		return "", nil, fmt.Errorf("stream %s has no open shard", stream)
	}
	lo, ok1 := new(big.Int).SetString(aws.ToString(target.HashKeyRange.StartingHashKey), 10)
	hi, ok2 := new(big.Int).SetString(aws.ToString(target.HashKeyRange.EndingHashKey), 10)
	if !ok1 || !ok2 {
		return "", nil, fmt.Errorf("shard %s has an unreadable hash key range", aws.ToString(target.ShardId))
	}
	mid := new(big.Int).Add(lo, hi)
	mid.Rsh(mid, 1)
	mid.Add(mid, big.NewInt(1)) // the new shard's first hash key
	parent = aws.ToString(target.ShardId)
	if _, err := kc.SplitShard(ctx, &kinesis.SplitShardInput{
		StreamName:         aws.String(stream),
		ShardToSplit:       aws.String(parent),
		NewStartingHashKey: aws.String(mid.String()),
	}); err != nil {
		return "", nil, fmt.Errorf("split %s: %w", parent, err)
	}
	if err := waitActive(ctx, kc, stream); err != nil {
		return "", nil, err
	}
	shards, err = listShards(ctx, kc, stream)
	if err != nil {
		return "", nil, err
	}
	for _, s := range shards {
		if aws.ToString(s.ParentShardId) == parent {
			children = append(children, aws.ToString(s.ShardId))
		}
	}
	return parent, children, nil
}

// deleteStream and deleteTable remove what the demo created; they run at the end whatever
// happened, with their own deadline.
func deleteStream(kc *kinesis.Client, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := kc.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(name), EnforceConsumerDeletion: aws.Bool(true)})
	return err
}

func deleteTable(ddb *dynamodb.Client, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := ddb.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	var notFound *ddbtypes.ResourceNotFoundException
	if errors.As(err, &notFound) {
		return nil // the workers never created it
	}
	return err
}

// shortShard shortens "shardId-000000000004" to "4" for the progress lines.
func shortShard(id string) string {
	s := strings.TrimLeft(strings.TrimPrefix(id, "shardId-"), "0")
	if s == "" {
		return "0"
	}
	return s
}
