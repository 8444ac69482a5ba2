package checkpoint

import (
	"errors"
	"math/big"
	"testing"
)

func esn(seq string, sub int64) ExtendedSequenceNumber {
	return ExtendedSequenceNumber{SequenceNumber: seq, SubSequenceNumber: sub}
}

func TestExtendedSequenceNumberCompare(t *testing.T) {
	// Each entry is strictly after every entry before it.
	ordered := []ExtendedSequenceNumber{
		AtTimestamp,
		TrimHorizon,
		Latest,
		esn("0", 0),
		esn("9", 0),
		esn("9", 1),
		esn("10", 0),                   // as strings "10" < "9"; as numbers it is after
		esn("18446744073709551616", 0), // 2^64: past int64 and uint64
		esn("340282366920938463463374607431768211456", 0), // 2^128
		// Real sequence numbers have 56 digits, about 186 bits.
		esn("49590338271490256608559692538361571095921575989136588898", 0),
		esn("49590338271490256608559692538361571095921575989136588898", 7),
		esn("49590338271490256608559692538361571095921575989136588899", 0),
		esn("1000000000000000000000000000000000000000000000000000000000000000000000000000000", 0),
		ShardEnd,
	}
	for i, a := range ordered {
		for j, b := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", a, b, got, want)
			}
		}
	}
	// Leading zeros do not change the number.
	if c := esn("007", 0).Compare(esn("7", 0)); c != 0 {
		t.Errorf("007 vs 7: %d", c)
	}
	// Malformed values sort before everything but still compare consistently.
	if esn("garbage", 0).Compare(AtTimestamp) >= 0 || AtTimestamp.Compare(esn("garbage", 0)) <= 0 {
		t.Error("malformed value does not sort first")
	}
}

func TestExtendedSequenceNumberValidate(t *testing.T) {
	for _, ok := range []ExtendedSequenceNumber{TrimHorizon, Latest, AtTimestamp, ShardEnd, esn("0", 0), esn("123", 4)} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for _, bad := range []ExtendedSequenceNumber{{}, esn("+1", 0), esn("-1", 0), esn("1.5", 0), esn("12 ", 0), esn("1e5", 0), esn("trim_horizon", 0), esn("5", -1)} {
		if err := bad.Validate(); !errors.Is(err, ErrInvalidSequenceNumber) {
			t.Errorf("%q/%d: got %v, want ErrInvalidSequenceNumber", bad.SequenceNumber, bad.SubSequenceNumber, err)
		}
	}
	if _, err := NewExtendedSequenceNumber("x", 0); !errors.Is(err, ErrInvalidSequenceNumber) {
		t.Errorf("NewExtendedSequenceNumber accepted x: %v", err)
	}
	if e, err := NewExtendedSequenceNumber("42", 3); err != nil || e.String() != "42/3" {
		t.Errorf("NewExtendedSequenceNumber: %v %v", e, err)
	}
}

func TestExtendedSequenceNumberPredicates(t *testing.T) {
	if !ShardEnd.IsShardEnd() || TrimHorizon.IsShardEnd() {
		t.Error("IsShardEnd")
	}
	if !Latest.IsSentinel() || esn("1", 0).IsSentinel() {
		t.Error("IsSentinel")
	}
	if !(ExtendedSequenceNumber{}).IsZero() || TrimHorizon.IsZero() {
		t.Error("IsZero")
	}
	if TrimHorizon.String() != "TRIM_HORIZON" {
		t.Error("String")
	}
}

// BenchmarkExtendedSequenceNumberCompare compares two 56-digit sequence numbers of one shard,
// as the consumer does for every record it delivers.
func BenchmarkExtendedSequenceNumberCompare(b *testing.B) {
	x := esn("49590338271490256608559692538361571095921575989136588898", 3)
	y := esn("49590338271490256608559692538361571095921575989136588899", 0)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n += x.Compare(y)
	}
	if n >= 0 {
		b.Fatal("wrong order")
	}
}

// FuzzCompareDecimal checks the digit-run comparison and the word-at-a-time digit check
// against math/big on arbitrary strings.
func FuzzCompareDecimal(f *testing.F) {
	for _, s := range [][2]string{
		{"49590338271490256608559692538361571095921575989136588898", "49590338271490256608559692538361571095921575989136588899"},
		{"9", "10"}, {"007", "7"}, {"0", "000"}, {"12345678", "1234567/"}, {"1234567:", "12345678"},
		{"18446744073709551616", "18446744073709551615"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, s := range []string{a, b} {
			want := s != ""
			for i := 0; i < len(s); i++ {
				want = want && s[i] >= '0' && s[i] <= '9'
			}
			if got := isDigits(s); got != want {
				t.Fatalf("isDigits(%q) = %v, want %v", s, got, want)
			}
		}
		if !isDigits(a) || !isDigits(b) {
			return
		}
		x, _ := new(big.Int).SetString(a, 10)
		y, _ := new(big.Int).SetString(b, 10)
		if got, want := CompareDecimal(a, b), x.Cmp(y); got != want {
			t.Fatalf("CompareDecimal(%q, %q) = %d, want %d", a, b, got, want)
		}
	})
}

// TestCompareDoesNotAllocate: the consumer compares positions for every record it delivers,
// so comparing two sequence numbers must not allocate (it parsed both into big.Ints).
func TestCompareDoesNotAllocate(t *testing.T) {
	x := esn("49590338271490256608559692538361571095921575989136588898", 3)
	y := esn("49590338271490256608559692538361571095921575989136588899", 0)
	if n := testing.AllocsPerRun(100, func() { _ = x.Compare(y) }); n != 0 {
		t.Errorf("Compare allocates %.1f times, want 0", n)
	}
}
