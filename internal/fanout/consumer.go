package fanout

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/cenkalti/backoff/v4"
)

// RegistrationAPI is the part of the Kinesis client that consumer registration uses;
// *kinesis.Client implements it.
type RegistrationAPI interface {
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	RegisterStreamConsumer(ctx context.Context, in *kinesis.RegisterStreamConsumerInput, optFns ...func(*kinesis.Options)) (*kinesis.RegisterStreamConsumerOutput, error)
	DescribeStreamConsumer(ctx context.Context, in *kinesis.DescribeStreamConsumerInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamConsumerOutput, error)
	DeregisterStreamConsumer(ctx context.Context, in *kinesis.DeregisterStreamConsumerInput, optFns ...func(*kinesis.Options)) (*kinesis.DeregisterStreamConsumerOutput, error)
}

// registrationPoll spaces the polls of a consumer's status while it changes. The consumer APIs
// are rate-limited per account, shared by every worker, so the wait grows to a second.
func registrationPoll() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = time.Second
	b.MaxElapsedTime = 0
	return b
}

// StreamARN resolves a stream name to its ARN, which the consumer APIs require.
func StreamARN(ctx context.Context, client RegistrationAPI, streamName string) (string, error) {
	out, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(streamName)})
	if err != nil {
		return "", fmt.Errorf("fanout: describe stream %s: %w", streamName, err)
	}
	if out.StreamDescriptionSummary == nil || out.StreamDescriptionSummary.StreamARN == nil {
		return "", fmt.Errorf("fanout: describe stream %s: no ARN in the answer", streamName)
	}
	return *out.StreamDescriptionSummary.StreamARN, nil
}

// EnsureConsumer registers the enhanced fan-out consumer consumerName on the stream, or finds
// it when it already exists, waits until it is ACTIVE and returns its ARN.
//
// Registration is per application, not per process: every worker of an application calls
// EnsureConsumer with the same name and they all get the same consumer. The first registers
// it; the others find it with DescribeStreamConsumer, also when their own registration lost a
// race and failed with ResourceInUseException. A consumer of that name being deleted is waited
// for and registered anew.
// Kinesis limits RegisterStreamConsumer to 5 calls per second per account and 5 consumers in
// CREATING at a time, so LimitExceededException is retried with backoff until ctx ends.
func EnsureConsumer(ctx context.Context, client RegistrationAPI, streamARN, consumerName string) (string, error) {
	poll := registrationPoll()
	for {
		arn, status, err := registerOrFind(ctx, client, streamARN, consumerName)
		switch {
		case err != nil && !retryableRegistration(err):
			return "", err
		case err == nil && status == types.ConsumerStatusActive:
			return arn, nil
		case err == nil && status == types.ConsumerStatusDeleting:
			// A deregistration is under way: the name becomes free when it completes, and the
			// next round registers it anew.
		}
		if err := sleep(ctx, poll.NextBackOff()); err != nil {
			return "", fmt.Errorf("fanout: consumer %s not active: %w", consumerName, err)
		}
	}
}

// registerOrFind registers the consumer, or describes it when the name is taken, and reports
// its ARN and status.
func registerOrFind(ctx context.Context, client RegistrationAPI, streamARN, consumerName string) (string, types.ConsumerStatus, error) {
	// Describe first: once the consumer exists, which is the common case for every worker
	// after the first, this spends none of the scarce registration calls.
	arn, status, err := describeConsumer(ctx, client, streamARN, consumerName)
	if err == nil {
		return arn, status, nil
	}
	if !isCode(err, "ResourceNotFoundException") {
		return "", "", err
	}
	out, err := client.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{
		StreamARN:    aws.String(streamARN),
		ConsumerName: aws.String(consumerName),
	})
	if err == nil {
		if out.Consumer == nil || out.Consumer.ConsumerARN == nil {
			return "", "", fmt.Errorf("fanout: register consumer %s: no ARN in the answer", consumerName)
		}
		return *out.Consumer.ConsumerARN, out.Consumer.ConsumerStatus, nil
	}
	if isCode(err, "ResourceInUseException") {
		// Another worker registered it between our describe and register: use theirs. The
		// same code also means the stream is not ACTIVE; the describe then fails and the
		// caller retries.
		arn, status, derr := describeConsumer(ctx, client, streamARN, consumerName)
		if derr == nil {
			return arn, status, nil
		}
		return "", "", err
	}
	return "", "", fmt.Errorf("fanout: register consumer %s: %w", consumerName, err)
}

func describeConsumer(ctx context.Context, client RegistrationAPI, streamARN, consumerName string) (string, types.ConsumerStatus, error) {
	out, err := client.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{
		StreamARN:    aws.String(streamARN),
		ConsumerName: aws.String(consumerName),
	})
	if err != nil {
		return "", "", fmt.Errorf("fanout: describe consumer %s: %w", consumerName, err)
	}
	d := out.ConsumerDescription
	if d == nil || d.ConsumerARN == nil {
		return "", "", fmt.Errorf("fanout: describe consumer %s: no ARN in the answer", consumerName)
	}
	return *d.ConsumerARN, d.ConsumerStatus, nil
}

// retryableRegistration tells the errors that pass with time: rate limits, a stream that is
// not yet ACTIVE, a consumer being deleted under the same name, and server-side failures.
func retryableRegistration(err error) bool {
	return isCode(err, "LimitExceededException", "ResourceInUseException", "InternalFailure",
		"ServiceUnavailable", "ThrottlingException") || isTransient(err)
}

// DeregisterConsumer deletes the consumer consumerName from the stream. It returns once
// Kinesis has accepted the deletion: the consumer is then DELETING until Kinesis removes it, and
// EnsureConsumer with the same name waits for that before registering anew. A consumer that
// does not exist or is already being deleted is not an error.
//
// Deregistration affects every worker of the application (their subscriptions end), so it is
// for tearing an application down, not for stopping one worker.
func DeregisterConsumer(ctx context.Context, client RegistrationAPI, streamARN, consumerName string) error {
	poll := registrationPoll()
	for {
		_, err := client.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{
			StreamARN:    aws.String(streamARN),
			ConsumerName: aws.String(consumerName),
		})
		if err == nil || isCode(err, "ResourceNotFoundException") {
			return nil
		}
		if isCode(err, "ResourceInUseException") {
			// Only an ACTIVE consumer can be deregistered: it is either deleting already or
			// still being created.
			_, status, derr := describeConsumer(ctx, client, streamARN, consumerName)
			if isCode(derr, "ResourceNotFoundException") || derr == nil && status == types.ConsumerStatusDeleting {
				return nil
			}
		}
		if !retryableRegistration(err) {
			return fmt.Errorf("fanout: deregister consumer %s: %w", consumerName, err)
		}
		if err := sleep(ctx, poll.NextBackOff()); err != nil {
			return fmt.Errorf("fanout: deregister consumer %s: %w", consumerName, err)
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
