package aggregation

import (
	"bytes"
	"errors"
	"fmt"
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

// deaggregatorBatch is a batch of Kinesis record data: aggregates of assorted sizes (some
// longer than a block of MD5, some of several), one with a wrong checksum, one too short to
// be an aggregate, a corrupt protobuf with a right checksum, and plain records.
func deaggregatorBatch(t *testing.T) [][]byte {
	t.Helper()
	var batch [][]byte
	for i, n := range []int{1, 3, 40, 200, 7, 400, 2, 65} {
		a := NewAggregator(0)
		for j := range n {
			if err := a.Add(UserRecord{PartitionKey: fmt.Sprintf("k%d-%d", i, j%5), Data: bytes.Repeat([]byte{byte(j)}, j%97)}); err != nil {
				t.Fatal(err)
			}
		}
		kr, ok := a.Flush()
		if !ok {
			t.Fatal("empty aggregate")
		}
		batch = append(batch, kr.Data)
		if i == 2 {
			batch = append(batch, []byte("plain record"))
		}
	}
	bad := bytes.Clone(batch[3])
	bad[len(bad)-1] ^= 1
	batch = append(batch, bad, []byte(Magic+"short"), frame([]byte{0xff, 0xff}), nil, []byte(Magic))
	return batch
}

// TestDeaggregatorMatchesDeaggregate checks a Deaggregator gives Deaggregate's records and
// errors for every record of a prepared batch, in order, out of order and unprepared.
func TestDeaggregatorMatchesDeaggregate(t *testing.T) {
	batch := deaggregatorBatch(t)
	var d Deaggregator
	check := func(what string, i int) {
		t.Helper()
		want, werr := Deaggregate(nil, batch[i], "pk", "")
		got, gerr := d.Deaggregate(nil, batch[i], "pk", "")
		if fmt.Sprint(werr) != fmt.Sprint(gerr) {
			t.Fatalf("%s, record %d: error %v, want %v", what, i, gerr, werr)
		}
		sameRecords(t, got, want)
	}
	for range 2 {
		d.Prepare(batch)
		for i := range batch {
			check("in order", i)
		}
	}
	d.Prepare(batch)
	for i := len(batch) - 1; i >= 0; i-- {
		check("reversed", i)
	}
	var fresh Deaggregator
	d = fresh
	for i := range batch {
		check("unprepared", i)
	}
}

// TestDeaggregatorUsesPrepared checks that Deaggregate takes Prepare's verdict rather than
// hashing again: an aggregate whose checksum is spoiled after Prepare (which the contract
// forbids, and which shows where the verdict came from) still decodes, while a spoiled one
// that was not prepared does not. And that the prepared records are let go once used.
func TestDeaggregatorUsesPrepared(t *testing.T) {
	batch := deaggregatorBatch(t)
	var d Deaggregator
	d.Prepare(batch)
	spoiled := batch[0]
	spoiled[len(spoiled)-1] ^= 1
	if _, err := d.Deaggregate(nil, spoiled, "pk", ""); err != nil {
		t.Fatalf("prepared aggregate: %v; the checksum was computed again", err)
	}
	if _, err := d.Deaggregate(nil, spoiled, "pk", ""); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("the same aggregate again, unprepared: %v, want a checksum error", err)
	}
	for _, r := range batch[1:] {
		_, _ = d.Deaggregate(nil, r, "pk", "")
	}
	if len(d.checked) != 0 {
		t.Fatalf("%d prepared records still held after all were deaggregated", len(d.checked))
	}
}
