package consumer

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shardline/shardline/aggregation"
)

// TestKeyRangesMatchEffectiveHashKey checks keyRanges against the plain computation on
// batches of every kind of key: a few keys used over and over, more distinct keys than the
// cache holds, fresh random keys each batch (which rest the cache), runs of records sharing
// one key string as in an aggregate, explicit hash keys inside, outside and malformed, and
// records that are not aggregated (left alone).
func TestKeyRangesMatchEffectiveHashKey(t *testing.T) {
	rng := aggregation.ShardRange{Start: aggregation.HashKey{Hi: 1 << 62}, End: aggregation.HashKey{Hi: 1<<63 - 1, Lo: ^uint64(0)}}
	r := rand.New(rand.NewPCG(3, 4))
	var k keyRanges
	var inside []bool
	pools := []int{7, 300, 3 * keyCacheSize, 0} // 0: fresh keys
	for batch := range 240 {
		pool := pools[batch/60]
		var users []aggregation.UserRecord
		for len(users) < 2000 {
			var key string
			if pool == 0 {
				key = fmt.Sprintf("%016x-%d", r.Uint64(), batch)
			} else {
				key = "key-" + fmt.Sprint(r.IntN(pool))
			}
			u := aggregation.UserRecord{PartitionKey: strings.Clone(key), Aggregated: r.IntN(10) > 0}
			switch r.IntN(20) {
			case 0:
				u.ExplicitHashKey = aggregation.HashKey{Hi: r.Uint64(), Lo: r.Uint64()}.String()
			case 1:
				u.ExplicitHashKey = "not a number"
			}
			for range 1 + r.IntN(3) {
				users = append(users, u) // one string shared, as in an aggregate
			}
		}
		inside = k.check(rng, users, inside)
		for i, u := range users {
			if !u.Aggregated {
				continue
			}
			h, err := aggregation.EffectiveHashKey(u.PartitionKey, u.ExplicitHashKey)
			if want := err != nil || rng.Contains(h); inside[i] != want {
				t.Fatalf("batch %d, record %d (%q, %q): inside %v, want %v", batch, i, u.PartitionKey, u.ExplicitHashKey, inside[i], want)
			}
		}
	}
}

// TestKeyRangesRememberKeys checks that keys seen in one batch are not hashed again in the
// next (not only the last one); and that a cache of mostly new keys rests and starts again.
func TestKeyRangesRememberKeys(t *testing.T) {
	rng := aggregation.ShardRange{End: aggregation.HashKey{Hi: 1 << 62}}
	var users []aggregation.UserRecord
	for i := range 500 {
		users = append(users, aggregation.UserRecord{PartitionKey: fmt.Sprintf("device-%d", i%100), Aggregated: true})
	}
	var k keyRanges
	k.check(rng, users, nil)
	first := k.hashed
	k.check(rng, users, nil)
	if k.hashed != first {
		t.Fatalf("second batch of the same 100 keys hashed %d of them again", k.hashed-first)
	}
	fresh := func(b int) []aggregation.UserRecord {
		var us []aggregation.UserRecord
		for i := range 500 {
			us = append(us, aggregation.UserRecord{PartitionKey: fmt.Sprintf("uuid-%d-%d", b, i), Aggregated: true})
		}
		return us
	}
	k.check(rng, fresh(0), nil)
	if k.rest != keyCacheRest || k.known.n != 0 || k.known.slots != nil {
		t.Fatalf("after a batch of new keys: rest %d, %d keys cached; want a resting, empty cache", k.rest, k.known.n)
	}
	for b := range keyCacheRest {
		k.check(rng, fresh(b+1), nil)
	}
	k.check(rng, users, nil)
	if k.known.n != 100 {
		t.Fatalf("after the rest: %d keys cached, want 100", k.known.n)
	}
}

// TestKeyTable checks the cache against a map: answers survive the table's growth, a full
// table starts over, and keys that differ only in length or in a byte are told apart.
func TestKeyTable(t *testing.T) {
	var tb keyTable
	want := map[string]bool{}
	for i := range keyCacheSize {
		k := fmt.Sprintf("key-%d", i)
		if i%3 == 0 {
			k += strings.Repeat("x", i%50) // differ in length too
		}
		tb.put(k, i%2 == 0)
		want[k] = i%2 == 0
	}
	if tb.n != keyCacheSize || len(tb.slots) != maxKeySlots {
		t.Fatalf("%d keys in %d slots, want %d in %d", tb.n, len(tb.slots), keyCacheSize, maxKeySlots)
	}
	for k, in := range want {
		if got, ok := tb.get(k); !ok || got != in {
			t.Fatalf("%q: %v %v, want %v", k, got, ok, in)
		}
		if _, ok := tb.get(k + "?"); ok {
			t.Fatalf("%q found", k+"?")
		}
	}
	tb.put("one more", true)
	if tb.n != 1 {
		t.Fatalf("a full table took a key: %d keys", tb.n)
	}
	if got, ok := tb.get("one more"); !ok || !got {
		t.Fatal("the key that started the table over is not there")
	}
	if _, ok := tb.get("key-1"); ok {
		t.Fatal("a key of the full table is still there")
	}
}
