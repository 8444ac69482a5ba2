//go:build amd64 && !purego

package md5lanes

import "golang.org/x/sys/cpu"

// haveLanes reports whether blocks16 can run: it needs AVX-512 Foundation, and an operating
// system that saves the ZMM registers (which x/sys/cpu checks too).
var haveLanes = cpu.X86.HasAVX512F

// blocks16 is implemented in blocks_amd64.s.
//
//go:noescape
func blocks16(state *[4][lanes]uint32, ptrs *[lanes]*byte, n int)
