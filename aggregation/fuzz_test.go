package aggregation

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// FuzzDeaggregate checks that Deaggregate never panics, that a record it
// cannot decode comes back as exactly one raw record equal to the input, and
// that whatever it decodes survives a round trip through the Aggregator; and
// that a Deaggregator prepared with the input decodes it alike. The
// seed corpus in testdata/fuzz/FuzzDeaggregate holds valid aggregates,
// corrupt ones and plain records.
func FuzzDeaggregate(f *testing.F) {
	f.Add([]byte("plain"))
	f.Add(frame(bytes.Join([][]byte{
		pbField(nil, tagPartitionKeyTable, []byte("a")),
		pbField(nil, tagRecord, pbRecord(0, -1, []byte("x"))),
	}, nil)))

	f.Fuzz(func(t *testing.T, data []byte) {
		checkDeaggregate(t, data)
		// Mutated bytes almost never carry a matching MD5, which would leave
		// the protobuf parser unexplored; check the input again as the body
		// of an aggregate with a correct checksum.
		body := data
		if IsAggregated(data) && len(data) >= Overhead {
			body = data[len(Magic) : len(data)-ChecksumSize]
		}
		checkDeaggregate(t, frame(body))
		// A Deaggregator prepared with both gives Deaggregate's results.
		var d Deaggregator
		batch := [][]byte{data, frame(body)}
		d.Prepare(batch)
		for _, r := range batch {
			want, werr := Deaggregate(nil, r, "pk", "")
			got, gerr := d.Deaggregate(nil, r, "pk", "")
			if fmt.Sprint(werr) != fmt.Sprint(gerr) {
				t.Fatalf("Deaggregator: error %v, Deaggregate %v", gerr, werr)
			}
			sameRecords(t, got, want)
		}
	})
}

func checkDeaggregate(t *testing.T, data []byte) {
	t.Helper()
	const pk, ehk = "outer-pk", "123"
	before := UserRecord{PartitionKey: "before"}
	recs, err := Deaggregate([]UserRecord{before}, data, pk, ehk)
	if len(recs) == 0 || recs[0].PartitionKey != "before" {
		t.Fatal("Deaggregate lost the entries already in dst")
	}
	recs = recs[1:]

	raw := []UserRecord{{PartitionKey: pk, ExplicitHashKey: ehk, Data: data}}
	if err != nil {
		var ce *CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v is not a CorruptError", err)
		}
		if !IsAggregated(data) {
			t.Fatal("error for a record without the magic")
		}
		sameRecords(t, recs, raw)
		return
	}
	if !IsAggregated(data) {
		sameRecords(t, recs, raw)
		return
	}

	// Re-encode without validation: decoded keys can be anything.
	agg := NewAggregator(MaxRecordSize)
	for i := range recs {
		r := &recs[i]
		if !r.Aggregated || r.SubSequenceNumber != int64(i) {
			t.Fatalf("record %d: %s", i, describe(*r))
		}
		var p plan
		h := KeyHash(r.PartitionKey)
		agg.plan(&p, r.PartitionKey, h, r.ExplicitHashKey, len(r.Data), r.Tags)
		agg.add(r, &p, h)
		if agg.Size() != p.size {
			t.Fatalf("record %d: size %d, planned %d", i, agg.Size(), p.size)
		}
	}
	rec, ok := agg.Flush()
	if !ok {
		if len(recs) != 0 {
			t.Fatal("nothing flushed")
		}
		return
	}
	again, err := Deaggregate(nil, rec.Data, pk, ehk)
	if err != nil {
		t.Fatalf("re-encoded aggregate does not decode: %v", err)
	}
	sameRecords(t, again, recs)
}
