package aggregation

import (
	"crypto/md5"
	"math/bits"
)

// Magic is the 4-byte prefix that marks a Kinesis record as a KPL aggregate
// (F3 89 9A C2). It is a string constant so that it cannot be modified and can
// be compared with string(data[:4]) without allocating.
const Magic = "\xf3\x89\x9a\xc2"

// Limits of the format and of the Kinesis API.
const (
	// MaxRecordSize is the Kinesis limit on one record: data bytes plus
	// partition key bytes (1 MiB).
	MaxRecordSize = 1 << 20

	// DefaultMaxAggregateSize is the KPL's default AggregationMaxSize: the
	// largest encoded aggregate (magic, protobuf and checksum) the Aggregator
	// builds unless told otherwise.
	DefaultMaxAggregateSize = 51200

	// MaxPartitionKeyLength is the Kinesis limit on a partition key, in
	// UTF-16 code units (ValidatePartitionKey).
	MaxPartitionKeyLength = 256

	// ChecksumSize is the length of the MD5 digest that ends an aggregate.
	ChecksumSize = md5.Size

	// Overhead is the number of bytes an aggregate adds around its protobuf
	// message: the magic prefix and the checksum suffix.
	Overhead = len(Magic) + ChecksumSize
)

// Protobuf tags (field number << 3 | wire type) of the schema. Every field of
// the format is either a varint (wire type 0) or length-delimited (wire type 2).
const (
	tagPartitionKeyTable    = 1<<3 | 2 // AggregatedRecord.partition_key_table
	tagExplicitHashKeyTable = 2<<3 | 2 // AggregatedRecord.explicit_hash_key_table
	tagRecord               = 3<<3 | 2 // AggregatedRecord.records

	tagPartitionKeyIndex    = 1<<3 | 0 // Record.partition_key_index
	tagExplicitHashKeyIndex = 2<<3 | 0 // Record.explicit_hash_key_index
	tagData                 = 3<<3 | 2 // Record.data
	tagTag                  = 4<<3 | 2 // Record.tags

	tagTagKey   = 1<<3 | 2 // Tag.key
	tagTagValue = 2<<3 | 2 // Tag.value
)

const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireStart   = 3
	wireEnd     = 4
	wireFixed32 = 5
)

// varintLen returns the number of bytes of the base-128 varint encoding of v.
func varintLen(v uint64) int {
	// Each byte carries 7 bits; bits.Len64(v|1)*9/64 rounds up to the
	// number of 7-bit groups without a loop or a division.
	return int((9*uint32(bits.Len64(v|1)) + 64) / 64)
}

// bytesFieldLen is the encoded size of a length-delimited field with a
// one-byte tag and a payload of n bytes.
func bytesFieldLen(n int) int {
	return 1 + varintLen(uint64(n)) + n
}

// appendVarint appends the varint encoding of v.
func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// consumeVarint decodes a varint at the start of b and returns it with its
// length, or n <= 0 when b is truncated or the varint overflows 64 bits.
// Non-minimal encodings are accepted, as protobuf parsers accept them.
func consumeVarint(b []byte) (v uint64, n int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return consumeVarintSlow(b)
}

func consumeVarintSlow(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		c := b[i]
		if i == 9 && c > 1 {
			return 0, -1 // more than 64 bits
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, i + 1
		}
	}
	return 0, -1
}

// consumeBytes decodes a varint length followed by that many bytes.
func consumeBytes(b []byte) (payload []byte, n int) {
	l, m := consumeVarint(b)
	if m <= 0 || l > uint64(len(b)-m) {
		return nil, -1
	}
	return b[m : m+int(l)], m + int(l)
}

// skipField skips the value of a field with the given tag, as a proto2 parser
// does for a field it does not know. It returns the number of bytes consumed,
// or -1 when the value is malformed. depth bounds group nesting so hostile
// input cannot exhaust the stack.
func skipField(b []byte, tag uint64, depth int) int {
	switch tag & 7 {
	case wireVarint:
		_, n := consumeVarint(b)
		return n
	case wireFixed64:
		if len(b) < 8 {
			return -1
		}
		return 8
	case wireBytes:
		_, n := consumeBytes(b)
		return n
	case wireFixed32:
		if len(b) < 4 {
			return -1
		}
		return 4
	case wireStart:
		if depth >= 64 {
			return -1
		}
		i := 0
		for i < len(b) {
			inner, n := consumeVarint(b[i:])
			if n <= 0 || inner>>3 == 0 {
				return -1
			}
			i += n
			if inner&7 == wireEnd {
				if inner>>3 != tag>>3 {
					return -1
				}
				return i
			}
			m := skipField(b[i:], inner, depth+1)
			if m < 0 {
				return -1
			}
			i += m
		}
		return -1
	default: // a lone end-group or an undefined wire type
		return -1
	}
}
