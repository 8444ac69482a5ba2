package producer

import (
	"hash/maphash"
	"strconv"
	"testing"

	"github.com/shardline/shardline/aggregation"
)

var keyHashSink aggregation.HashKey

// BenchmarkKeyHash compares the cache with computing every key's hash, over the key pattern
// of the loopback benchmarks: 4,096 keys in turn.
func BenchmarkKeyHash(b *testing.B) {
	ks := make([]string, 4096)
	for i := range ks {
		ks[i] = "user-" + strconv.Itoa(i*7919)
	}
	b.Run("cache", func(b *testing.B) {
		c := &keyHashCache{seed: maphash.MakeSeed()}
		for i := 0; i < b.N; i++ {
			keyHashSink = c.hash(ks[i%len(ks)])
		}
	})
	b.Run("md5", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			keyHashSink = aggregation.PartitionKeyHash(ks[i%len(ks)])
		}
	})
}
