package kinesistest

import (
	"fmt"
	"net/http"
)

// Error codes the server answers with, as the service names them in the "__type" field of
// an AWS JSON 1.1 error body. The SDK maps each to its typed error in
// github.com/aws/aws-sdk-go-v2/service/kinesis/types (the two authentication codes, which
// the Kinesis model does not define, arrive as *smithy.GenericAPIError).
const (
	CodeInvalidArgument               = "InvalidArgumentException"
	CodeResourceNotFound              = "ResourceNotFoundException"
	CodeResourceInUse                 = "ResourceInUseException"
	CodeLimitExceeded                 = "LimitExceededException"
	CodeProvisionedThroughputExceeded = "ProvisionedThroughputExceededException"
	CodeExpiredIterator               = "ExpiredIteratorException"
	CodeExpiredNextToken              = "ExpiredNextTokenException"
	CodeValidation                    = "ValidationException"
	CodeInternalFailure               = "InternalFailure"
	CodeServiceUnavailable            = "ServiceUnavailable"
	CodeMissingAuthenticationToken    = "MissingAuthenticationTokenException"
	CodeIncompleteSignature           = "IncompleteSignatureException"
	CodeUnknownOperation              = "UnknownOperationException"
	CodeSerialization                 = "SerializationException"
)

// apiError is an error answer: the code, the message and the HTTP status to send.
type apiError struct {
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// status is the HTTP status the service uses for the code. Client errors are 400 in the
// AWS JSON protocols; the common server errors are listed on
// https://docs.aws.amazon.com/kinesis/latest/APIReference/CommonErrors.html
func (e *apiError) status() int {
	switch e.code {
	case CodeInternalFailure:
		return http.StatusInternalServerError
	case CodeServiceUnavailable:
		return http.StatusServiceUnavailable
	case CodeMissingAuthenticationToken:
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

func errorf(code, format string, args ...any) *apiError {
	return &apiError{code: code, message: fmt.Sprintf(format, args...)}
}

func invalidArg(format string, args ...any) *apiError {
	return errorf(CodeInvalidArgument, format, args...)
}

func streamNotFound(name string) *apiError {
	return errorf(CodeResourceNotFound, "Stream %s under account %s not found.", name, accountPlaceholder)
}

// accountPlaceholder is replaced per server when messages name the account; kept as a
// constant so messages read like the service's.
const accountPlaceholder = "(this account)"

// pageLimit reads an optional page-size member (Limit, MaxResults): def when it is absent,
// and a ValidationException naming the member when it is outside 1 to max.
func pageLimit(member string, v *int32, def, max int) (int, *apiError) {
	if v == nil {
		return def, nil
	}
	if *v < 1 || int(*v) > max {
		return 0, errorf(CodeValidation, "%s %d must be between 1 and %d", member, *v, max)
	}
	return int(*v), nil
}
