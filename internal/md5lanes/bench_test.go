package md5lanes

import (
	"crypto/md5"
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkSum hashes n aggregate-sized messages (about 50 KB, the producer's default
// aggregate size) with Sum, against crypto/md5 one message at a time.
func BenchmarkSum(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{2, 4, 16, 100} {
		msgs := make([][]byte, n)
		total := 0
		for i := range msgs {
			msgs[i] = make([]byte, 50_000+r.IntN(1000))
			total += len(msgs[i])
		}
		sums := make([][Size]byte, n)
		b.Run(fmt.Sprintf("lanes/%d", n), func(b *testing.B) {
			var h Hasher
			b.SetBytes(int64(total))
			for b.Loop() {
				h.Sum(sums, msgs)
			}
		})
		b.Run(fmt.Sprintf("crypto-md5/%d", n), func(b *testing.B) {
			b.SetBytes(int64(total))
			for b.Loop() {
				for i, m := range msgs {
					sums[i] = md5.Sum(m)
				}
			}
		})
	}
}
