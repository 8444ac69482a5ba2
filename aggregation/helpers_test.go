package aggregation

import (
	"bytes"
	"crypto/md5"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf16"
)

// frame wraps protobuf bytes into an aggregate with a correct checksum.
func frame(pb []byte) []byte {
	sum := md5.Sum(pb)
	out := append([]byte(Magic), pb...)
	return append(out, sum[:]...)
}

// pbField appends a length-delimited field.
func pbField(b []byte, tag byte, payload []byte) []byte {
	b = append(b, tag)
	b = appendVarint(b, uint64(len(payload)))
	return append(b, payload...)
}

// pbVarint appends a varint field.
func pbVarint(b []byte, tag byte, v uint64) []byte {
	return appendVarint(append(b, tag), v)
}

// pbRecord builds a Record message; ehk < 0 leaves the index out.
func pbRecord(pk uint64, ehk int64, data []byte) []byte {
	b := pbVarint(nil, tagPartitionKeyIndex, pk)
	if ehk >= 0 {
		b = pbVarint(b, tagExplicitHashKeyIndex, uint64(ehk))
	}
	return pbField(b, tagData, data)
}

// tables returns the key tables of an aggregate produced by this package.
func tables(t *testing.T, blob []byte) (pks, ehks []string) {
	t.Helper()
	pb := blob[len(Magic) : len(blob)-ChecksumSize]
	for i := 0; i < len(pb); {
		tag, n := consumeVarint(pb[i:])
		i += n
		s, m := consumeBytes(pb[i:])
		if n <= 0 || m <= 0 {
			t.Fatalf("malformed aggregate at byte %d", i)
		}
		i += m
		switch tag {
		case tagPartitionKeyTable:
			pks = append(pks, string(s))
		case tagExplicitHashKeyTable:
			ehks = append(ehks, string(s))
		}
	}
	return pks, ehks
}

// sameRecords compares user records field by field, treating nil and empty
// Data and Tags alike.
func sameRecords(t *testing.T, got, want []UserRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.PartitionKey != w.PartitionKey || g.ExplicitHashKey != w.ExplicitHashKey ||
			!bytes.Equal(g.Data, w.Data) || g.SubSequenceNumber != w.SubSequenceNumber ||
			g.Aggregated != w.Aggregated || len(g.Tags) != len(w.Tags) {
			t.Fatalf("record %d:\n got  %s\n want %s", i, describe(g), describe(w))
		}
		for j := range w.Tags {
			if g.Tags[j] != w.Tags[j] {
				t.Fatalf("record %d tag %d: got %+v, want %+v", i, j, g.Tags[j], w.Tags[j])
			}
		}
	}
}

func describe(r UserRecord) string {
	d := r.Data
	suffix := ""
	if len(d) > 16 {
		d, suffix = d[:16], "..."
	}
	return fmt.Sprintf("pk=%q ehk=%q data(%d)=%x%s sub=%d agg=%v tags=%v",
		r.PartitionKey, r.ExplicitHashKey, len(r.Data), d, suffix, r.SubSequenceNumber, r.Aggregated, r.Tags)
}

// expectAggregated returns the records as Deaggregate reports them from one
// aggregate.
func expectAggregated(in []UserRecord) []UserRecord {
	out := make([]UserRecord, len(in))
	for i, r := range in {
		r.SubSequenceNumber = int64(i)
		r.Aggregated = true
		out[i] = r
	}
	return out
}

// randomKey returns a valid partition key of 1 to maxRunes characters mixing
// ASCII, 2-, 3- and 4-byte UTF-8.
func randomKey(rng *rand.Rand, maxUnits int) string {
	alphabet := []rune("abcXYZ09-_ éßЖ中文字🚀𝄞")
	n := 1 + rng.IntN(maxUnits)
	var sb strings.Builder
	for units := 0; ; {
		r := alphabet[rng.IntN(len(alphabet))]
		if units += utf16.RuneLen(r); units > n && sb.Len() > 0 {
			return sb.String() // at most maxUnits UTF-16 code units, as Kinesis counts
		}
		sb.WriteRune(r)
	}
}

// randomHashKey returns a valid explicit hash key.
func randomHashKey(rng *rand.Rand) string {
	switch rng.IntN(8) {
	case 0:
		return "0"
	case 1:
		return MaxHashKey.String()
	case 2:
		return fmt.Sprint(rng.Uint32())
	default:
		return HashKey{Hi: rng.Uint64(), Lo: rng.Uint64()}.String()
	}
}

func randomData(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}
