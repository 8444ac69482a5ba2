package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwschemas "github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"
	"github.com/shardline/shardline/internal/requestbody"
)

// Region is the region every emulator client uses.
const Region = "us-east-1"

// Config returns an aws.Config with static test credentials and the test region. The
// credentials are placeholders the emulators accept; no real AWS account is reached, because
// every client also gets an emulator endpoint. httpClient may be nil; pass a client whose
// Transport injects faults or records calls.
func Config(httpClient aws.HTTPClient) aws.Config {
	cfg := aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		// The tests inject their own faults; SDK retries would hide them unless a test wants
		// them, so a test opts in through the client options.
		RetryMaxAttempts: 1,
	}
	if httpClient == nil {
		httpClient = HTTPClient(nil)
	}
	cfg.HTTPClient = httpClient
	return cfg
}

// KinesisEndpoint returns the kinesis-mock endpoint or ends the test through Unavailable.
func KinesisEndpoint(t testing.TB) string {
	t.Helper()
	return requireEndpoint(t, KinesisEndpointVar, "Kinesis (kinesis-mock)")
}

// DynamoDBEndpoint returns the dynalite endpoint or ends the test through Unavailable.
func DynamoDBEndpoint(t testing.TB) string {
	t.Helper()
	return requireEndpoint(t, DynamoDBEndpointVar, "DynamoDB (dynalite)")
}

// CloudWatchEndpoint returns the moto endpoint or ends the test through Unavailable.
func CloudWatchEndpoint(t testing.TB) string {
	t.Helper()
	return requireEndpoint(t, CloudWatchEndpointVar, "CloudWatch (moto)")
}

// Kinesis returns a Kinesis client for kinesis-mock. httpClient may be nil.
func Kinesis(t testing.TB, httpClient aws.HTTPClient, optFns ...func(*kinesis.Options)) *kinesis.Client {
	t.Helper()
	ep := KinesisEndpoint(t)
	opts := append([]func(*kinesis.Options){func(o *kinesis.Options) { o.BaseEndpoint = aws.String(ep) }}, optFns...)
	return kinesis.NewFromConfig(Config(httpClient), opts...)
}

// DynamoDB returns a DynamoDB client for dynalite. httpClient may be nil.
func DynamoDB(t testing.TB, httpClient aws.HTTPClient, optFns ...func(*dynamodb.Options)) *dynamodb.Client {
	t.Helper()
	ep := DynamoDBEndpoint(t)
	opts := append([]func(*dynamodb.Options){func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(ep) }}, optFns...)
	return dynamodb.NewFromConfig(Config(httpClient), opts...)
}

// CloudWatchQueryProtocol makes a CloudWatch client speak the awsQuery protocol, which moto
// serves and CloudWatch accepts; the SDK's default (RPC v2 CBOR) is not served by moto.
func CloudWatchQueryProtocol(o *cloudwatch.Options) {
	o.Protocol = awsquery.New(cwschemas.GraniteServiceVersion20100801)
}

// CloudWatch returns a CloudWatch client for moto, speaking awsQuery. httpClient may be nil.
func CloudWatch(t testing.TB, httpClient aws.HTTPClient, optFns ...func(*cloudwatch.Options)) *cloudwatch.Client {
	t.Helper()
	ep := CloudWatchEndpoint(t)
	opts := append([]func(*cloudwatch.Options){
		func(o *cloudwatch.Options) { o.BaseEndpoint = aws.String(ep) },
		CloudWatchQueryProtocol,
	}, optFns...)
	return cloudwatch.NewFromConfig(Config(httpClient), opts...)
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// UniqueName returns a resource name that starts with prefix, contains the (shortened) test
// name for readability in emulator logs, and ends in random hex so parallel tests and earlier
// runs never collide. It fits Kinesis's and DynamoDB's name rules (at most 128 characters of
// [a-zA-Z0-9_.-]).
func UniqueName(t testing.TB, prefix string) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testenv: random name: %v", err)
	}
	name := unsafeName.ReplaceAllString(t.Name(), "-")
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	return strings.Trim(prefix+"-"+name, "-") + "-" + hex.EncodeToString(b[:])
}

// CreateStream creates a provisioned stream with the given shard count and a unique name,
// waits until it is ACTIVE, and deletes it when the test ends. It returns the stream name.
func CreateStream(t testing.TB, client *kinesis.Client, shards int32) string {
	t.Helper()
	name := UniqueName(t, "sl")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName: aws.String(name),
		ShardCount: aws.Int32(shards),
	}); err != nil {
		t.Fatalf("testenv: create stream %s: %v", name, err)
	}
	if err := WaitStreamActive(ctx, client, name); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = client.DeleteStream(ctx, &kinesis.DeleteStreamInput{
			StreamName:              aws.String(name),
			EnforceConsumerDeletion: aws.Bool(true),
		})
	})
	return name
}

// WaitStreamActive polls DescribeStreamSummary until the stream is ACTIVE or ctx ends.
// kinesis-mock, like Kinesis, passes through CREATING and UPDATING first.
func WaitStreamActive(ctx context.Context, client *kinesis.Client, name string) error {
	for {
		out, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		var notFound *types.ResourceNotFoundException
		switch {
		case err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive:
			return nil
		case err != nil && !errors.As(err, &notFound):
			return fmt.Errorf("describe stream %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream %s not active: %w", name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// HTTPClient returns an HTTP client using rt as its transport (when nil, the transport the
// SDK's own default client would build), for passing a recording or failing round tripper
// to Config and the client constructors. Request bodies go through
// requestbody.Guard, so that an emulator answering before it has read a body does not show
// up as a broken connection.
func HTTPClient(rt http.RoundTripper) *http.Client {
	if rt == nil {
		rt = awshttp.NewBuildableClient().GetTransport()
	}
	return requestbody.Client(rt)
}

// TableName returns a unique DynamoDB table name for the test and deletes the table of that
// name, if any was created, when the test ends. The code under test creates the table.
func TableName(t testing.TB, client *dynamodb.Client) string {
	t.Helper()
	name := UniqueName(t, "sl")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	return name
}
