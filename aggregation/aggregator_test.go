package aggregation

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func aggregateAll(t *testing.T, agg *Aggregator, recs []UserRecord) KinesisRecord {
	t.Helper()
	for i, r := range recs {
		if err := agg.Add(r); err != nil {
			t.Fatalf("Add record %d: %v", i, err)
		}
	}
	rec, ok := agg.Flush()
	if !ok {
		t.Fatal("Flush returned nothing")
	}
	return rec
}

func TestRoundTrip(t *testing.T) {
	cases := map[string][]UserRecord{
		"one":   {{PartitionKey: "a", Data: []byte("x")}},
		"empty": {{PartitionKey: "a"}, {PartitionKey: "b", Data: []byte{}}},
		"shared keys": {
			{PartitionKey: "k1", Data: []byte("1")},
			{PartitionKey: "k2", Data: []byte("2")},
			{PartitionKey: "k1", Data: []byte("3")},
		},
		"explicit hash keys": {
			{PartitionKey: "k1", ExplicitHashKey: "0", Data: []byte("1")},
			{PartitionKey: "k1", ExplicitHashKey: MaxHashKey.String(), Data: []byte("2")},
			{PartitionKey: "k2", ExplicitHashKey: "0", Data: []byte("3")},
		},
		"mixed explicit hash keys": {
			{PartitionKey: "k1", Data: []byte("1")},
			{PartitionKey: "k1", ExplicitHashKey: "12345", Data: []byte("2")},
			{PartitionKey: "k2", Data: []byte("3")},
		},
		"non-ASCII and binary": {
			{PartitionKey: "clé-中文-🚀", Data: []byte{0, 0xff, 0xf3, 0x89, 0x9a, 0xc2}},
			{PartitionKey: strings.Repeat("🚀", MaxPartitionKeyLength/2), Data: []byte{0x80}},
		},
		"tags": {
			{PartitionKey: "a", Data: []byte("x"), Tags: []Tag{{Key: "k", Value: "v"}, {Key: "only-key"}}},
			{PartitionKey: "a", Data: []byte("y")},
		},
	}
	for name, recs := range cases {
		t.Run(name, func(t *testing.T) {
			agg := NewAggregator(MaxRecordSize)
			rec := aggregateAll(t, agg, recs)
			if !rec.Aggregated || rec.Records != len(recs) {
				t.Fatalf("got Aggregated=%v Records=%d", rec.Aggregated, rec.Records)
			}
			if rec.PartitionKey != recs[0].PartitionKey || rec.ExplicitHashKey != recs[0].ExplicitHashKey {
				t.Fatalf("put under %q/%q, want the first record's keys", rec.PartitionKey, rec.ExplicitHashKey)
			}
			got, err := Deaggregate(nil, rec.Data, rec.PartitionKey, rec.ExplicitHashKey)
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, got, expectAggregated(recs))
		})
	}
}

