package consumer

import (
	"encoding/binary"
	"unsafe"

	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/internal/md5lanes"
)

// keyRanges answers, for the user records of a batch, whether their hash keys lie in the
// shard's range. A partition key's hash is its MD5, which costs more than the rest of a
// small record's decoding: the keys not known yet are hashed sixteen at a time
// (internal/md5lanes), and the answers for up to keyCacheSize keys are remembered from batch
// to batch, since applications often reuse a bounded set of keys (devices, tenants, users).
// When the keys of a batch are mostly new to a cache that already knows some (random keys,
// as UUIDs), remembering them costs more than it saves, and the cache rests for keyCacheRest
// batches.
type keyRanges struct {
	known map[string]bool // partition key -> inside the range
	arena []byte          // the bytes of known's keys, copied: they must not keep answers alive
	rest  int             // batches left before the cache is tried again
	// hashed counts the keys hashed, for tests.
	hashed int

	// Scratch space of check.
	pending []pendingKey
	msgs    [][]byte // the distinct keys to hash
	sums    [][md5lanes.Size]byte
	h       md5lanes.Hasher
}

// pendingKey is a user record whose answer waits for the hash of msgs[slot].
type pendingKey struct{ user, slot int }

const (
	keyCacheSize  = 8192
	keyCacheRest  = 64
	keyArenaChunk = 32 << 10
)

// check sets inside[i], for each aggregated user record users[i], to whether its hash key
// lies in rng, and returns inside, reused when it is long enough. A malformed explicit hash
// key counts as inside: the record cannot be placed, so it is not dropped.
func (k *keyRanges) check(rng aggregation.ShardRange, users []aggregation.UserRecord, inside []bool) []bool {
	if cap(inside) < len(users) {
		inside = make([]bool, len(users), len(users)+len(users)/4)
	}
	inside = inside[:len(users)]
	useCache := k.rest == 0
	if k.rest > 0 {
		k.rest--
	}
	hits, lookups, warm := 0, 0, len(k.known) >= 64
	k.pending, k.msgs = k.pending[:0], k.msgs[:0]
	prev, prevSlot := -1, -1 // the last user record checked by its partition key
	for i := range users {
		u := &users[i]
		if !u.Aggregated {
			continue
		}
		if u.ExplicitHashKey != "" {
			h, err := aggregation.EffectiveHashKey(u.PartitionKey, u.ExplicitHashKey)
			inside[i] = err != nil || rng.Contains(h)
			continue
		}
		// The records of an aggregate that share a key share its string.
		if prev >= 0 && sameString(users[prev].PartitionKey, u.PartitionKey) {
			if prevSlot >= 0 {
				k.pending = append(k.pending, pendingKey{i, prevSlot})
			} else {
				inside[i] = inside[prev]
			}
			prev = i
			continue
		}
		prev, prevSlot = i, -1
		if useCache {
			lookups++
			if in, ok := k.known[u.PartitionKey]; ok {
				hits++
				inside[i] = in
				continue
			}
		}
		prevSlot = len(k.msgs)
		k.pending = append(k.pending, pendingKey{i, prevSlot})
		k.msgs = append(k.msgs, unsafe.Slice(unsafe.StringData(u.PartitionKey), len(u.PartitionKey)))
	}
	if len(k.msgs) > 0 {
		if cap(k.sums) < len(k.msgs) {
			k.sums = make([][md5lanes.Size]byte, len(k.msgs), len(k.msgs)+len(k.msgs)/4)
		}
		sums := k.sums[:len(k.msgs)]
		k.h.Sum(sums, k.msgs)
		k.hashed += len(k.msgs)
		for _, p := range k.pending {
			s := &sums[p.slot]
			in := rng.Contains(aggregation.HashKey{Hi: binary.BigEndian.Uint64(s[:8]), Lo: binary.BigEndian.Uint64(s[8:])})
			inside[p.user] = in
			if useCache {
				k.remember(users[p.user].PartitionKey, in)
			}
		}
		clear(k.msgs) // keep no answer alive
	}
	if useCache && warm && lookups >= 64 && hits*4 < lookups {
		k.known, k.arena, k.rest = nil, nil, keyCacheRest
	}
	return inside
}

// remember caches the answer for key, in a copy of its own.
func (k *keyRanges) remember(key string, in bool) {
	if len(key) == 0 || len(key) > keyArenaChunk/8 {
		return
	}
	if len(k.known) >= keyCacheSize || k.known == nil {
		if k.known == nil {
			k.known = make(map[string]bool)
		}
		clear(k.known)
		k.arena = nil
	}
	if cap(k.arena)-len(k.arena) < len(key) {
		k.arena = make([]byte, 0, keyArenaChunk)
	}
	start := len(k.arena)
	k.arena = append(k.arena, key...)
	// The bytes from start on are never written again: a later key goes after them.
	k.known[unsafe.String(&k.arena[start], len(key))] = in
}

// sameString reports whether a and b are the same string in memory, not only in content.
func sameString(a, b string) bool {
	return len(a) == len(b) && len(a) > 0 && unsafe.StringData(a) == unsafe.StringData(b)
}
