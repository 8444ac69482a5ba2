package aggregation

import (
	"crypto/md5"
	"errors"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
)

var two128 = new(big.Int).Lsh(big.NewInt(1), 128)

func (k HashKey) big() *big.Int {
	b := new(big.Int).SetUint64(k.Hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(k.Lo))
}

func TestHashKeyDecimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	keys := []HashKey{{}, {Lo: 1}, {Lo: 9}, {Lo: 10}, {Lo: pow10_19 - 1}, {Lo: pow10_19}, {Lo: ^uint64(0)},
		{Hi: 1}, {Hi: 1, Lo: 0}, MaxHashKey, {Hi: 1 << 63}}
	for range 2000 {
		keys = append(keys, HashKey{Hi: rng.Uint64() >> rng.IntN(64), Lo: rng.Uint64()})
	}
	for _, k := range keys {
		s := k.String()
		if want := k.big().String(); s != want {
			t.Fatalf("String(%#x,%#x) = %s, want %s", k.Hi, k.Lo, s, want)
		}
		back, err := ParseHashKey(s)
		if err != nil || back != k {
			t.Fatalf("ParseHashKey(%s) = %v, %v", s, back, err)
		}
	}
	if MaxHashKey.String() != "340282366920938463463374607431768211455" {
		t.Fatal("MaxHashKey is not 2^128-1")
	}
}

func TestParseHashKeyErrors(t *testing.T) {
	for _, s := range []string{"", "-1", "+1", " 1", "1 ", "1.0", "0x10", "١", "340282366920938463463374607431768211456",
		"999999999999999999999999999999999999999", strings.Repeat("1", 40)} {
		_, err := ParseHashKey(s)
		var ve *ValidationError
		if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) || ve.Field != "HashKey" || !strings.Contains(err.Error(), "2^128") {
			t.Errorf("ParseHashKey(%q) = %v", s, err)
		}
	}
	if k, err := ParseHashKey("000000000000000000000000000000000000000000042"); err != nil || k != (HashKey{Lo: 42}) {
		t.Errorf("leading zeros: %v, %v", k, err)
	}
}

func TestHashKeyCmp(t *testing.T) {
	ordered := []HashKey{{}, {Lo: 1}, {Lo: ^uint64(0)}, {Hi: 1}, {Hi: 1, Lo: 1}, MaxHashKey}
	for i, a := range ordered {
		for j, b := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Cmp(b); got != want {
				t.Errorf("%v.Cmp(%v) = %d, want %d", a, b, got, want)
			}
		}
	}
}

func TestPartitionKeyHash(t *testing.T) {
	for _, pk := range []string{"a", "partition-key-1", "中文🚀", strings.Repeat("𝄞", 256), strings.Repeat("x", 5000)} {
		sum := md5.Sum([]byte(pk))
		want := new(big.Int).SetBytes(sum[:])
		if got := PartitionKeyHash(pk).big(); got.Cmp(want) != 0 {
			t.Errorf("PartitionKeyHash(%.10q) = %s, want %s", pk, got, want)
		}
	}
	long := strings.Repeat("k", 300)
	if n := testing.AllocsPerRun(100, func() { PartitionKeyHash(long) }); n != 0 {
		t.Errorf("PartitionKeyHash allocates %.0f times", n)
	}
	k, err := EffectiveHashKey("a", "")
	if err != nil || k != PartitionKeyHash("a") {
		t.Error("EffectiveHashKey without an explicit hash key")
	}
	k, err = EffectiveHashKey("a", "77")
	if err != nil || k != (HashKey{Lo: 77}) {
		t.Error("EffectiveHashKey with an explicit hash key")
	}
	if _, err := EffectiveHashKey("a", "077"); !errors.Is(err, ErrInvalid) {
		t.Error("EffectiveHashKey accepts an invalid explicit hash key")
	}
}

// evenShards splits the hash key space into n ranges the way CreateStream
// does.
func evenShards(n int) []ShardRange {
	step := new(big.Int).Div(two128, big.NewInt(int64(n)))
	var out []ShardRange
	for i := range n {
		start := new(big.Int).Mul(step, big.NewInt(int64(i)))
		end := new(big.Int).Sub(new(big.Int).Add(start, step), big.NewInt(1))
		if i == n-1 {
			end = new(big.Int).Sub(two128, big.NewInt(1))
		}
		s, _ := ParseHashKey(start.String())
		e, _ := ParseHashKey(end.String())
		out = append(out, ShardRange{ShardID: "shardId-" + string(rune('A'+i)), Start: s, End: e})
	}
	return out
}

