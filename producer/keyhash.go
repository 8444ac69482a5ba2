package producer

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/shardline/shardline/aggregation"
)

// Routing a record takes the MD5 of its partition key, which for small records costs about
// as much as everything else the producer does for them. Partition keys tend to repeat
// (a user, a device, a tenant), so the producers of a process share a cache of recent
// keys' hash keys. It holds 8,192 keys of up to 32 bytes in 520 KiB; longer keys, and keys
// it does not hold, are hashed as before, for the price of a failed look-up.
//
// The cache answers only for the key it was given, or a hash key is computed: a wrong hash
// key would route a record to a shard whose consumers drop it. Each entry is guarded by a
// sequence number, odd while the entry is written, which a reader checks before and after
// reading the entry; every field is read and written atomically, so readers never lock.
//
// A set holds eight entries and a word of eight one-byte tags, taken from the key's maphash,
// kept apart from the entries: the tags of every set fit in 8 KiB, which stays in the CPU's
// cache, so a look-up reads one entry (a cache line) where scanning the ways would read up
// to eight. A tag is only a hint: the entry it points at is checked like any other.

const (
	keyHashSets    = 1024 // a power of two
	keyHashWays    = 8    // one tag byte each in a uint64
	keyHashMaxKey  = 32
	keyHashKeyWord = keyHashMaxKey / 8
)

type keyHashEntry struct {
	seq    atomic.Uint64 // odd while being written
	n      atomic.Uint64 // key length plus one; zero when empty
	key    [keyHashKeyWord]atomic.Uint64
	hi, lo atomic.Uint64
}

type keyHashCache struct {
	seed maphash.Seed
	tags [keyHashSets]atomic.Uint64 // byte i: tag of sets[s][i]; 0 while empty
	sets [keyHashSets][keyHashWays]keyHashEntry
}

var (
	keyHashesOnce sync.Once
	keyHashes     *keyHashCache
)

// sharedKeyHashes returns the process's cache, making it on first use.
func sharedKeyHashes() *keyHashCache {
	keyHashesOnce.Do(func() { keyHashes = &keyHashCache{seed: maphash.MakeSeed()} })
	return keyHashes
}

const (
	lowBits  = 0x0101010101010101
	highBits = 0x8080808080808080
)

// hash returns the hash key of a valid partition key.
func (c *keyHashCache) hash(pk string) aggregation.HashKey {
	if len(pk) > keyHashMaxKey {
		return aggregation.PartitionKeyHash(pk)
	}
	var buf [keyHashMaxKey]byte
	copy(buf[:], pk)
	var words [keyHashKeyWord]uint64
	for i := range words {
		words[i] = binary.LittleEndian.Uint64(buf[8*i:])
	}
	n := uint64(len(pk)) + 1
	h := maphash.String(c.seed, pk)
	si := h & (keyHashSets - 1)
	tag := max(h>>56, 1)
	set := &c.sets[si]
	tags := c.tags[si].Load()
	// The bytes of tags equal to tag, found with the usual test for a zero byte; it may
	// also flag a byte just above a match, which the check of the entry rejects.
	x := tags ^ (tag * lowBits)
	for m := (x - lowBits) &^ x & highBits; m != 0; m &= m - 1 {
		e := &set[bits.TrailingZeros64(m)/8]
		s := e.seq.Load()
		if s&1 != 0 || e.n.Load() != n {
			continue
		}
		same := true
		for j := range words {
			if e.key[j].Load() != words[j] {
				same = false
				break
			}
		}
		if !same {
			continue
		}
		k := aggregation.HashKey{Hi: e.hi.Load(), Lo: e.lo.Load()}
		if e.seq.Load() == s {
			return k
		}
	}
	k := aggregation.PartitionKeyHash(pk)
	c.store(si, tag, tags, n, &words, k)
	return k
}

// store writes a key's entry into an empty way of its set or, when there is none, a random
// one: under a cycle of more keys than a set holds, evicting the oldest would evict every
// key before its turn came again. A writer that finds the entry being written by another
// gives up; the cache is only a cache.
func (c *keyHashCache) store(si, tag, tags, n uint64, words *[keyHashKeyWord]uint64, k aggregation.HashKey) {
	way := rand.Uint32() % keyHashWays
	if empty := (tags - lowBits) &^ tags & highBits; empty != 0 {
		way = uint32(bits.TrailingZeros64(empty) / 8)
	}
	e := &c.sets[si][way]
	s := e.seq.Load()
	if s&1 != 0 || !e.seq.CompareAndSwap(s, s+1) {
		return
	}
	e.n.Store(n)
	for j := range words {
		e.key[j].Store(words[j])
	}
	e.hi.Store(k.Hi)
	e.lo.Store(k.Lo)
	e.seq.Store(s + 2)
	shift := 8 * way
	for {
		old := c.tags[si].Load()
		if c.tags[si].CompareAndSwap(old, old&^(0xff<<shift)|tag<<shift) {
			return
		}
	}
}
