package aggregation

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestDeaggregatePlainRecords(t *testing.T) {
	for name, data := range map[string][]byte{
		"nil":          nil,
		"empty":        {},
		"short":        {0xf3, 0x89},
		"magic prefix": {0xf3, 0x89, 0x9a},
		"text":         []byte("hello, world"),
		"near magic":   {0xf3, 0x89, 0x9a, 0xc3, 1, 2, 3},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Deaggregate(nil, data, "pk", "77")
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, got, []UserRecord{{PartitionKey: "pk", ExplicitHashKey: "77", Data: data}})
		})
	}
}

func TestDeaggregateAppends(t *testing.T) {
	var agg Aggregator
	for _, d := range []string{"a", "b", "c"} {
		if err := agg.Add(UserRecord{PartitionKey: "k", Data: []byte(d)}); err != nil {
			t.Fatal(err)
		}
	}
	rec, _ := agg.Flush()
	prefix := UserRecord{PartitionKey: "earlier", Data: []byte("0")}
	dst := []UserRecord{prefix}
	dst, err := Deaggregate(dst, rec.Data, rec.PartitionKey, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(dst) != 4 || dst[0].PartitionKey != "earlier" || string(dst[3].Data) != "c" || dst[3].SubSequenceNumber != 2 {
		t.Fatalf("got %v", dst)
	}

	// Appending to one record's Data must not overwrite the next one.
	_ = append(dst[1].Data, 'X')
	if string(dst[2].Data) != "b" {
		t.Fatal("Data capacity reaches into the next record")
	}

	// A corrupt aggregate leaves the earlier entries and adds exactly one.
	bad := bytes.Clone(rec.Data)
	bad[len(bad)-1] ^= 1
	dst, err = Deaggregate(dst[:1], bad, "outer", "")
	if !errors.Is(err, ErrCorrupt) || len(dst) != 2 || dst[0].PartitionKey != "earlier" || !bytes.Equal(dst[1].Data, bad) {
		t.Fatalf("got %v, %v", dst, err)
	}
}

// TestDeaggregateCorrupt feeds broken aggregates and checks that each comes
// back as one raw record equal to the input, with a CorruptError that says
// why.
func TestDeaggregateCorrupt(t *testing.T) {
	pkTable := pbField(nil, tagPartitionKeyTable, []byte("pk"))
	ehkTable := pbField(nil, tagExplicitHashKeyTable, []byte("12"))
	record := func(rec []byte) []byte { return pbField(nil, tagRecord, rec) }
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	valid := frame(join(pkTable, record(pbRecord(0, -1, []byte("x")))))
	badSum := bytes.Clone(valid)
	badSum[len(badSum)-5] ^= 0x40
	badBody := bytes.Clone(valid)
	badBody[6] ^= 0x01

	cases := []struct {
		name   string
		data   []byte
		reason CorruptReason
	}{
		{"magic only", []byte(Magic), ReasonTruncated},
		{"shorter than checksum", append([]byte(Magic), make([]byte, 15)...), ReasonTruncated},
		{"checksum flipped", badSum, ReasonChecksum},
		{"body flipped", badBody, ReasonChecksum},
		{"truncated aggregate", valid[:len(valid)-3], ReasonChecksum},
		{"garbage", frame([]byte{0xff, 0xff, 0xff}), ReasonMalformed},
		{"varint overflow", frame(bytes.Repeat([]byte{0xff}, 11)), ReasonMalformed},
		{"length past end", frame([]byte{tagPartitionKeyTable, 10, 'a'}), ReasonMalformed},
		{"record length past end", frame(join(pkTable, []byte{tagRecord, 50, 8, 0})), ReasonMalformed},
		{"field number zero", frame([]byte{0x02, 0x00}), ReasonMalformed},
		{"wire type 7", frame([]byte{0x0f}), ReasonMalformed},
		{"lone end group", frame([]byte{0x7c}), ReasonMalformed},
		{"unterminated group", frame([]byte{0x7b, 0x08, 0x01}), ReasonMalformed},
		{"mismatched end group", frame([]byte{0x7b, 0x84, 0x01}), ReasonMalformed},
		{"fixed64 past end", frame([]byte{0x79, 1, 2}), ReasonMalformed},
		{"bad varint in record", frame(join(pkTable, record([]byte{tagPartitionKeyIndex, 0x80}))), ReasonMalformed},
		{"bad data length", frame(join(pkTable, record([]byte{tagPartitionKeyIndex, 0, tagData, 5, 'a'}))), ReasonMalformed},
		{"missing partition key index", frame(join(pkTable, record(pbField(nil, tagData, []byte("x"))))), ReasonMissingField},
		{"missing data", frame(join(pkTable, record(pbVarint(nil, tagPartitionKeyIndex, 0)))), ReasonMissingField},
		{"partition key index out of range", frame(join(pkTable, record(pbRecord(1, -1, nil)))), ReasonIndexOutOfRange},
		{"huge partition key index", frame(join(pkTable, record(pbRecord(1<<63, -1, nil)))), ReasonIndexOutOfRange},
		{"no partition key table", frame(record(pbRecord(0, -1, nil))), ReasonIndexOutOfRange},
		{"explicit hash key index out of range", frame(join(pkTable, ehkTable, record(pbRecord(0, 1, nil)))), ReasonIndexOutOfRange},
		{"explicit hash key index without table", frame(join(pkTable, record(pbRecord(0, 0, nil)))), ReasonIndexOutOfRange},
		{"tag without key", frame(join(pkTable, record(pbField(pbRecord(0, -1, nil), tagTag, pbField(nil, tagTagValue, []byte("v")))))), ReasonMissingField},
		{"second record bad", frame(join(pkTable, record(pbRecord(0, -1, []byte("ok"))), record(pbRecord(3, -1, nil)))), ReasonIndexOutOfRange},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Deaggregate(nil, tc.data, "outer-pk", "99")
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got error %v, want a CorruptError", err)
			}
			if ce.Reason != tc.reason {
				t.Fatalf("reason %v (%v), want %v", ce.Reason, err, tc.reason)
			}
			if ce.Offset > len(tc.data) {
				t.Fatalf("offset %d beyond %d bytes", ce.Offset, len(tc.data))
			}
			sameRecords(t, got, []UserRecord{{PartitionKey: "outer-pk", ExplicitHashKey: "99", Data: tc.data}})
			if len(got[0].Data) > 0 && &got[0].Data[0] != &tc.data[0] {
				t.Fatal("raw record does not alias the input")
			}
		})
	}
}

