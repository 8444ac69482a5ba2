package producer

import (
	"errors"
	"fmt"
	"time"

	"github.com/shardline/shardline/aggregation"
)

// ErrBufferFull is returned by TryPutAsync when MaxBufferedRecords or MaxBufferedBytes would
// be exceeded. The record was not accepted.
var ErrBufferFull = errors.New("producer: buffer full")

// ErrClosed is returned by puts after Close was called, and is the result error of records
// that Close gave up on when its context ended (joined with that context's error).
var ErrClosed = errors.New("producer: closed")

// ErrOutcomeUnknown is the result error of records whose PutRecords call was in flight when
// Close gave up and cancelled it: the service may or may not have written them. It is joined
// with ErrClosed and the context error that made Close give up, so errors.Is matches all three.
var ErrOutcomeUnknown = errors.New("producer: closed while the record was in flight; it may have been written")

// ErrRecordExpired matches every *ExpiredError with errors.Is.
var ErrRecordExpired = errors.New("producer: record expired")

// ErrPut matches every *PutError with errors.Is.
var ErrPut = errors.New("producer: put failed")

// ValidationError reports a record that breaks a Kinesis limit; Field and Limit name what was
// broken. It is the aggregation package's type, so errors.As works across both packages.
type ValidationError = aggregation.ValidationError

// ExpiredError is the result error of a record that was not written before RecordTTL passed.
// errors.Is(err, ErrRecordExpired) matches it, and errors.As reaches the last cause through
// Unwrap.
type ExpiredError struct {
	// TTL is the RecordTTL in force.
	TTL time.Duration
	// Attempts is how many PutRecords calls carried the record.
	Attempts int
	// Last is the error of the last attempt, or nil when the record expired before its first
	// attempt (for example while its shard was rate limited or the shard map unknown).
	Last error
}

// Error reports the TTL, the attempts and the last cause.
func (e *ExpiredError) Error() string {
	msg := fmt.Sprintf("producer: record expired after %v and %d attempts", e.TTL, e.Attempts)
	if e.Last != nil {
		msg += ": last error: " + e.Last.Error()
	}
	return msg
}

// Is makes errors.Is(err, ErrRecordExpired) match.
func (e *ExpiredError) Is(target error) bool { return target == ErrRecordExpired }

// Unwrap returns the last cause.
func (e *ExpiredError) Unwrap() error { return e.Last }

// PutError is a failure of a PutRecords call or of one of its entries. It is the result
// error of records that failed without retry, and the Last error of expired records.
type PutError struct {
	// Code is the service's error code (such as ProvisionedThroughputExceededException or
	// ResourceNotFoundException), or a name the producer gives a transport failure: Timeout,
	// ConnectionReset, ConnectionRefused, HTTP5xx, Unknown.
	Code string
	// Message is the service's message for a per-entry failure; empty otherwise.
	Message string
	// Retryable tells whether the producer retries this kind of failure (until RecordTTL).
	Retryable bool
	// Err is the error returned by the call for a whole-request failure; nil for a per-entry
	// failure.
	Err error
}

// Error reports the code and the message or the call's error.
func (e *PutError) Error() string {
	switch {
	case e.Err != nil:
		return fmt.Sprintf("producer: PutRecords failed (%s): %v", e.Code, e.Err)
	case e.Message != "":
		return fmt.Sprintf("producer: record rejected: %s: %s", e.Code, e.Message)
	default:
		return "producer: record rejected: " + e.Code
	}
}

// Is makes errors.Is(err, ErrPut) match.
func (e *PutError) Is(target error) bool { return target == ErrPut }

// Unwrap returns the call's error, if any.
func (e *PutError) Unwrap() error { return e.Err }

// outcomeUnknownError is the result error of records whose call Close cancelled.
func outcomeUnknownError(cause error) error {
	if cause == nil {
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, ErrClosed)
	}
	return fmt.Errorf("%w: %w: %w", ErrOutcomeUnknown, ErrClosed, cause)
}

// closedError is the result error of records abandoned by Close: ErrClosed and the context
// error that made Close give up both match it.
func closedError(cause error) error {
	if cause == nil {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrClosed, cause)
}