// TestSizeWithExact checks that SizeWith predicts the encoded size exactly,
// for random shapes and for every varint boundary the encoding can cross:
// key and data lengths around 127/128 and 16383/16384, key indexes past 127
// and the re-indexing of explicit hash keys.
func TestSizeWithExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	boundaryLens := []int{0, 1, 119, 120, 121, 122, 125, 126, 127, 128, 129, 16370, 16375, 16376, 16377, 16383, 16384, 16385}

	check := func(t *testing.T, agg *Aggregator, recs []UserRecord, validated bool) {
		t.Helper()
		for i, r := range recs {
			want := agg.SizeWithRecord(&r)
			if len(r.Tags) == 0 {
				if s := agg.SizeWith(r.PartitionKey, r.ExplicitHashKey, len(r.Data)); s != want {
					t.Fatalf("record %d: SizeWith %d, SizeWithRecord %d", i, s, want)
				}
			}
			if validated {
				if err := agg.Add(r); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
			} else {
				var p plan
				h := KeyHash(r.PartitionKey)
				agg.plan(&p, r.PartitionKey, h, r.ExplicitHashKey, len(r.Data), r.Tags)
				agg.add(&r, &p, h)
			}
			if got := agg.Size(); got != want {
				t.Fatalf("record %d (%s): Size %d after add, SizeWith predicted %d", i, describe(r), got, want)
			}
		}
		size := agg.Size()
		rec, _ := agg.Flush()
		if len(rec.Data) != size {
			t.Fatalf("flushed %d bytes, Size said %d", len(rec.Data), size)
		}
		got, err := Deaggregate(nil, rec.Data, "p", "")
		if err != nil {
			t.Fatal(err)
		}
		sameRecords(t, got, expectAggregated(recs))
	}

	t.Run("data lengths", func(t *testing.T) {
		var recs []UserRecord
		for _, n := range boundaryLens {
			recs = append(recs, UserRecord{PartitionKey: "pk", Data: randomData(rng, n)})
		}
		check(t, NewAggregator(MaxRecordSize), recs, true)
	})
	t.Run("key lengths", func(t *testing.T) {
		// Kinesis caps partition keys at 256 characters (1024 bytes), so
		// the 16 KiB boundary is reachable only without validation.
		var recs []UserRecord
		for _, n := range boundaryLens[1:] {
			recs = append(recs, UserRecord{PartitionKey: strings.Repeat("k", n-1) + "!", Data: []byte{1}})
			recs = append(recs, UserRecord{PartitionKey: "x", ExplicitHashKey: strings.Repeat("9", n), Data: []byte{2}})
		}
		check(t, NewAggregator(MaxRecordSize), recs, false)
	})
	t.Run("data above 2 MiB varint", func(t *testing.T) {
		check(t, NewAggregator(MaxRecordSize), []UserRecord{
			{PartitionKey: "a", Data: make([]byte, 1<<21-8)},
			{PartitionKey: "b", ExplicitHashKey: "5", Data: make([]byte, 1<<21+3)},
			{PartitionKey: "a", Data: []byte{}},
		}, false)
	})
	t.Run("indexes past 127", func(t *testing.T) {
		var recs []UserRecord
		for i := range 300 {
			recs = append(recs, UserRecord{PartitionKey: randomKey(rng, 4) + string(rune('a'+i%26)) + string(rune(0x4e00+i)),
				ExplicitHashKey: HashKey{Lo: uint64(i)}.String(), Data: randomData(rng, rng.IntN(130))})
		}
		check(t, NewAggregator(MaxRecordSize), recs, true)
	})
	t.Run("re-index crossing 127", func(t *testing.T) {
		// Explicit hash keys first, so the index 127 and body lengths of
		// 126 and 127 exist when the first record without one arrives.
		var recs []UserRecord
		for i := range 140 {
			recs = append(recs, UserRecord{PartitionKey: "p", ExplicitHashKey: HashKey{Lo: uint64(i)}.String(),
				Data: randomData(rng, 118+i%12)})
		}
		recs = append(recs, UserRecord{PartitionKey: "q", Data: []byte("no ehk")})
		recs = append(recs, UserRecord{PartitionKey: "p", ExplicitHashKey: "1", Data: []byte("again")})
		check(t, NewAggregator(MaxRecordSize), recs, true)
	})
	t.Run("random", func(t *testing.T) {
		// One Aggregator throughout, so that later rounds start from a
		// flushed state with a widened gap.
		agg := NewAggregator(MaxRecordSize)
		for range 300 {
			pks := make([]string, 1+rng.IntN(40))
			for i := range pks {
				pks[i] = randomKey(rng, 1+rng.IntN(MaxPartitionKeyLength))
			}
			ehks := make([]string, 1+rng.IntN(10))
			for i := range ehks {
				ehks[i] = randomHashKey(rng)
			}
			var recs []UserRecord
			for range 1 + rng.IntN(200) {
				r := UserRecord{PartitionKey: pks[rng.IntN(len(pks))]}
				if rng.IntN(3) == 0 {
					r.ExplicitHashKey = ehks[rng.IntN(len(ehks))]
				}
				if rng.IntN(10) == 0 {
					r.Data = randomData(rng, boundaryLens[rng.IntN(len(boundaryLens))])
				} else {
					r.Data = randomData(rng, rng.IntN(300))
				}
				if rng.IntN(50) == 0 {
					r.Tags = []Tag{{Key: randomKey(rng, 130), Value: randomKey(rng, 3)}}
				}
				recs = append(recs, r)
			}
			check(t, agg, recs, true)
		}
	})
}

