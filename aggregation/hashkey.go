package aggregation

import (
	"cmp"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
)

// HashKey is an unsigned 128-bit integer: a point of the Kinesis hash key
// space. Kinesis routes a record to the shard whose hash key range holds the
// record's explicit hash key or, without one, the MD5 of its partition key.
type HashKey struct {
	Hi, Lo uint64
}

// MaxHashKey is the largest hash key, 2^128 - 1.
var MaxHashKey = HashKey{Hi: ^uint64(0), Lo: ^uint64(0)}

// Cmp compares k and o and returns -1, 0 or +1.
func (k HashKey) Cmp(o HashKey) int {
	if c := cmp.Compare(k.Hi, o.Hi); c != 0 {
		return c
	}
	return cmp.Compare(k.Lo, o.Lo)
}

// String formats the key in decimal, as Kinesis writes hash keys.
func (k HashKey) String() string {
	var buf [39]byte // 2^128 - 1 has 39 digits
	return string(k.appendDecimal(buf[:0]))
}

// AppendDecimal appends the decimal form of k to b.
func (k HashKey) AppendDecimal(b []byte) []byte {
	return k.appendDecimal(b)
}

const pow10_19 = 10_000_000_000_000_000_000 // largest power of ten below 2^64

func (k HashKey) appendDecimal(b []byte) []byte {
	if k.Hi == 0 {
		return strconv.AppendUint(b, k.Lo, 10)
	}
	// Split into base-10^19 limbs; at most three since 10^38 < 2^128 < 10^57.
	var limbs [3]uint64
	n := 0
	hi, lo := k.Hi, k.Lo
	for hi != 0 || lo != 0 {
		qHi := hi / pow10_19
		var r uint64
		lo, r = bits.Div64(hi%pow10_19, lo, pow10_19)
		hi = qHi
		limbs[n] = r
		n++
	}
	b = strconv.AppendUint(b, limbs[n-1], 10)
	for i := n - 2; i >= 0; i-- {
		var digits [19]byte
		v := limbs[i]
		for j := 18; j >= 0; j-- {
			digits[j] = byte('0' + v%10)
			v /= 10
		}
		b = append(b, digits[:]...)
	}
	return b
}

// hashKeyLimit is the rule ParseHashKey enforces, worded for error messages.
const hashKeyLimit = "a decimal integer from 0 to 2^128-1 (340282366920938463463374607431768211455)"

// ParseHashKey parses a decimal hash key, such as a shard's StartingHashKey or
// an explicit hash key. It accepts only ASCII digits (leading zeros allowed)
// with a value below 2^128; otherwise it returns a *ValidationError for field
// "HashKey".
func ParseHashKey(s string) (HashKey, error) {
	k, ok := parseHashKey(s)
	if !ok {
		return HashKey{}, &ValidationError{Field: "HashKey", Limit: hashKeyLimit, Actual: describeHashKey(s)}
	}
	return k, nil
}

func parseHashKey(s string) (HashKey, bool) {
	if s == "" {
		return HashKey{}, false
	}
	var k HashKey
	for i := 0; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 {
			return HashKey{}, false
		}
		// k = k*10 + c, failing on overflow past 128 bits.
		hiCarry, lo := bits.Mul64(k.Lo, 10)
		top, hi := bits.Mul64(k.Hi, 10)
		if top != 0 {
			return HashKey{}, false
		}
		hi, carry := bits.Add64(hi, hiCarry, 0)
		if carry != 0 {
			return HashKey{}, false
		}
		lo, carry = bits.Add64(lo, uint64(c), 0)
		hi, carry = bits.Add64(hi, 0, carry)
		if carry != 0 {
			return HashKey{}, false
		}
		k = HashKey{Hi: hi, Lo: lo}
	}
	return k, true
}

func describeHashKey(s string) string {
	if s == "" {
		return "empty"
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return fmt.Sprintf("non-digit %q at byte %d", s[i], i)
		}
	}
	return fmt.Sprintf("%d digits, value 2^128 or more", len(s))
}

