package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// FirehoseEndpoint returns the endpoint that serves Firehose and the S3 it delivers to:
// moto_server, the same one as CloudWatch's. It ends the test through Unavailable.
func FirehoseEndpoint(t testing.TB) string {
	t.Helper()
	return requireEndpoint(t, CloudWatchEndpointVar, "Firehose and S3 (moto)")
}

// Firehose returns a Firehose client for moto. httpClient may be nil.
func Firehose(t testing.TB, httpClient aws.HTTPClient, optFns ...func(*firehose.Options)) *firehose.Client {
	t.Helper()
	ep := FirehoseEndpoint(t)
	opts := append([]func(*firehose.Options){func(o *firehose.Options) { o.BaseEndpoint = aws.String(ep) }}, optFns...)
	return firehose.NewFromConfig(Config(httpClient), opts...)
}

// S3 returns an S3 client for moto, with path-style addressing, since bucket names cannot be
// host names of a loopback endpoint.
func S3(t testing.TB, httpClient aws.HTTPClient) *s3.Client {
	t.Helper()
	ep := FirehoseEndpoint(t)
	return s3.NewFromConfig(Config(httpClient), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(ep)
		o.UsePathStyle = true
	})
}

// CreateDeliveryStream creates a bucket with a unique, valid name (S3 bucket names are 3 to
// 63 lower-case letters, digits and hyphens) and a DirectPut delivery stream that writes to it,
// and returns both names. moto writes the records of each PutRecordBatch as one object.
func CreateDeliveryStream(t testing.TB, fh *firehose.Client, s3c *s3.Client) (stream, bucket string) {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testenv: random name: %v", err)
	}
	suffix := hex.EncodeToString(b[:])
	bucket, stream = "bucket-"+suffix, UniqueName(t, "fh")
	if len(stream) > 64 { // delivery stream names are at most 64 characters
		stream = "fh-" + suffix
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("testenv: CreateBucket %s: %v", bucket, err)
	}
	_, err := fh.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{
		DeliveryStreamName: aws.String(stream),
		DeliveryStreamType: fhtypes.DeliveryStreamTypeDirectPut,
		ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{
			BucketARN: aws.String("arn:aws:s3:::" + bucket),
			RoleARN:   aws.String("arn:aws:iam::123456789012:role/firehose-test"),
		},
	})
	if err != nil {
		t.Fatalf("testenv: CreateDeliveryStream %s: %v", stream, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = fh.DeleteDeliveryStream(ctx, &firehose.DeleteDeliveryStreamInput{DeliveryStreamName: aws.String(stream)})
	})
	return stream, bucket
}
