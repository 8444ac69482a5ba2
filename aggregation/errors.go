package aggregation

import (
	"errors"
	"fmt"
)

// ErrFull is returned by Aggregator.Add when the record does not fit in the
// aggregate being built. Flush the aggregate and add the record again.
var ErrFull = errors.New("aggregation: aggregate is full")

// ErrInvalid matches every *ValidationError with errors.Is.
var ErrInvalid = errors.New("aggregation: invalid record")

// ErrCorrupt matches every *CorruptError with errors.Is.
var ErrCorrupt = errors.New("aggregation: corrupt aggregate")

// ValidationError reports a value that Kinesis or the format would reject. It
// names the field and the limit that was broken.
type ValidationError struct {
	// Field is the name of the offending field as the Kinesis API spells it:
	// "PartitionKey", "ExplicitHashKey", "Data", or "HashKey" for ParseHashKey.
	Field string
	// Limit states the rule, e.g. "1 to 256 Unicode characters".
	Limit string
	// Actual describes what was found, e.g. "300 characters".
	Actual string
}

// Error names the field, what was found and the limit.
func (e *ValidationError) Error() string {
	return fmt.Sprintf("aggregation: invalid %s: %s, limit is %s", e.Field, e.Actual, e.Limit)
}

// Unwrap lets errors.Is(err, ErrInvalid) match.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// CorruptReason classifies why an aggregate could not be decoded.
type CorruptReason uint8

// Reasons reported in CorruptError.
const (
	// ReasonTruncated: the record starts with Magic but is too short to hold
	// the checksum.
	ReasonTruncated CorruptReason = iota + 1
	// ReasonChecksum: the MD5 digest does not match the protobuf bytes.
	ReasonChecksum
	// ReasonMalformed: the protobuf bytes are not a valid encoding (bad
	// varint, length past the end, invalid tag or wire type).
	ReasonMalformed
	// ReasonMissingField: a required field (partition_key_index, data, or a
	// tag's key) is absent.
	ReasonMissingField
	// ReasonIndexOutOfRange: a key index points past the end of its table.
	ReasonIndexOutOfRange
)

// String describes the reason in a few words.
func (r CorruptReason) String() string {
	switch r {
	case ReasonTruncated:
		return "truncated"
	case ReasonChecksum:
		return "checksum mismatch"
	case ReasonMalformed:
		return "malformed protobuf"
	case ReasonMissingField:
		return "missing required field"
	case ReasonIndexOutOfRange:
		return "key index out of range"
	default:
		return fmt.Sprintf("CorruptReason(%d)", uint8(r))
	}
}

// CorruptError reports an aggregate that Deaggregate passed through as one raw
// record instead of decoding it.
type CorruptError struct {
	Reason CorruptReason
	// Offset is the byte offset in the Kinesis record's data where decoding
	// stopped, or -1 when the problem is not tied to a position.
	Offset int
	// Detail adds context such as the field or index involved; may be empty.
	Detail string
}

// Error gives the reason, any detail and the offset.
func (e *CorruptError) Error() string {
	msg := "aggregation: corrupt aggregate: " + e.Reason.String()
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	if e.Offset >= 0 {
		msg += fmt.Sprintf(" at byte %d", e.Offset)
	}
	return msg
}

// Unwrap lets errors.Is(err, ErrCorrupt) match.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }
