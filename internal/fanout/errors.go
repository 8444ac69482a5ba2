package fanout

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// isCode reports whether err carries one of the given AWS error codes.
func isCode(err error, codes ...string) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	code := apiErr.ErrorCode()
	for _, c := range codes {
		if code == c {
			return true
		}
	}
	return false
}

// isTransient reports network failures and server errors, which a later attempt may not meet.
func isTransient(err error) bool {
	var sendErr *smithyhttp.RequestSendError
	var netErr net.Error
	var respErr *smithyhttp.ResponseError
	switch {
	case errors.As(err, &sendErr), errors.As(err, &netErr):
		return true
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE):
		return true
	case errors.As(err, &respErr) && respErr.HTTPStatusCode() >= 500:
		return true
	}
	return false
}

// missingInitialResponse recognizes the SDK's refusal of an event stream that does not begin
// with an initial-response event, which only an emulator produces and which no retry cures.
func missingInitialResponse(err error) bool {
	return err != nil && strings.Contains(err.Error(), "expected initial-response")
}

// fatalSubscribeError tells the subscription errors that retrying cannot cure: the request is
// wrong, or access to the stream or its key is denied. ResourceNotFoundException is handled
// apart, because a shard that has expired also reports it.
func fatalSubscribeError(err error) bool {
	return missingInitialResponse(err) || isCode(err,
		"InvalidArgumentException", "ValidationException", "AccessDeniedException",
		"KMSAccessDeniedException", "KMSDisabledException", "KMSInvalidStateException",
		"KMSNotFoundException", "KMSOptInRequired", "UnrecognizedClientException")
}