func TestShardMap(t *testing.T) {
	ranges := evenShards(5)
	shuffled := []ShardRange{ranges[3], ranges[0], ranges[4], ranges[2], ranges[1]}
	m, err := NewShardMap(shuffled)
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != 5 || m.Ranges()[0] != ranges[0] {
		t.Fatal("ranges not sorted")
	}
	for _, r := range ranges {
		for _, k := range []HashKey{r.Start, r.End} {
			got, ok := m.Lookup(k)
			if !ok || got.ShardID != r.ShardID {
				t.Fatalf("Lookup(%s) = %v, %v, want %s", k, got.ShardID, ok, r.ShardID)
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		k := HashKey{Hi: rng.Uint64(), Lo: rng.Uint64()}
		got, ok := m.Lookup(k)
		if !ok || !got.Contains(k) {
			t.Fatalf("Lookup(%s) = %v, %v", k, got, ok)
		}
	}

	// Gaps report no shard.
	gappy, err := NewShardMap([]ShardRange{ranges[1], ranges[3]})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []HashKey{{}, ranges[0].End, ranges[2].Start, MaxHashKey} {
		if r, ok := gappy.Lookup(k); ok {
			t.Fatalf("Lookup(%s) found %s in a gap", k, r.ShardID)
		}
	}
	if _, ok := (&ShardMap{}).Lookup(HashKey{}); ok {
		t.Fatal("empty map found a shard")
	}

	// Overlaps and inverted ranges are rejected.
	parent := ShardRange{ShardID: "parent", Start: ranges[0].Start, End: ranges[1].End}
	if _, err := NewShardMap([]ShardRange{ranges[0], ranges[1], parent}); err == nil {
		t.Fatal("overlapping ranges accepted")
	}
	if _, err := NewShardMap([]ShardRange{{ShardID: "x", Start: HashKey{Lo: 2}, End: HashKey{Lo: 1}}}); err == nil {
		t.Fatal("inverted range accepted")
	}
}

func TestValidateExplicitHashKey(t *testing.T) {
	for _, s := range []string{"", "0", "1", "340282366920938463463374607431768211455"} {
		if err := ValidateExplicitHashKey(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"00", "01", "-0", "1e5", "340282366920938463463374607431768211456"} {
		err := ValidateExplicitHashKey(s)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != "ExplicitHashKey" {
			t.Errorf("%q: %v", s, err)
		}
	}
}

func TestValidatePartitionKey(t *testing.T) {
	// Kinesis counts UTF-16 code units: a rocket (outside the Basic Multilingual Plane)
	// counts twice.
	ok := []string{"a", strings.Repeat("a", 256), strings.Repeat("é", 256), strings.Repeat("🚀", 128), strings.Repeat("🚀", 127) + "ab"}
	bad := []string{"", strings.Repeat("a", 257), strings.Repeat("é", 257), "\xff", "ok\xc3", strings.Repeat("🚀", 129), strings.Repeat("🚀", 128) + "a"}
	for _, s := range ok {
		if err := ValidatePartitionKey(s); err != nil {
			t.Errorf("%.12q: %v", s, err)
		}
	}
	for _, s := range bad {
		var ve *ValidationError
		if err := ValidatePartitionKey(s); !errors.As(err, &ve) || ve.Field != "PartitionKey" || !strings.Contains(ve.Limit, "256") {
			t.Errorf("%.12q: %v", s, err)
		}
	}
	r := UserRecord{PartitionKey: "k", Data: make([]byte, MaxRecordSize-1)}
	if err := r.Validate(); err != nil {
		t.Errorf("record at the limit: %v", err)
	}
	r.Data = append(r.Data, 0)
	if err := r.Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "1048576") {
		t.Errorf("record over the limit: %v", err)
	}
}

// FuzzParseHashKey checks ParseHashKey against math/big.
func FuzzParseHashKey(f *testing.F) {
	for _, s := range []string{"0", "1", "340282366920938463463374607431768211455", "340282366920938463463374607431768211456",
		"0000000000000000000000000000000000000000001", "", "-1", "12a", "18446744073709551616"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseHashKey(s)
		digits := s != "" && strings.Trim(s, "0123456789") == ""
		var want *big.Int
		if digits {
			want, _ = new(big.Int).SetString(s, 10)
		}
		valid := digits && want.Cmp(two128) < 0
		if valid != (err == nil) {
			t.Fatalf("ParseHashKey(%q) error %v, valid by math/big: %v", s, err, valid)
		}
		if !valid {
			return
		}
		if k.big().Cmp(want) != 0 {
			t.Fatalf("ParseHashKey(%q) = %s, want %s", s, k, want)
		}
		if k.String() != want.String() {
			t.Fatalf("String() = %s, want %s", k, want)
		}
		if (ValidateExplicitHashKey(s) == nil) != (s == want.String()) {
			t.Fatalf("ValidateExplicitHashKey(%q) disagrees with the canonical form", s)
		}
	})
}
