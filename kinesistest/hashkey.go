package kinesistest

import (
	"crypto/md5"
	"encoding/binary"
	"math/big"
	"strconv"
)

// hashKey is a 128-bit unsigned hash key, the space shards divide among themselves.
//
// The hash-key math here does not reuse package aggregation's (HashKey, PartitionKeyHash)
// on purpose: the emulator routes records the way the service documents it (MD5 of the
// partition key as a 128-bit integer), independently of the producer it judges, so that a
// routing bug in the toolkit shows up as misrouted records instead of agreeing with itself.
type hashKey struct{ hi, lo uint64 }

var maxHashKey = hashKey{^uint64(0), ^uint64(0)}

func (a hashKey) less(b hashKey) bool {
	return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo)
}

func (a hashKey) lessEq(b hashKey) bool { return !b.less(a) }

func (a hashKey) add1() hashKey {
	lo := a.lo + 1
	hi := a.hi
	if lo == 0 {
		hi++
	}
	return hashKey{hi, lo}
}

func (a hashKey) sub1() hashKey {
	lo := a.lo - 1
	hi := a.hi
	if a.lo == 0 {
		hi--
	}
	return hashKey{hi, lo}
}

func (a hashKey) big() *big.Int {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], a.hi)
	binary.BigEndian.PutUint64(b[8:], a.lo)
	return new(big.Int).SetBytes(b[:])
}

func hashKeyFromBig(x *big.Int) hashKey {
	var b [16]byte
	x.FillBytes(b[:])
	return hashKey{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// String is the decimal form the API uses.
func (a hashKey) String() string {
	if a.hi == 0 {
		return strconv.FormatUint(a.lo, 10)
	}
	return a.big().String()
}

var two128 = new(big.Int).Lsh(big.NewInt(1), 128)

// parseHashKey parses a decimal hash key in [0, 2^128).
func parseHashKey(s string) (hashKey, bool) {
	if s == "" || len(s) > 39 {
		return hashKey{}, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return hashKey{}, false
		}
	}
	if len(s) <= 19 {
		v, err := strconv.ParseUint(s, 10, 64)
		return hashKey{0, v}, err == nil
	}
	x, ok := new(big.Int).SetString(s, 10)
	if !ok || x.Cmp(two128) >= 0 {
		return hashKey{}, false
	}
	return hashKeyFromBig(x), true
}

// partitionHash maps a partition key to its hash key: MD5 of the key's UTF-8 bytes read as
// a big-endian 128-bit integer, as the PutRecord page describes.
// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecord.html
func partitionHash(key string) hashKey {
	sum := md5.Sum([]byte(key))
	return hashKey{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
}

// splitEvenly divides the whole hash key space into n contiguous ranges, the way a new
// stream's shards divide it: each range is 2^128/n wide and the last one ends at 2^128-1.
func splitEvenly(n int) [][2]hashKey {
	width := new(big.Int).Div(two128, big.NewInt(int64(n)))
	out := make([][2]hashKey, n)
	start := new(big.Int)
	for i := range n {
		end := new(big.Int).Add(start, width)
		end.Sub(end, big.NewInt(1))
		if i == n-1 {
			end.Sub(two128, big.NewInt(1))
		}
		out[i] = [2]hashKey{hashKeyFromBig(start), hashKeyFromBig(end)}
		start = new(big.Int).Add(end, big.NewInt(1))
	}
	return out
}
