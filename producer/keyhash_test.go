package producer

import (
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/shardline/shardline/aggregation"
)

// TestKeyHashCache checks that the cache answers every key with its own hash key, whatever
// the key's length or bytes and however many keys compete for its entries.
func TestKeyHashCache(t *testing.T) {
	c := &keyHashCache{seed: maphash.MakeSeed()}
	keys := []string{"a", "ab", "ab\x00", "\x00", "k", strings.Repeat("x", 31), strings.Repeat("x", 32),
		strings.Repeat("x", 33), strings.Repeat("é", 16), "日本語", "😀"}
	for i := range 20_000 {
		keys = append(keys, "user-"+strconv.Itoa(i))
	}
	for round := range 3 {
		for _, k := range keys {
			if got, want := c.hash(k), aggregation.PartitionKeyHash(k); got != want {
				t.Fatalf("round %d: key %q: hash %v, want %v", round, k, got, want)
			}
		}
	}
}

// TestKeyHashCacheConcurrent has goroutines look up and replace the same entries at once
// (run it with -race): no look-up may return another key's hash key.
func TestKeyHashCacheConcurrent(t *testing.T) {
	c := &keyHashCache{seed: maphash.MakeSeed()}
	// Three times as many keys as one set holds, all in that set, so that writers keep
	// replacing the entries readers are reading.
	var keys []string
	var want []aggregation.HashKey
	for i := 0; len(keys) < 3*keyHashWays; i++ {
		k := fmt.Sprintf("key-%d-%s", i, strings.Repeat("z", i%25))
		if maphash.String(c.seed, k)&(keyHashSets-1) == 0 {
			keys = append(keys, k)
			want = append(want, aggregation.PartitionKeyHash(k))
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 20_000 {
				i := (n*7 + g*13) % len(keys)
				if got := c.hash(keys[i]); got != want[i] {
					t.Errorf("key %q: hash %v, want %v", keys[i], got, want[i])
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestKeyHashCacheSharedTag looks up keys that share a set and a tag, so that the tag
// points a look-up at the other key's entry: the entry's check, not the tag, decides.
func TestKeyHashCacheSharedTag(t *testing.T) {
	c := &keyHashCache{seed: maphash.MakeSeed()}
	byTag := map[uint64]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		k := "tag-" + strconv.Itoa(i)
		h := maphash.String(c.seed, k)
		if h&(keyHashSets-1) != 0 {
			continue
		}
		tag := max(h>>56, 1)
		if other, ok := byTag[tag]; ok {
			a, b = other, k
		}
		byTag[tag] = k
	}
	for round := range 4 {
		for _, k := range []string{a, b, b, a} {
			if got, want := c.hash(k), aggregation.PartitionKeyHash(k); got != want {
				t.Fatalf("round %d: key %q: hash %v, want %v", round, k, got, want)
			}
		}
	}
}
