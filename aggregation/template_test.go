package aggregation

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// fillBoth adds recs to a copying and to a deferring Aggregator alike, flushing both
// whenever the copying one is full, and checks every aggregate the deferring one makes
// against the copying one's bytes, size and keys.
func fillBoth(t *testing.T, recs []UserRecord, maxSize int, unwrap bool) (aggregates int) {
	t.Helper()
	plain := &Aggregator{MaxSize: maxSize, UnwrapSingle: unwrap}
	deferring := &Aggregator{MaxSize: maxSize, UnwrapSingle: unwrap, DeferData: true}
	var spare []byte
	from := 0 // first record of the open aggregates
	check := func(to int) {
		want, ok := plain.Flush()
		tmpl, tok := deferring.FlushTemplate(spare)
		if ok != tok {
			t.Fatalf("flush of records %d..%d: copying %v, deferring %v", from, to, ok, tok)
		}
		if !ok {
			return
		}
		aggregates++
		if tmpl.Size != len(want.Data) || tmpl.Records != want.Records || tmpl.Single == want.Aggregated ||
			tmpl.PartitionKey != want.PartitionKey || tmpl.ExplicitHashKey != want.ExplicitHashKey {
			t.Fatalf("records %d..%d: template size %d records %d single %v keys %q/%q; aggregate %d bytes, %d records, aggregated %v, keys %q/%q",
				from, to, tmpl.Size, tmpl.Records, tmpl.Single, tmpl.PartitionKey, tmpl.ExplicitHashKey,
				len(want.Data), want.Records, want.Aggregated, want.PartitionKey, want.ExplicitHashKey)
		}
		got, err := tmpl.AppendTo([]byte("prefix"), func(i int) []byte { return recs[from+i].Data }, true)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[len("prefix"):], want.Data) {
			t.Fatalf("records %d..%d: made aggregate differs from the copied one", from, to)
		}
		unsummed, _ := tmpl.AppendTo(nil, func(i int) []byte { return recs[from+i].Data }, false)
		if want.Aggregated && !bytes.Equal(unsummed[:len(unsummed)-ChecksumSize], want.Data[:len(want.Data)-ChecksumSize]) {
			t.Fatal("aggregate without its checksum differs")
		}
		spare = tmpl.Buffer()
		from = to
	}
	for i := range recs {
		err := plain.Add(recs[i])
		derr := deferring.Add(recs[i])
		if (err == nil) != (derr == nil) || (err != nil && !errors.Is(derr, err) && err.Error() != derr.Error()) {
			t.Fatalf("record %d: copying Add %v, deferring Add %v", i, err, derr)
		}
		if errors.Is(err, ErrFull) {
			check(i)
			if err := plain.Add(recs[i]); err != nil {
				t.Fatal(err)
			}
			if err := deferring.Add(recs[i]); err != nil {
				t.Fatal(err)
			}
		} else if err != nil {
			t.Fatal(err)
		}
		if plain.Size() != deferring.Size() {
			t.Fatalf("after record %d: sizes %d and %d", i, plain.Size(), deferring.Size())
		}
	}
	check(len(recs))
	return aggregates
}

// TestTemplateMatchesCopiedAggregate checks that an aggregate made from a template is
// byte for byte the one a copying Aggregator makes, for random shapes: shared and new
// partition keys, explicit hash keys that turn up after records without one (which
// re-indexes the frames), tags, empty data, single records with and without
// UnwrapSingle, and aggregates that fill up.
func TestTemplateMatchesCopiedAggregate(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 7))
		keys := make([]string, 1+rng.IntN(20))
		for i := range keys {
			keys[i] = randomKey(rng, 40)
		}
		recs := make([]UserRecord, 1+rng.IntN(300))
		for i := range recs {
			r := &recs[i]
			r.PartitionKey = keys[rng.IntN(len(keys))]
			if rng.IntN(4) == 0 {
				r.ExplicitHashKey = randomHashKey(rng)
			}
			switch rng.IntN(10) {
			case 0:
			case 1:
				r.Data = randomData(rng, 200+rng.IntN(20000))
			default:
				r.Data = randomData(rng, rng.IntN(300))
			}
			if rng.IntN(30) == 0 {
				r.Tags = []Tag{{Key: "k", Value: "v"}, {Key: "only"}}
			}
		}
		maxSize := []int{0, 4096, 60000, MaxRecordSize}[rng.IntN(4)]
		fillBoth(t, recs, maxSize, seed%2 == 0)
	}
	for _, unwrap := range []bool{false, true} {
		fillBoth(t, []UserRecord{{PartitionKey: "one", Data: []byte("alone")}}, 0, unwrap)
		fillBoth(t, []UserRecord{{PartitionKey: "one", Data: []byte("tagged"), Tags: []Tag{{Key: "t"}}}}, 0, unwrap)
	}
}

