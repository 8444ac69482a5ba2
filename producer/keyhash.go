package producer

import (
	"encoding/binary"
	"hash/maphash"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/shardline/shardline/aggregation"
)

// Routing a record takes the MD5 of its partition key, which for small records costs about
// as much as everything else the producer does for them. Partition keys tend to repeat
// (a user, a device, a tenant), so the producers of a process share a cache of recent
// keys' hash keys. It holds 8,192 keys of up to 32 bytes in 512 KiB; longer keys, and keys
// it does not hold, are hashed as before, for the price of a failed look-up.
//
// The cache answers only for the key it was given, or a hash key is computed: a wrong hash
// key would route a record to a shard whose consumers drop it. Each entry is guarded by a
// sequence number, odd while the entry is written, which a reader checks before and after
// reading the entry; every field is read and written atomically, so readers never lock.

const (
	keyHashSets    = 2048 // a power of two
	keyHashWays    = 4
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
	set := &c.sets[maphash.String(c.seed, pk)&(keyHashSets-1)]
	for i := range set {
		e := &set[i]
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
	// A random way: under a cycle of more keys than a set holds, evicting the oldest would
	// evict every key before its turn came again.
	e := &set[rand.Uint32()%keyHashWays]
	if s := e.seq.Load(); s&1 == 0 && e.seq.CompareAndSwap(s, s+1) {
		e.n.Store(n)
		for j := range words {
			e.key[j].Store(words[j])
		}
		e.hi.Store(k.Hi)
		e.lo.Store(k.Lo)
		e.seq.Store(s + 2)
	}
	return k
}
