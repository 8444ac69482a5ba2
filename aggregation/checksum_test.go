package aggregation

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// Aggregates flushed without their checksum are rejected as corrupt until a Checksummer
// fills them in, and then are byte for byte what FlushInto makes of the same records.
func TestChecksummerCompletesAggregates(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	var c Checksummer
	for _, n := range []int{1, 2, 5, 16, 17, 40} {
		var unsummed, want [][]byte
		var inputs [][]UserRecord
		for range n {
			var recs []UserRecord
			for range 1 + rng.IntN(300) {
				recs = append(recs, UserRecord{PartitionKey: randomKey(rng, 8), Data: randomData(rng, rng.IntN(200))})
			}
			inputs = append(inputs, recs)
			var a, b Aggregator
			for _, r := range recs {
				if err := a.Add(r); err != nil {
					t.Fatal(err)
				}
				if err := b.Add(r); err != nil {
					t.Fatal(err)
				}
			}
			got, _ := a.FlushWithoutChecksum(nil)
			full, _ := b.FlushInto(nil)
			if !got.Aggregated || !full.Aggregated {
				t.Fatalf("%d records did not aggregate", len(recs))
			}
			if _, err := Deaggregate(nil, got.Data, got.PartitionKey, ""); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("an aggregate without its checksum deaggregated (err %v)", err)
			}
			unsummed, want = append(unsummed, got.Data), append(want, full.Data)
		}
		c.Fill(unsummed)
		for i := range unsummed {
			if !bytes.Equal(unsummed[i], want[i]) {
				t.Fatalf("%d aggregates: aggregate %d differs from FlushInto's", n, i)
			}
			out, err := Deaggregate(nil, unsummed[i], "", "")
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, out, expectAggregated(inputs[i]))
		}
		// A second Fill finds every checksum in place and changes nothing.
		c.Fill(unsummed)
		for i := range unsummed {
			if !bytes.Equal(unsummed[i], want[i]) {
				t.Fatalf("a second Fill changed aggregate %d", i)
			}
		}
	}
}

func TestChecksummerAllocatesNothingWhenReused(t *testing.T) {
	aggs := make([][]byte, 20)
	for i := range aggs {
		var a Aggregator
		for j := range 50 {
			if err := a.Add(UserRecord{PartitionKey: string(rune('a' + j%26)), Data: make([]byte, 100)}); err != nil {
				t.Fatal(err)
			}
		}
		rec, _ := a.FlushWithoutChecksum(nil)
		aggs[i] = rec.Data
	}
	var c Checksummer
	c.Fill(aggs)
	if n := testing.AllocsPerRun(20, func() { c.Fill(aggs) }); n != 0 {
		t.Fatalf("Fill allocated %v times per call", n)
	}
}

func TestChecksummerPanicsOnShortRecord(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Fill of a record shorter than an aggregate's overhead did not panic")
		}
	}()
	var c Checksummer
	c.Fill([][]byte{[]byte(Magic)})
}