func TestKeyTableReuse(t *testing.T) {
	var agg Aggregator
	var recs []UserRecord
	for i := range 100 {
		r := UserRecord{PartitionKey: []string{"alpha", "beta", "gamma"}[i%3], Data: []byte{byte(i)}}
		if i%2 == 0 {
			r.ExplicitHashKey = []string{"100", "200"}[i%4/2]
		}
		recs = append(recs, r)
	}
	rec := aggregateAll(t, &agg, recs)
	pks, ehks := tables(t, rec.Data)
	if strings.Join(pks, ",") != "alpha,beta,gamma" {
		t.Errorf("partition key table %q", pks)
	}
	// Mixed aggregate: an unreferenced empty entry first (see doc.go).
	if strings.Join(ehks, ",") != ",100,200" {
		t.Errorf("explicit hash key table %q", ehks)
	}
	got, err := Deaggregate(nil, rec.Data, rec.PartitionKey, "")
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, expectAggregated(recs))
}

func TestPlaceholderOnlyWhenMixed(t *testing.T) {
	all := []UserRecord{{PartitionKey: "a", ExplicitHashKey: "1"}, {PartitionKey: "b", ExplicitHashKey: "2"}}
	none := []UserRecord{{PartitionKey: "a"}, {PartitionKey: "b"}}
	for name, tc := range map[string]struct {
		recs []UserRecord
		ehks string
	}{
		"all":                  {all, "1,2"},
		"none":                 {none, ""},
		"ehk first":            {append(append([]UserRecord{}, all...), none...), ",1,2"},
		"ehk last":             {append(append([]UserRecord{}, none...), all...), ",1,2"},
		"alternating":          {[]UserRecord{all[0], none[0], all[1], none[1]}, ",1,2"},
		"single without ehk":   {none[:1], ""},
		"single with ehk":      {all[:1], "1"},
		"ehk then one without": {[]UserRecord{all[0], all[0], none[1]}, ",1"},
	} {
		t.Run(name, func(t *testing.T) {
			var agg Aggregator
			rec := aggregateAll(t, &agg, tc.recs)
			_, ehks := tables(t, rec.Data)
			if got := strings.Join(ehks, ","); got != tc.ehks {
				t.Fatalf("explicit hash key table %q, want %q", got, tc.ehks)
			}
			got, err := Deaggregate(nil, rec.Data, "x", "")
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, got, expectAggregated(tc.recs))
		})
	}
}

func TestUnwrapSingle(t *testing.T) {
	r := UserRecord{PartitionKey: "pk", ExplicitHashKey: "42", Data: []byte("payload")}

	agg := Aggregator{UnwrapSingle: true}
	if err := agg.Add(r); err != nil {
		t.Fatal(err)
	}
	rec, _ := agg.Flush()
	if rec.Aggregated || !bytes.Equal(rec.Data, r.Data) || rec.PartitionKey != "pk" || rec.ExplicitHashKey != "42" || rec.Records != 1 {
		t.Fatalf("unwrapped record %+v", rec)
	}
	got, err := Deaggregate(nil, rec.Data, rec.PartitionKey, rec.ExplicitHashKey)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, []UserRecord{r})

	// Without the option, and with tags, the record stays wrapped.
	for name, a := range map[string]*Aggregator{"option off": {}, "tags": {UnwrapSingle: true}} {
		r := r
		if name == "tags" {
			r.Tags = []Tag{{Key: "t"}}
		}
		if err := a.Add(r); err != nil {
			t.Fatal(err)
		}
		rec, _ := a.Flush()
		if !rec.Aggregated || !IsAggregated(rec.Data) {
			t.Fatalf("%s: record not wrapped", name)
		}
	}

	// Two records are always wrapped.
	agg = Aggregator{UnwrapSingle: true}
	rec = aggregateAll(t, &agg, []UserRecord{r, r})
	if !rec.Aggregated {
		t.Fatal("two records emitted unwrapped")
	}
}

