package md5lanes

import (
	"crypto/md5"
	"fmt"
	"math/rand/v2"
	"testing"
)

func check(t *testing.T, h *Hasher, msgs [][]byte) {
	t.Helper()
	sums := make([][Size]byte, len(msgs))
	h.Sum(sums, msgs)
	for i, m := range msgs {
		if want := md5.Sum(m); sums[i] != want {
			t.Fatalf("message %d of %d (%d bytes): got %x, want %x", i, len(msgs), len(m), sums[i], want)
		}
	}
}

func randomMessages(r *rand.Rand, n, maxLen int) [][]byte {
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = make([]byte, r.IntN(maxLen+1))
		for j := range msgs[i] {
			msgs[i][j] = byte(r.Uint32())
		}
	}
	return msgs
}

// Every length around the padding boundaries (55, 56, 63, 64 bytes and their multiples),
// in every lane, next to messages of other lengths.
func TestSumEveryShortLength(t *testing.T) {
	var h Hasher
	for n := 0; n <= 300; n++ {
		msgs := make([][]byte, 0, 17)
		for i := range 17 {
			m := make([]byte, (n+i*37)%301)
			for j := range m {
				m[j] = byte(j*31 + i)
			}
			msgs = append(msgs, m)
		}
		check(t, &h, msgs)
	}
}

// Counts below, at and above the sixteen lanes, so that lanes are idle, full, and refilled
// as messages end at different times; long messages mixed with empty ones.
func TestSumManyMessages(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Hasher
	for _, n := range []int{0, 1, 2, 3, 15, 16, 17, 31, 33, 100} {
		for _, maxLen := range []int{0, 63, 200, 5000, 70_000} {
			t.Run(fmt.Sprintf("%d/%d", n, maxLen), func(t *testing.T) {
				check(t, &h, randomMessages(r, n, maxLen))
			})
		}
	}
}

// One long message among short ones keeps a lane busy while the others turn over.
func TestSumOneLongAmongShort(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	msgs := randomMessages(r, 40, 100)
	msgs[5] = randomMessages(r, 1, 1<<20)[0]
	var h Hasher
	check(t, &h, msgs)
}

func TestSumReusesHasher(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var h Hasher
	for range 50 {
		check(t, &h, randomMessages(r, 1+r.IntN(40), 3000))
	}
}

func TestSumAllocatesNothing(t *testing.T) {
	msgs := randomMessages(rand.New(rand.NewPCG(7, 8)), 20, 2000)
	sums := make([][Size]byte, len(msgs))
	h := new(Hasher)
	if n := testing.AllocsPerRun(20, func() { h.Sum(sums, msgs) }); n != 0 {
		t.Fatalf("Sum allocated %v times per call", n)
	}
}

func TestSumPanicsOnShortSums(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Sum with fewer sums than messages did not panic")
		}
	}()
	var h Hasher
	h.Sum(make([][Size]byte, 1), make([][]byte, 2))
}