// TestDeferDataMayChangeBetweenAggregates switches one Aggregator between copying and
// deferring for each aggregate, reusing its buffers, and checks every aggregate against a
// fresh copying Aggregator's.
func TestDeferDataMayChangeBetweenAggregates(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	agg := &Aggregator{UnwrapSingle: true}
	var spare []byte
	for round := range 200 {
		recs := make([]UserRecord, 1+rng.IntN(60))
		for i := range recs {
			recs[i] = UserRecord{PartitionKey: randomKey(rng, 20), Data: randomData(rng, rng.IntN(600))}
			if rng.IntN(5) == 0 {
				recs[i].ExplicitHashKey = randomHashKey(rng)
			}
		}
		agg.DeferData = rng.IntN(2) == 0
		want := &Aggregator{UnwrapSingle: true}
		for _, r := range recs {
			if err := agg.Add(r); err != nil {
				t.Fatal(err)
			}
			if err := want.Add(r); err != nil {
				t.Fatal(err)
			}
		}
		w, _ := want.Flush()
		var got []byte
		if agg.DeferData {
			tmpl, _ := agg.FlushTemplate(spare)
			var err error
			if got, err = tmpl.AppendTo(nil, func(i int) []byte { return recs[i].Data }, true); err != nil {
				t.Fatal(err)
			}
			spare = tmpl.Buffer()
		} else {
			rec, _ := agg.FlushInto(spare)
			got = append([]byte(nil), rec.Data...)
			spare = rec.Buffer()
		}
		if !bytes.Equal(got, w.Data) {
			t.Fatalf("round %d (deferred %v): aggregate differs", round, agg.DeferData)
		}
	}
}

// TestTemplateDataChanged checks that data that changed length after Add is reported, and
// that the aggregate made anyway still deaggregates with every other record intact.
func TestTemplateDataChanged(t *testing.T) {
	recs := []UserRecord{{PartitionKey: "a", Data: []byte("first")}, {PartitionKey: "b", Data: []byte("second")}, {PartitionKey: "a", Data: []byte("third")}}
	agg := &Aggregator{DeferData: true}
	for _, r := range recs {
		if err := agg.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	tmpl, _ := agg.FlushTemplate(nil)
	recs[1].Data = []byte("sec")
	out, err := tmpl.AppendTo(nil, func(i int) []byte { return recs[i].Data }, true)
	var changed *DataChangedError
	if !errors.As(err, &changed) || changed.Record != 1 || changed.Added != 6 || changed.Now != 3 {
		t.Fatalf("error %v, want record 1 changed from 6 to 3 bytes", err)
	}
	if len(out) != tmpl.Size {
		t.Fatalf("made %d bytes, template size %d", len(out), tmpl.Size)
	}
	got, err := Deaggregate(nil, out, tmpl.PartitionKey, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || string(got[0].Data) != "first" || string(got[1].Data) != "sec\x00\x00\x00" || string(got[2].Data) != "third" {
		t.Fatalf("deaggregated %q %q %q", got[0].Data, got[1].Data, got[2].Data)
	}
}

// TestTemplateSteadyStateAllocations checks that a producer cycling templates through
// FlushTemplate and AppendTo into a reused buffer allocates nothing.
func TestTemplateSteadyStateAllocations(t *testing.T) {
	recs := manyKeys(50, 4)
	agg := &Aggregator{DeferData: true}
	var spare, out []byte
	data := func(i int) []byte { return recs[i].Data }
	cycle := func() {
		for _, r := range recs {
			if err := agg.Add(r); err != nil {
				t.Fatal(err)
			}
		}
		tmpl, _ := agg.FlushTemplate(spare)
		out, _ = tmpl.AppendTo(out[:0], data, false)
		spare = tmpl.Buffer()
	}
	for range 5 {
		cycle()
	}
	if allocs := testing.AllocsPerRun(100, cycle); allocs != 0 {
		t.Fatalf("%.2f allocations per aggregate", allocs)
	}
}
