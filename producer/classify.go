package producer

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"

	"github.com/aws/smithy-go"
)

// errClass is what the producer does about a failure. Every failure, of a whole call or of one
// entry, goes through classifyCode or classifyError, so the retry policy lives here only.
type errClass uint8

const (
	// classRetry: transient; retry the records with backoff until their TTL.
	classRetry errClass = iota + 1
	// classThrottle: transient and the shard (or account) is over its limit: retry, and slow
	// the shard's rate down.
	classThrottle
	// classFatal: retrying cannot help (bad input, missing stream, no permission): fail the
	// records now with the cause.
	classFatal
)

// codeInvalidParameter names a request the SDK refused to send, failing its own validation.
const codeInvalidParameter = "InvalidParameter"

// narrowable reports whether a whole-request failure under code may be caused by one entry's
// content rather than by the stream or the caller: such a request is sent again one Kinesis
// record per request, so that one bad record does not fail its neighbours. A missing stream,
// denied access or a KMS problem concerns every record alike and is not narrowed.
func narrowable(code string) bool {
	switch code {
	case codeInvalidParameter, "InvalidArgumentException", "ValidationException", "SerializationException":
		return true
	}
	return false
}

// classifyCode classifies a service error code, from a PutRecords entry or a whole call.
// Unknown codes are fatal: the service said no for a reason the producer does not know to be
// transient, and retrying for RecordTTL would only hide it.
func classifyCode(code string) errClass {
	switch code {
	case "ProvisionedThroughputExceededException", "KMSThrottlingException",
		"ThrottlingException", "Throttling", "ThrottledException", "LimitExceededException",
		"RequestLimitExceeded", "TooManyRequestsException", "RequestThrottled",
		"RequestThrottledException", "SlowDown":
		return classThrottle
	case "InternalFailure", "InternalFailureException", "InternalServerError", "InternalError",
		"ServiceUnavailable", "ServiceUnavailableException", "Unavailable",
		"RequestTimeout", "RequestTimeoutException",
		// Credentials that expired between signing and arrival, and clock skew, clear up
		// once the SDK refreshes them.
		"ExpiredToken", "ExpiredTokenException", "RequestExpired", "RequestTimeTooSkewed",
		"IDPCommunicationError":
		return classRetry
	}
	return classFatal
}

// classifyError classifies the error of a whole PutRecords call and names it for metrics.
// Transport failures (timeouts, resets, 5xx without a code) are retried: they say nothing
// about the records. Errors the producer cannot place are retried too, bounded by RecordTTL,
// since a local hiccup (a credential refresh, DNS) is likelier than a permanent fault that the
// service would have named.
func classifyError(err error) (errClass, string) {
	var invalid smithy.InvalidParamsError
	if errors.As(err, &invalid) {
		// The SDK refused the request before sending it: sending it again cannot help.
		return classFatal, codeInvalidParameter
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		c := classifyCode(code)
		if c == classFatal && httpStatus(err) >= 500 {
			c = classRetry // a server fault under a code this table does not know
		}
		return c, code
	}
	if s := httpStatus(err); s == 429 {
		return classThrottle, "HTTP429"
	} else if s >= 500 {
		return classRetry, "HTTP" + strconv.Itoa(s)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return classRetry, "Timeout"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return classRetry, "Timeout"
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		// Nothing listens at the address (an endpoint restarting, a wrong port): retried
		// like a reset, but named apart, since the remedy differs.
		return classRetry, "ConnectionRefused"
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return classRetry, "ConnectionReset"
	}
	return classRetry, "Unknown"
}

func httpStatus(err error) int {
	var se interface{ HTTPStatusCode() int }
	if errors.As(err, &se) {
		return se.HTTPStatusCode()
	}
	return 0
}