// TestDeaggregateTolerance covers encodings that are valid protobuf although
// no KPL writes them: any field order, unknown fields, repeated scalars,
// non-minimal varints, an empty message.
func TestDeaggregateTolerance(t *testing.T) {
	pk := func(s string) []byte { return pbField(nil, tagPartitionKeyTable, []byte(s)) }
	ehk := func(s string) []byte { return pbField(nil, tagExplicitHashKeyTable, []byte(s)) }
	record := func(rec []byte) []byte { return pbField(nil, tagRecord, rec) }
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	unknown := []byte{
		0x78, 0x05, // field 15 varint
		0x7d, 1, 2, 3, 4, // field 15 fixed32
		0x79, 1, 2, 3, 4, 5, 6, 7, 8, // field 15 fixed64
		0x7a, 0x02, 'h', 'i', // field 15 bytes
		0x7b, 0x08, 0x01, 0x7c, // field 15 group holding a varint
	}

	cases := []struct {
		name string
		pb   []byte
		want []UserRecord
	}{
		{"empty aggregate", nil, nil},
		{"tables only", join(pk("a"), ehk("1")), nil},
		{"records before tables",
			join(record(pbRecord(1, 0, []byte("x"))), pk("a"), ehk("5"), pk("b")),
			[]UserRecord{{PartitionKey: "b", ExplicitHashKey: "5", Data: []byte("x")}}},
		{"unknown fields everywhere",
			join(unknown, pk("a"), unknown, record(join(unknown, pbRecord(0, -1, []byte("x")), unknown)), unknown),
			[]UserRecord{{PartitionKey: "a", Data: []byte("x")}}},
		{"last scalar wins",
			join(pk("a"), pk("b"), record(join(pbVarint(nil, tagPartitionKeyIndex, 0), pbRecord(1, -1, []byte("old")), pbField(nil, tagData, []byte("new"))))),
			[]UserRecord{{PartitionKey: "b", Data: []byte("new")}}},
		{"non-minimal varints",
			join(pk("a"), record([]byte{tagPartitionKeyIndex, 0x80, 0x80, 0x00, tagData, 0x81, 0x00, 'z'})),
			[]UserRecord{{PartitionKey: "a", Data: []byte("z")}}},
		{"tag with unknown field",
			join(pk("a"), record(pbField(pbRecord(0, -1, nil), tagTag, join(unknown, pbField(nil, tagTagKey, []byte("k")))))),
			[]UserRecord{{PartitionKey: "a", Data: []byte{}, Tags: []Tag{{Key: "k"}}}}},
		{"unreferenced empty entries",
			join(pk("a"), ehk(""), ehk("7"), record(pbRecord(0, -1, []byte("1"))), record(pbRecord(0, 1, []byte("2")))),
			[]UserRecord{{PartitionKey: "a", Data: []byte("1")}, {PartitionKey: "a", ExplicitHashKey: "7", Data: []byte("2")}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Deaggregate(nil, frame(tc.pb), "outer", "")
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, got, expectAggregated(tc.want))
		})
	}
}