func TestFlushEmpty(t *testing.T) {
	var agg Aggregator
	if rec, ok := agg.Flush(); ok || rec.Data != nil {
		t.Fatalf("Flush of an empty aggregator returned %+v, %v", rec, ok)
	}
	if agg.Size() != 0 || agg.Len() != 0 {
		t.Fatal("empty aggregator reports content")
	}
}

func TestFullAndLimits(t *testing.T) {
	agg := NewAggregator(1000)
	data := make([]byte, 100)
	added := 0
	for {
		fits := agg.Fits("key", "", len(data))
		err := agg.Add(UserRecord{PartitionKey: "key", Data: data})
		if errors.Is(err, ErrFull) {
			if fits {
				t.Fatal("Fits said yes, Add said full")
			}
			break
		}
		if err != nil || !fits {
			t.Fatalf("Add: %v, Fits %v", err, fits)
		}
		added++
	}
	if agg.Size() > 1000 || agg.Len() != added || added != 9 { // 20 framing + 5 key table + 9 × 106
		t.Fatalf("size %d with %d records", agg.Size(), added)
	}
	rec, _ := agg.Flush()
	if len(rec.Data) > 1000 {
		t.Fatalf("aggregate of %d bytes exceeds MaxSize", len(rec.Data))
	}

	// An empty aggregator takes a record beyond MaxSize, alone.
	big := UserRecord{PartitionKey: "key", Data: make([]byte, 5000)}
	if agg.Fits("key", "", 5000) {
		t.Fatal("Fits accepts a record beyond MaxSize")
	}
	if err := agg.Add(big); err != nil {
		t.Fatal(err)
	}
	if err := agg.Add(UserRecord{PartitionKey: "key"}); !errors.Is(err, ErrFull) {
		t.Fatalf("second record after an oversized one: %v", err)
	}

	// A record at the Kinesis limit cannot be wrapped, only sent alone.
	max := UserRecord{PartitionKey: "k", Data: make([]byte, MaxRecordSize-1)}
	var wrapped Aggregator
	var ve *ValidationError
	if err := wrapped.Add(max); !errors.As(err, &ve) || ve.Field != "Data" {
		t.Fatalf("wrapping a 1 MiB record: %v", err)
	}
	unwrapped := Aggregator{UnwrapSingle: true}
	if err := unwrapped.Add(max); err != nil {
		t.Fatal(err)
	}
	rec, _ = unwrapped.Flush()
	if rec.Aggregated || rec.Size() != MaxRecordSize {
		t.Fatalf("record of %d bytes, aggregated %v", rec.Size(), rec.Aggregated)
	}

	// The put key counts against the Kinesis limit too.
	huge := Aggregator{MaxSize: 2 * MaxRecordSize}
	pk := strings.Repeat("p", MaxPartitionKeyLength)
	if err := huge.Add(UserRecord{PartitionKey: pk, Data: make([]byte, MaxRecordSize-1000)}); err != nil {
		t.Fatal(err)
	}
	if huge.Fits("q", "", 600) {
		t.Fatal("Fits ignores the partition key the aggregate is put under")
	}
}