// PartitionKeyHash returns the hash key Kinesis derives from a partition key:
// the MD5 digest of its UTF-8 bytes read as a big-endian 128-bit integer.
func PartitionKeyHash(partitionKey string) HashKey {
	var sum [md5.Size]byte
	// Copy through a stack buffer: a []byte(string) conversion passed to
	// md5.Sum would allocate for keys longer than 32 bytes.
	var buf [4 * MaxPartitionKeyLength]byte
	if len(partitionKey) <= len(buf) {
		n := copy(buf[:], partitionKey)
		sum = md5.Sum(buf[:n])
	} else {
		sum = md5.Sum([]byte(partitionKey))
	}
	return HashKey{Hi: binary.BigEndian.Uint64(sum[:8]), Lo: binary.BigEndian.Uint64(sum[8:])}
}

// EffectiveHashKey returns the hash key Kinesis routes a record by: its
// explicit hash key when set, else the hash of its partition key. It returns
// a *ValidationError when explicitHashKey is set but not a valid hash key.
func EffectiveHashKey(partitionKey, explicitHashKey string) (HashKey, error) {
	if explicitHashKey == "" {
		return PartitionKeyHash(partitionKey), nil
	}
	if err := ValidateExplicitHashKey(explicitHashKey); err != nil {
		return HashKey{}, err
	}
	k, _ := parseHashKey(explicitHashKey)
	return k, nil
}

// ShardRange is the hash key range of one shard, inclusive at both ends as
// Kinesis reports StartingHashKey and EndingHashKey.
type ShardRange struct {
	ShardID    string
	Start, End HashKey
}

// Contains reports whether k lies in the range.
func (r ShardRange) Contains(k HashKey) bool {
	return r.Start.Cmp(k) <= 0 && k.Cmp(r.End) <= 0
}

// ShardMap finds the shard that owns a hash key among non-overlapping ranges,
// typically the open shards of a stream. Gaps are allowed, since a stream
// being resharded may briefly list no open shard for part of the space. A
// ShardMap is immutable and safe for concurrent use.
type ShardMap struct {
	ranges []ShardRange // sorted by Start
}

// NewShardMap builds a ShardMap from ranges in any order. It copies the slice
// and returns an error when a range ends before it starts or two ranges
// overlap (which happens when closed parent shards are passed along with
// their children).
func NewShardMap(ranges []ShardRange) (*ShardMap, error) {
	rs := slices.Clone(ranges)
	slices.SortFunc(rs, func(a, b ShardRange) int { return a.Start.Cmp(b.Start) })
	for i, r := range rs {
		if r.End.Cmp(r.Start) < 0 {
			return nil, fmt.Errorf("aggregation: shard %s: EndingHashKey %s is below StartingHashKey %s", r.ShardID, r.End, r.Start)
		}
		if i > 0 && rs[i-1].End.Cmp(r.Start) >= 0 {
			return nil, fmt.Errorf("aggregation: shards %s and %s overlap at hash key %s", rs[i-1].ShardID, r.ShardID, r.Start)
		}
	}
	return &ShardMap{ranges: rs}, nil
}

// Lookup returns the range that holds k, or false when no range does.
func (m *ShardMap) Lookup(k HashKey) (ShardRange, bool) {
	rs := m.ranges
	// First range that starts above k; the candidate is the one before it.
	i, _ := slices.BinarySearchFunc(rs, k, func(r ShardRange, k HashKey) int {
		if r.Start.Cmp(k) <= 0 {
			return -1
		}
		return 1
	})
	if i == 0 {
		return ShardRange{}, false
	}
	r := rs[i-1]
	if k.Cmp(r.End) > 0 {
		return ShardRange{}, false
	}
	return r, true
}

// Len returns the number of ranges.
func (m *ShardMap) Len() int { return len(m.ranges) }

// Ranges returns a copy of the ranges sorted by StartingHashKey.
func (m *ShardMap) Ranges() []ShardRange { return slices.Clone(m.ranges) }