// TestDeaggregateAllocations checks the allocation budget: one allocation per
// aggregate for all key strings, none per record.
func TestDeaggregateAllocations(t *testing.T) {
	var agg Aggregator
	for i, r := range benchRecords(100) {
		if i%3 == 0 {
			r.ExplicitHashKey = HashKey{Lo: uint64(i % 7)}.String()
		}
		if agg.Add(r) == ErrFull {
			break
		}
	}
	rec, _ := agg.Flush()
	dst := make([]UserRecord, 0, rec.Records)
	allocs := testing.AllocsPerRun(50, func() {
		var err error
		dst, err = Deaggregate(dst[:0], rec.Data, rec.PartitionKey, "")
		if err != nil || len(dst) != rec.Records {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Fatalf("%.0f allocations for %d records", allocs, rec.Records)
	}
}

func TestIsAggregated(t *testing.T) {
	if IsAggregated([]byte{0xf3, 0x89, 0x9a}) || !IsAggregated([]byte(Magic)) {
		t.Fatal("IsAggregated misreads the magic")
	}
	sum := md5.Sum(nil)
	if got, err := Deaggregate(nil, append([]byte(Magic), sum[:]...), "p", ""); err != nil || len(got) != 0 {
		t.Fatalf("empty aggregate: %v, %v", got, err)
	}
}

// TestDecodeRecordFastMatchesGeneral checks the fast path of the KPL's record layout
// against the general decoder, with key indexes of one and of several varint bytes (an
// aggregate of more than 127 distinct keys has the latter), with and without an explicit
// hash key, and on layouts the fast path must leave to the general one.
func TestDecodeRecordFastMatchesGeneral(t *testing.T) {
	pk := make([]string, 300)
	ehk := make([]string, 200)
	for i := range pk {
		pk[i] = fmt.Sprintf("pk%d", i)
	}
	for i := range ehk {
		ehk[i] = fmt.Sprint(i)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		p, e := uint64(r.IntN(len(pk))), int64(-1)
		if r.IntN(2) == 0 {
			e = int64(r.IntN(len(ehk)))
		}
		b := pbRecord(p, e, bytes.Repeat([]byte{'d'}, r.IntN(300)))
		var fast, slow UserRecord
		if !decodeRecordFast(&fast, b, pk, ehk) {
			t.Fatalf("record pk %d ehk %d: the KPL's layout left to the general path", p, e)
		}
		if err := decodeRecordSlow(&slow, b, 0, pk, ehk); err != nil {
			t.Fatal(err)
		}
		if fast.PartitionKey != slow.PartitionKey || fast.ExplicitHashKey != slow.ExplicitHashKey || !bytes.Equal(fast.Data, slow.Data) ||
			cap(fast.Data) != len(fast.Data) || fast.Aggregated != slow.Aggregated || fast.Tags != nil {
			t.Fatalf("pk %d ehk %d: fast %+v, general %+v", p, e, fast, slow)
		}
	}
	// Out-of-range indexes, a field after data, and truncation are for the general path.
	for _, b := range [][]byte{
		pbRecord(300, -1, []byte("x")),
		pbRecord(1, 200, []byte("x")),
		append(pbRecord(1, -1, []byte("x")), tagPartitionKeyIndex, 1),
		pbRecord(1, -1, []byte("xyz"))[:5],
	} {
		var u UserRecord
		if decodeRecordFast(&u, b, pk, ehk) {
			t.Errorf("% x: taken by the fast path", b)
		}
	}
}