func TestAddValidation(t *testing.T) {
	cases := []struct {
		name  string
		rec   UserRecord
		field string
	}{
		{"empty partition key", UserRecord{}, "PartitionKey"},
		{"257 characters", UserRecord{PartitionKey: strings.Repeat("é", 257)}, "PartitionKey"},
		{"invalid UTF-8", UserRecord{PartitionKey: "a\xffb"}, "PartitionKey"},
		{"leading zero", UserRecord{PartitionKey: "a", ExplicitHashKey: "01"}, "ExplicitHashKey"},
		{"not a number", UserRecord{PartitionKey: "a", ExplicitHashKey: "12a"}, "ExplicitHashKey"},
		{"2^128", UserRecord{PartitionKey: "a", ExplicitHashKey: "340282366920938463463374607431768211456"}, "ExplicitHashKey"},
		{"over 1 MiB", UserRecord{PartitionKey: "ab", Data: make([]byte, MaxRecordSize-1)}, "Data"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var agg Aggregator
			err := agg.Add(tc.rec)
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) || ve.Field != tc.field {
				t.Fatalf("got %v, want a ValidationError on %s", err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), "limit") {
				t.Fatalf("message %q does not name the field and limit", err)
			}
			if agg.Len() != 0 {
				t.Fatal("rejected record was added")
			}
		})
	}
	var agg Aggregator
	if err := agg.Add(UserRecord{PartitionKey: strings.Repeat("𝄞", 128)}); err != nil {
		t.Fatalf("128 four-byte characters (256 UTF-16 code units): %v", err)
	}
}

// TestSteadyStateAllocations checks that recycling each emitted buffer
// through FlushInto keeps the encoder from allocating.
func TestSteadyStateAllocations(t *testing.T) {
	recs := benchRecords(100)
	var agg Aggregator
	var spare []byte
	next := 0
	cycle := func() {
		for {
			if err := agg.Add(recs[next]); err == ErrFull {
				break
			}
			next = (next + 1) % len(recs)
		}
		rec, _ := agg.FlushInto(spare)
		spare = rec.Buffer()
	}
	for range 5 {
		cycle()
	}
	if allocs := testing.AllocsPerRun(100, cycle); allocs != 0 {
		t.Fatalf("%.2f allocations per aggregate", allocs)
	}
}

