package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/shardline/shardline/checkpoint"
)

// sdkRetry puts the retries of a worker's own DynamoDB client between its store and the
// shared table: with no SDK in between, a throttled request would fail at its first attempt,
// which no real client does. It drives the SDK's own retryer as the SDK's retry middleware
// does (aws/retry/middleware.go: an attempt token per attempt, a retry token from the
// quota's bucket per retry, the retryer's delay between attempts), configured as the
// DynamoDB client configures it (service/dynamodb/api_client.go: four attempts, 25 ms base
// delay). Delays are divided by the fleet's speed, like every other interval.
type sdkRetry struct {
	api     checkpoint.DynamoDBAPI
	retryer aws.RetryerV2
	speed   float64
}

func newSDKRetry(api checkpoint.DynamoDBAPI, speed float64) *sdkRetry {
	return &sdkRetry{api: api, speed: speed, retryer: retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 4
		o.BaseDelay = 25 * time.Millisecond
	})}
}

var _ checkpoint.DynamoDBAPI = (*sdkRetry)(nil)

// retryerFor is the retryer one call uses: the client's, as the call's option functions
// leave it (the store narrows renewals' retry delays that way).
func (r *sdkRetry) retryerFor(optFns []func(*dynamodb.Options)) aws.RetryerV2 {
	o := dynamodb.Options{Retryer: r.retryer}
	for _, fn := range optFns {
		fn(&o)
	}
	if v2, ok := o.Retryer.(aws.RetryerV2); ok {
		return v2
	}
	return r.retryer
}

func attempts[O any](ctx context.Context, r *sdkRetry, optFns []func(*dynamodb.Options), call func() (O, error)) (O, error) {
	retryer := r.retryerFor(optFns)
	var zero O
	releaseRetry := func(error) error { return nil }
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return zero, err
		}
		releaseAttempt, err := retryer.GetAttemptToken(ctx)
		if err != nil {
			return zero, fmt.Errorf("failed to get retry Send token, %w", err)
		}
		out, err := call()
		_ = releaseRetry(err)
		_ = releaseAttempt(err)
		if err == nil {
			return out, nil
		}
		if !retryer.IsErrorRetryable(err) {
			return out, err
		}
		if n >= retryer.MaxAttempts() {
			return out, &retry.MaxAttemptsError{Attempt: n, Err: err}
		}
		rel, terr := retryer.GetRetryToken(ctx, err)
		if terr != nil {
			return out, errors.Join(err, terr)
		}
		releaseRetry = rel
		d, derr := retryer.RetryDelay(n, err)
		if derr != nil {
			return out, derr
		}
		t := time.NewTimer(time.Duration(float64(d) / r.speed))
		select {
		case <-ctx.Done():
			t.Stop()
			return out, &aws.RequestCanceledError{Err: ctx.Err()}
		case <-t.C:
		}
	}
}

func (r *sdkRetry) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, o ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	return attempts(ctx, r, o, func() (*dynamodb.DescribeTableOutput, error) { return r.api.DescribeTable(ctx, in, o...) })
}

func (r *sdkRetry) CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, o ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	return attempts(ctx, r, o, func() (*dynamodb.CreateTableOutput, error) { return r.api.CreateTable(ctx, in, o...) })
}

func (r *sdkRetry) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return attempts(ctx, r, o, func() (*dynamodb.GetItemOutput, error) { return r.api.GetItem(ctx, in, o...) })
}

func (r *sdkRetry) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return attempts(ctx, r, o, func() (*dynamodb.PutItemOutput, error) { return r.api.PutItem(ctx, in, o...) })
}

func (r *sdkRetry) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return attempts(ctx, r, o, func() (*dynamodb.UpdateItemOutput, error) { return r.api.UpdateItem(ctx, in, o...) })
}

func (r *sdkRetry) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	return attempts(ctx, r, o, func() (*dynamodb.DeleteItemOutput, error) { return r.api.DeleteItem(ctx, in, o...) })
}

func (r *sdkRetry) Scan(ctx context.Context, in *dynamodb.ScanInput, o ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	return attempts(ctx, r, o, func() (*dynamodb.ScanOutput, error) { return r.api.Scan(ctx, in, o...) })
}
