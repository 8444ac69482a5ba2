package consumer

import (
	"encoding/binary"
	"hash/maphash"
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
	known keyTable
	rest  int // batches left before the cache is tried again
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
	keyCacheSize = 8192
	keyCacheRest = 64
	keyArenaSize = 256 << 10 // the keys' bytes: 32 bytes a key on average before a reset
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
	hits, lookups, warm := 0, 0, k.known.n >= 64
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
			if in, ok := k.known.get(u.PartitionKey); ok {
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
				k.known.put(users[p.user].PartitionKey, in)
			}
		}
		clear(k.msgs) // keep no answer alive
	}
	if useCache && warm && lookups >= 64 && hits*4 < lookups {
		k.known.reset()
		k.rest = keyCacheRest
	}
	return inside
}

// keyTable maps partition keys to whether they hash into the range: an open-addressing
// table of keyCacheSize keys at most, at most half full, whose keys are copied into an arena
// of its own (they must not keep answers alive). A lookup costs less than a Go map of
// strings' (one hash, one probe, one comparison), which matters at one lookup per record.
// When full it starts over.
type keyTable struct {
	slots []keySlot
	arena []byte
	n     int
	seed  maphash.Seed
}

// keySlot is one key: where its bytes are in the arena, the high bits of its hash (0 for
// an empty slot) and the answer.
type keySlot struct {
	tag    uint32
	off    uint32
	n      uint16
	inside bool
}

// maxKeySlots is the most slots a table has, a power of two: twice keyCacheSize, so that
// a full table is half full. A table starts smaller and doubles as it fills.
const (
	maxKeySlots   = 2 * keyCacheSize
	firstKeySlots = 512
)

func (t *keyTable) find(key string) (*keySlot, uint32) {
	h := maphash.String(t.seed, key)
	tag := uint32(h>>32) | 1
	mask := uint32(len(t.slots) - 1)
	for i := uint32(h) & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.tag == 0 {
			return s, tag
		}
		if s.tag == tag && int(s.n) == len(key) && string(t.arena[s.off:s.off+uint32(s.n)]) == key {
			return s, tag
		}
	}
}

// get returns the answer cached for key.
func (t *keyTable) get(key string) (inside, ok bool) {
	if t.n == 0 {
		return false, false
	}
	s, _ := t.find(key)
	return s.inside, s.tag != 0
}

// put caches the answer for key.
func (t *keyTable) put(key string, inside bool) {
	if len(key) == 0 || len(key) > 4*aggregation.MaxPartitionKeyLength {
		return
	}
	switch {
	case t.slots == nil:
		t.slots = make([]keySlot, firstKeySlots)
		t.seed = maphash.MakeSeed()
	case t.n >= keyCacheSize || len(t.arena)+len(key) > keyArenaSize:
		// Start over: the keys of the last few batches come back first.
		clear(t.slots)
		t.arena, t.n = t.arena[:0], 0
	case 2*(t.n+1) > len(t.slots):
		t.grow()
	}
	s, tag := t.find(key)
	if s.tag != 0 {
		s.inside = inside
		return
	}
	*s = keySlot{tag: tag, off: uint32(len(t.arena)), n: uint16(len(key)), inside: inside}
	t.arena = append(t.arena, key...)
	t.n++
}

// grow doubles the slots.
func (t *keyTable) grow() {
	old := t.slots
	t.slots = make([]keySlot, 2*len(old))
	for _, o := range old {
		if o.tag != 0 {
			s, _ := t.find(string(t.arena[o.off : o.off+uint32(o.n)]))
			*s = o
		}
	}
}

// reset empties the table and lets its memory go.
func (t *keyTable) reset() {
	t.slots, t.arena, t.n = nil, nil, 0
}

// sameString reports whether a and b are the same string in memory, not only in content.
func sameString(a, b string) bool {
	return len(a) == len(b) && len(a) > 0 && unsafe.StringData(a) == unsafe.StringData(b)
}
