package aggregation

import (
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

const (
	partitionKeyLimit    = "1 to 256 UTF-16 code units (characters outside the Basic Multilingual Plane count twice) of valid UTF-8"
	explicitHashKeyLimit = "a decimal integer without leading zeros from 0 to 2^128-1 (pattern 0|[1-9][0-9]{0,38})"
	recordSizeLimit      = "data plus partition key of at most 1048576 bytes"
)

// ValidatePartitionKey checks the Kinesis rule for partition keys: 1 to
// MaxPartitionKeyLength characters, counted as the service counts them, in
// UTF-16 code units (see utf16Len), not bytes; the key must be valid UTF-8
// since Kinesis takes a Unicode string.
func ValidatePartitionKey(pk string) error {
	if pk == "" {
		return &ValidationError{Field: "PartitionKey", Limit: partitionKeyLimit, Actual: "empty"}
	}
	if len(pk) <= MaxPartitionKeyLength && isASCII(pk) {
		return nil
	}
	if !utf8.ValidString(pk) {
		return &ValidationError{Field: "PartitionKey", Limit: partitionKeyLimit, Actual: "invalid UTF-8"}
	}
	if n := utf16Len(pk); n > MaxPartitionKeyLength {
		return &ValidationError{Field: "PartitionKey", Limit: partitionKeyLimit, Actual: fmt.Sprintf("%d UTF-16 code units", n)}
	}
	return nil
}

// utf16Len counts a valid UTF-8 string's length the way Kinesis counts a partition key: in
// UTF-16 code units, a character outside the Basic Multilingual Plane (4 bytes in UTF-8, such
// as most emoji) counting twice. The Java KPL checks String.length(), which counts UTF-16 code
// units (KinesisProducer.addUserRecord in awslabs/amazon-kinesis-producer), and kinesis-mock
// refuses a key of 129 such characters ("Partition key must be between 1 and 256 in length")
// while it takes 128.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// isASCII checks eight bytes at a time: it runs for every record put.
func isASCII(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if w&0x8080808080808080 != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// ValidateExplicitHashKey checks an explicit hash key as the Kinesis API does:
// decimal digits matching 0|[1-9][0-9]{0,38} with a value below 2^128. The
// empty string, meaning "no explicit hash key", is valid.
func ValidateExplicitHashKey(ehk string) error {
	if ehk == "" {
		return nil
	}
	if len(ehk) > 1 && ehk[0] == '0' {
		return &ValidationError{Field: "ExplicitHashKey", Limit: explicitHashKeyLimit, Actual: "leading zero"}
	}
	if _, ok := parseHashKey(ehk); !ok {
		return &ValidationError{Field: "ExplicitHashKey", Limit: explicitHashKeyLimit, Actual: describeHashKey(ehk)}
	}
	return nil
}

// ValidateRecordSize checks the Kinesis limit on one record: data bytes plus
// partition key bytes at most MaxRecordSize.
func ValidateRecordSize(pk string, dataLen int) error {
	if len(pk)+dataLen > MaxRecordSize {
		return recordSizeError(len(pk) + dataLen)
	}
	return nil
}

// recordSizeError is split out so that ValidateRecordSize inlines.
func recordSizeError(n int) error {
	return &ValidationError{Field: "Data", Limit: recordSizeLimit, Actual: fmt.Sprintf("%d bytes", n)}
}

// Validate checks everything Kinesis checks on a user record: partition key,
// explicit hash key and size.
func (r *UserRecord) Validate() error {
	if err := ValidatePartitionKey(r.PartitionKey); err != nil {
		return err
	}
	if err := ValidateExplicitHashKey(r.ExplicitHashKey); err != nil {
		return err
	}
	return ValidateRecordSize(r.PartitionKey, len(r.Data))
}
