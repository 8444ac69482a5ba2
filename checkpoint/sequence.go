package checkpoint

import (
	"fmt"
)

// Sentinel checkpoint values. They are the strings the Java KCL stores in the checkpoint
// attribute, so a table written by either library reads the same in the other.
const (
	// SentinelTrimHorizon starts a shard at its oldest retained record.
	SentinelTrimHorizon = "TRIM_HORIZON"
	// SentinelLatest starts a shard just after its newest record.
	SentinelLatest = "LATEST"
	// SentinelAtTimestamp starts a shard at a timestamp kept in the consumer's configuration;
	// the table records only that the position is a timestamp.
	SentinelAtTimestamp = "AT_TIMESTAMP"
	// SentinelShardEnd marks a shard whose every record was processed; its children may start.
	SentinelShardEnd = "SHARD_END"
)

// Well-known extended sequence numbers for the sentinels.
var (
	// TrimHorizon is the checkpoint of a lease that starts at the oldest record.
	TrimHorizon = ExtendedSequenceNumber{SequenceNumber: SentinelTrimHorizon}
	// Latest is the checkpoint of a lease that starts after the newest record.
	Latest = ExtendedSequenceNumber{SequenceNumber: SentinelLatest}
	// AtTimestamp is the checkpoint of a lease that starts at a configured timestamp.
	AtTimestamp = ExtendedSequenceNumber{SequenceNumber: SentinelAtTimestamp}
	// ShardEnd is the checkpoint of a fully processed shard.
	ShardEnd = ExtendedSequenceNumber{SequenceNumber: SentinelShardEnd}
)

// ExtendedSequenceNumber is a position in a shard: the sequence number of a Kinesis record and,
// for a record that aggregates several user records (KPL aggregation), the index of a user
// record inside it. A checkpoint at (S, n) means every user record up to and including the
// n-th of record S was processed.
//
// SequenceNumber is either a decimal string (Kinesis sequence numbers have up to 129 digits,
// 56 in practice, far past 64 bits, so they are kept as strings and compared as big integers)
// or one of the sentinel strings.
type ExtendedSequenceNumber struct {
	SequenceNumber    string // decimal sequence number or sentinel
	SubSequenceNumber int64  // user record inside a KPL aggregate; 0 otherwise
}

// NewExtendedSequenceNumber validates seq and subseq and returns the position they name.
// seq must be a decimal sequence number or a sentinel; subseq must not be negative.
func NewExtendedSequenceNumber(seq string, subseq int64) (ExtendedSequenceNumber, error) {
	e := ExtendedSequenceNumber{SequenceNumber: seq, SubSequenceNumber: subseq}
	if err := e.Validate(); err != nil {
		return ExtendedSequenceNumber{}, err
	}
	return e, nil
}

// Validate reports, as an error matching ErrInvalidSequenceNumber, why e is not a usable
// position.
func (e ExtendedSequenceNumber) Validate() error {
	if e.SubSequenceNumber < 0 {
		return fmt.Errorf("%w: negative subsequence number %d", ErrInvalidSequenceNumber, e.SubSequenceNumber)
	}
	if e.IsSentinel() || isDigits(e.SequenceNumber) {
		return nil
	}
	if e.SequenceNumber == "" {
		return fmt.Errorf("%w: empty sequence number", ErrInvalidSequenceNumber)
	}
	return fmt.Errorf("%w: %q is neither a decimal sequence number nor a sentinel", ErrInvalidSequenceNumber, e.SequenceNumber)
}

// IsSentinel reports whether e is one of TRIM_HORIZON, LATEST, AT_TIMESTAMP or SHARD_END.
func (e ExtendedSequenceNumber) IsSentinel() bool {
	switch e.SequenceNumber {
	case SentinelTrimHorizon, SentinelLatest, SentinelAtTimestamp, SentinelShardEnd:
		return true
	}
	return false
}

// IsShardEnd reports whether e marks a fully processed shard.
func (e ExtendedSequenceNumber) IsShardEnd() bool { return e.SequenceNumber == SentinelShardEnd }

// IsZero reports whether e is the zero value (no position at all).
func (e ExtendedSequenceNumber) IsZero() bool { return e == ExtendedSequenceNumber{} }

// String formats e as the sequence number, followed by "/" and the subsequence number when it
// is not zero.
func (e ExtendedSequenceNumber) String() string {
	if e.SubSequenceNumber == 0 {
		return e.SequenceNumber
	}
	return fmt.Sprintf("%s/%d", e.SequenceNumber, e.SubSequenceNumber)
}

// rank orders the kinds of positions. The start sentinels come before every real sequence
// number in the same order the Java KCL gives them (AT_TIMESTAMP, TRIM_HORIZON, LATEST), so
// both libraries agree on which of two checkpoints is further along; SHARD_END comes after
// everything. Malformed values sort first so that Compare stays a total order.
func (e ExtendedSequenceNumber) rank() int {
	switch e.SequenceNumber {
	case SentinelAtTimestamp:
		return 1
	case SentinelTrimHorizon:
		return 2
	case SentinelLatest:
		return 3
	case SentinelShardEnd:
		return 5
	}
	if isDigits(e.SequenceNumber) {
		return 4
	}
	return 0
}

// Compare returns -1, 0 or +1 as e is before, equal to or after o. Sequence numbers compare as
// big integers (never as strings: "9" is before "10"), then by subsequence number. The start
// sentinels come before any sequence number, SHARD_END after all. Values that fail Validate
// sort before everything, by their text; validate untrusted input first.
func (e ExtendedSequenceNumber) Compare(o ExtendedSequenceNumber) int {
	re, ro := e.rank(), o.rank()
	if re != ro {
		return cmpInt(re, ro)
	}
	switch re {
	case 4:
		if c := CompareDecimal(e.SequenceNumber, o.SequenceNumber); c != 0 {
			return c
		}
	case 0:
		if e.SequenceNumber != o.SequenceNumber {
			if e.SequenceNumber < o.SequenceNumber {
				return -1
			}
			return 1
		}
	}
	return cmpInt(e.SubSequenceNumber, o.SubSequenceNumber)
}

// CompareDecimal returns -1, 0 or +1 as the decimal number a is less than, equal to or greater
// than b, without converting either: past leading zeros the longer run of digits is the
// larger number, and runs of the same length compare as text. Both must be non-empty runs of
// ASCII digits (see Validate); it is what Compare uses for sequence numbers, which allocates
// nothing on the consumer's per-record path.
func CompareDecimal(a, b string) int {
	a, b = trimZeros(a), trimZeros(b)
	if len(a) != len(b) {
		return cmpInt(len(a), len(b))
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// trimZeros drops leading zeros, keeping one digit of an all-zero number.
func trimZeros(s string) string {
	i := 0
	for i < len(s)-1 && s[i] == '0' {
		i++
	}
	return s[i:]
}

func cmpInt[T int | int64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// isDigits reports whether s is a non-empty run of ASCII digits. big.Int.SetString alone would
// also accept a sign, which no sequence number has.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	i := 0
	// Eight bytes at a time: every byte is below 0x80, none reaches 0x80 when 0x46 is added
	// (so none is above '9'), and each does when 0x50 is added (so none is below '0'). No
	// byte below 0x80 carries into the next under either addition.
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if w&highs != 0 || (w+0x46*ones)&highs != 0 || (w+0x50*ones)&highs != highs {
			return false
		}
	}
	for ; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
