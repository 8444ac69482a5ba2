package kinesistest

import (
	"math/big"
	"testing"
	"time"
)

// Memory follows the retained records: trimming clears the dropped slots, so their data can
// be collected, and copies the survivors once most of the array is dead.
func TestTrimReleasesDroppedRecords(t *testing.T) {
	sh := &shard{}
	for i := range 1000 {
		sh.recs = append(sh.recs, record{data: make([]byte, 10), key: "k", arrival: int64(i)})
	}
	full := sh.recs[:cap(sh.recs)]
	sh.trim(990)
	if len(sh.recs) != 10 || sh.base != 990 || sh.next() != 1000 {
		t.Fatalf("after trim: %d records from %d, next %d; want 10 from 990, next 1000", len(sh.recs), sh.base, sh.next())
	}
	if full[0].data != nil || full[989].data != nil {
		t.Fatal("dropped records still reference their data")
	}
	if cap(sh.recs) > 4*len(sh.recs) {
		t.Fatalf("%d retained records keep an array of %d", len(sh.recs), cap(sh.recs))
	}
}

func TestSequenceNumbersRoundTripAndOrder(t *testing.T) {
	a := string(appendSeq(nil, 1767323045000000001, 3, 41))
	b := string(appendSeq(nil, 1767323045000000001, 3, 42))
	if len(a) != seqLen {
		t.Fatalf("%q has %d digits, want %d", a, len(a), seqLen)
	}
	x, _ := new(big.Int).SetString(a, 10)
	y, _ := new(big.Int).SetString(b, 10)
	if x.Cmp(y) >= 0 {
		t.Fatalf("%s is not below %s", a, b)
	}
	id, num, idx, ok := parseSeq(b)
	if !ok || id != 1767323045000000001 || num != 3 || idx != 42 {
		t.Fatalf("parseSeq(%s) = %d %d %d %v", b, id, num, idx, ok)
	}
}

func TestSplitEvenlyCoversTheHashSpace(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 64} {
		rs := splitEvenly(n)
		if rs[0][0] != (hashKey{}) || rs[n-1][1] != maxHashKey {
			t.Fatalf("n=%d: ranges run from %s to %s", n, rs[0][0], rs[n-1][1])
		}
		for i := 1; i < n; i++ {
			if rs[i-1][1].add1() != rs[i][0] {
				t.Fatalf("n=%d: gap between range %d and %d", n, i-1, i)
			}
		}
	}
}

func TestTokenBucketDebt(t *testing.T) {
	now := time.Unix(0, 0)
	b := newBucket(2, 2, now)
	b.charge(4)
	if b.positive(now.Add(time.Second)) {
		t.Fatal("a bucket 2 in debt at 2/s is positive after one second")
	}
	if !b.positive(now.Add(1100 * time.Millisecond)) {
		t.Fatal("the bucket is still in debt after 1.1 seconds")
	}
}