// TestBufferKeepsItsCapacity recycles buffers through aggregates whose key
// tables differ in size from one to the next, so that Data starts at a
// different offset of the buffer each time. Handed back whole by Buffer, the
// buffers never shrink, and so never have to grow or be replaced.
func TestBufferKeepsItsCapacity(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	data := make([]byte, 100)
	keys := make([][]string, 41) // keys[n]: distinct keys of n characters
	for n := 4; n < len(keys); n++ {
		for i := range 1000 {
			keys[n] = append(keys[n], fmt.Sprintf("%0*d", n, i))
		}
	}
	var agg Aggregator
	var spare []byte
	cycle := func(keyLen int) {
		for i := 0; ; i++ {
			pk := keys[keyLen][i]
			if err := agg.Add(UserRecord{PartitionKey: pk, Data: data}); err == ErrFull {
				break
			} else if err != nil {
				t.Fatal(err)
			}
		}
		rec, _ := agg.FlushInto(spare)
		spare = rec.Buffer()
		if len(spare) != 0 || cap(spare) < len(rec.Data) {
			t.Fatalf("Buffer has length %d and capacity %d for %d bytes of Data", len(spare), cap(spare), len(rec.Data))
		}
	}
	// Once with every key length, so that the key index and the gap before
	// the records have grown to their largest.
	for n := 4; n < len(keys); n++ {
		cycle(n)
		cycle(n)
	}
	// Counted over all 300 aggregates at once: AllocsPerRun rounds down, and
	// per aggregate would hide a buffer replaced every few aggregates.
	n := testing.AllocsPerRun(1, func() {
		for range 300 {
			cycle(4 + rng.IntN(len(keys)-4))
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations in 300 aggregates", n)
	}
}

// TestFlushedDataIsOwned checks that emitted data survives later use of the
// Aggregator.
func TestFlushedDataIsOwned(t *testing.T) {
	var agg Aggregator
	var emitted []KinesisRecord
	var want [][]byte
	for i := range 20 {
		for j := range 10 {
			if err := agg.Add(UserRecord{PartitionKey: "k", Data: []byte{byte(i), byte(j)}}); err != nil {
				t.Fatal(err)
			}
		}
		rec, _ := agg.Flush()
		emitted = append(emitted, rec)
		want = append(want, bytes.Clone(rec.Data))
	}
	for i := range emitted {
		if !bytes.Equal(emitted[i].Data, want[i]) {
			t.Fatalf("aggregate %d changed after later flushes", i)
		}
	}
}

func TestReset(t *testing.T) {
	var agg Aggregator
	if err := agg.Add(UserRecord{PartitionKey: "a", ExplicitHashKey: "1", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	agg.Reset()
	recs := []UserRecord{{PartitionKey: "b", Data: []byte("y")}}
	rec := aggregateAll(t, &agg, recs)
	pks, ehks := tables(t, rec.Data)
	if len(pks) != 1 || pks[0] != "b" || len(ehks) != 0 {
		t.Fatalf("tables after Reset: %q %q", pks, ehks)
	}
}

// addHashedAll aggregates recs with AddHashed, taking each record's hash from hash, and
// checks that the aggregate decodes to recs.
func addHashedAll(t *testing.T, agg *Aggregator, recs []UserRecord, hash func(i int, pk string) uint64) KinesisRecord {
	t.Helper()
	for i, r := range recs {
		if err := agg.AddHashed(r, hash(i, r.PartitionKey)); err != nil {
			t.Fatalf("AddHashed record %d: %v", i, err)
		}
	}
	rec, ok := agg.Flush()
	if !ok {
		t.Fatal("Flush returned nothing")
	}
	got, err := Deaggregate(nil, rec.Data, rec.PartitionKey, rec.ExplicitHashKey)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, expectAggregated(recs))
	return rec
}

func manyKeys(n, repeat int) []UserRecord {
	var recs []UserRecord
	for r := range repeat {
		for i := range n {
			recs = append(recs, UserRecord{PartitionKey: fmt.Sprintf("key-%d", i), Data: []byte{byte(i), byte(r)}})
		}
	}
	return recs
}

// The key index tells keys apart by comparing them, not by their hashes: keys that share
// a hash still get a table entry each, and each record the right one.
func TestAddHashedCollidingHashes(t *testing.T) {
	recs := manyKeys(300, 3)
	var agg Aggregator
	rec := addHashedAll(t, &agg, recs, func(int, string) uint64 { return 42 })
	if pks, _ := tables(t, rec.Data); len(pks) != 300 {
		t.Fatalf("partition key table has %d entries, want 300", len(pks))
	}
}

// A hash that is not a function of the key costs table entries, never records.
func TestAddHashedInconsistentHash(t *testing.T) {
	recs := manyKeys(50, 4)
	var agg Aggregator
	rec := addHashedAll(t, &agg, recs, func(i int, _ string) uint64 { return uint64(i) * 0x9e3779b97f4a7c15 })
	if pks, _ := tables(t, rec.Data); len(pks) < 50 || len(pks) > len(recs) {
		t.Fatalf("partition key table has %d entries", len(pks))
	}
}

// The index grows past its first size, shrinks again after a far larger aggregate, and
// answers correctly through both; Add and AddHashed with the producer's MD5 bits build
// the same bytes.
func TestAddHashedGrowAndShrink(t *testing.T) {
	md5Lo := func(_ int, pk string) uint64 { return PartitionKeyHash(pk).Lo }
	hashed, plain := NewAggregator(MaxRecordSize), NewAggregator(MaxRecordSize)
	for _, n := range []int{5000, 3, 40, 5000, 1} {
		recs := manyKeys(n, 2)
		got := addHashedAll(t, hashed, recs, md5Lo)
		want := aggregateAll(t, plain, recs)
		if !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("%d keys: AddHashed and Add built different aggregates", n)
		}
		if pks, _ := tables(t, got.Data); len(pks) != n {
			t.Fatalf("%d keys: partition key table has %d entries", n, len(pks))
		}
	}
}
