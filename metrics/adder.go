package metrics

import (
	"math"
	"math/bits"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// The adders below are Go versions of Java's LongAdder. An uncontended adder is one word
// updated with compare-and-swap, as cheap as a plain atomic add. The first failed swap proves
// that goroutines on different CPUs are updating the same word; the adder then grows a set of
// cells on separate cache lines and spreads later updates over them, so a hot counter on the
// producer's path scales with cores instead of serialising on one cache line. Only contended
// adders pay for the cells.

// cacheLine is the padding unit; 64 bytes covers x86-64 and most arm64 parts.
const cacheLine = 64

type intCell struct {
	v atomic.Int64
	_ [cacheLine - 8]byte
}

type floatCell struct {
	bits atomic.Uint64
	_    [cacheLine - 8]byte
}

// cellCount is a power of two, four times GOMAXPROCS (at most 256), read when an adder first
// sees contention. Cells are picked by hashing, so spare cells keep two goroutines from
// sharing one for long.
func cellCount() int {
	n := min(4*runtime.GOMAXPROCS(0), 256)
	return 1 << bits.Len(uint(n-1))
}

// cellIndex picks the calling goroutine's cell. The address of a local variable identifies
// the goroutine's stack, so a goroutine keeps using the same cell, whose cache line then
// stays with the CPU running it, while other goroutines mostly hash elsewhere. (A random cell
// per update spreads the load too, but every cell's line then moves between CPUs on almost
// every update, which is slower than one shared atomic.) A stack that moves just changes the
// goroutine's cell.
func cellIndex(n int) int {
	var marker byte
	h := uint64(uintptr(unsafe.Pointer(&marker))>>10) * 0x9e3779b97f4a7c15
	return int(h>>32) & (n - 1)
}

// intAdder is a contention-adaptive int64 sum.
type intAdder struct {
	cells atomic.Pointer[[]intCell]
	base  atomic.Int64
}

func (a *intAdder) add(n int64) {
	cells := a.cells.Load()
	if cells == nil {
		old := a.base.Load()
		if a.base.CompareAndSwap(old, old+n) {
			return
		}
		cells = a.grow()
	}
	c := *cells
	c[cellIndex(len(c))].v.Add(n)
}

func (a *intAdder) grow() *[]intCell {
	c := make([]intCell, cellCount())
	if a.cells.CompareAndSwap(nil, &c) {
		return &c
	}
	return a.cells.Load()
}

func (a *intAdder) load() int64 {
	v := a.base.Load()
	if cells := a.cells.Load(); cells != nil {
		for i := range *cells {
			v += (*cells)[i].v.Load()
		}
	}
	return v
}

// floatAdder is a contention-adaptive float64 sum. unsetBits in base marks "never written",
// which gauges use to stay unpublished until first set.
type floatAdder struct {
	cells atomic.Pointer[[]floatCell]
	base  atomic.Uint64
}

// unsetBits is a NaN payload no arithmetic produces (Set and Add ignore NaN inputs).
const unsetBits uint64 = 0x7ff8_dead_beef_0001

func (a *floatAdder) add(v float64) {
	cells := a.cells.Load()
	if cells == nil {
		old := a.base.Load()
		cur := math.Float64frombits(old)
		if old == unsetBits {
			cur = 0
		}
		if a.base.CompareAndSwap(old, math.Float64bits(cur+v)) {
			return
		}
		cells = a.grow()
	}
	c := *cells
	i := cellIndex(len(c))
	for {
		old := c[i].bits.Load()
		if c[i].bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
		i = (i + 1) & (len(c) - 1)
	}
}

func (a *floatAdder) grow() *[]floatCell {
	c := make([]floatCell, cellCount())
	if a.cells.CompareAndSwap(nil, &c) {
		return &c
	}
	return a.cells.Load()
}

// set replaces the sum. Adds that race with it may land before or after the reset; a gauge is
// meant to be driven either by Set or by Add, not both at once.
func (a *floatAdder) set(v float64) {
	a.base.Store(math.Float64bits(v))
	if cells := a.cells.Load(); cells != nil {
		for i := range *cells {
			(*cells)[i].bits.Store(0)
		}
	}
}

// load returns the sum and whether the adder was ever written.
func (a *floatAdder) load() (float64, bool) {
	b := a.base.Load()
	isSet := b != unsetBits
	v := 0.0
	if isSet {
		v = math.Float64frombits(b)
	}
	if cells := a.cells.Load(); cells != nil {
		for i := range *cells {
			v += math.Float64frombits((*cells)[i].bits.Load())
		}
	}
	return v, isSet
}
