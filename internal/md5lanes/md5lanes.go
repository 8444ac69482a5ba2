// Package md5lanes computes the MD5 digests of many messages at once. Where the CPU has
// AVX-512 it hashes sixteen messages side by side, one per vector lane; elsewhere, or for a
// single message, it calls crypto/md5. The digests are MD5's either way.
//
// The producer checksums every aggregate of a PutRecords request before sending it; hashed
// together they cost a fraction of hashing them one by one.
package md5lanes

//go:generate go run gen_blocks.go

import (
	"crypto/md5"
	"encoding/binary"
)

// Size is the size of an MD5 digest in bytes.
const Size = md5.Size

const (
	lanes     = 16
	blockSize = 64
)

// Hasher holds the working state of Sum, so that Sum allocates nothing. Its zero value is
// ready to use. A Hasher is not safe for concurrent use; it is about 2.5 KiB.
type Hasher struct {
	state [4][lanes]uint32
	ptrs  [lanes]*byte
	lane  [lanes]lane
	pad   [lanes][2 * blockSize]byte
}

// lane is the progress of the message a lane hashes: first its whole blocks, read in place,
// then the padded tail, one or two blocks copied into the lane's pad.
type lane struct {
	msg    int  // index of the message; -1 while the lane is idle
	off    int  // offset of the next block, in the message or in the pad
	blocks int  // blocks left in the current phase
	tail   bool // the lane is in its padding phase
}

// Sum sets sums[i] to the MD5 digest of msgs[i] for every i. It panics if sums is shorter
// than msgs.
func (h *Hasher) Sum(sums [][Size]byte, msgs [][]byte) {
	_ = sums[:len(msgs)]
	if !haveLanes || len(msgs) < 2 {
		for i, m := range msgs {
			sums[i] = md5.Sum(m)
		}
		return
	}
	next, active := 0, 0
	for l := range h.lane {
		if next < len(msgs) {
			h.start(l, msgs, next)
			next++
			active++
		} else {
			h.lane[l].msg = -1
		}
	}
	for active > 0 {
		// Run every lane until the first one ends its phase. Idle lanes read the same memory
		// as a busy one, so that every address the kernel loads from is valid; their state
		// is discarded.
		n, busy := 0, -1
		for l := range h.lane {
			if ln := &h.lane[l]; ln.msg >= 0 && (busy < 0 || ln.blocks < n) {
				n, busy = ln.blocks, l
			}
		}
		for l := range h.lane {
			if h.lane[l].msg < 0 {
				h.ptrs[l] = h.ptrs[busy]
			}
		}
		blocks16(&h.state, &h.ptrs, n)
		for l := range h.lane {
			ln := &h.lane[l]
			if ln.msg < 0 {
				continue
			}
			ln.blocks -= n
			ln.off += n * blockSize
			switch {
			case ln.blocks > 0 && ln.tail:
				h.ptrs[l] = &h.pad[l][ln.off]
			case ln.blocks > 0:
				h.ptrs[l] = &msgs[ln.msg][ln.off]
			case !ln.tail:
				h.startTail(l, msgs[ln.msg])
			default:
				h.digest(l, &sums[ln.msg])
				if next < len(msgs) {
					h.start(l, msgs, next)
					next++
				} else {
					ln.msg = -1
					active--
				}
			}
		}
	}
	clear(h.ptrs[:]) // keep no caller's message alive
}

// start puts message i in lane l, from MD5's initial state.
func (h *Hasher) start(l int, msgs [][]byte, i int) {
	h.state[0][l], h.state[1][l], h.state[2][l], h.state[3][l] = 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476
	h.lane[l] = lane{msg: i, blocks: len(msgs[i]) / blockSize}
	if h.lane[l].blocks == 0 {
		h.startTail(l, msgs[i])
		return
	}
	h.ptrs[l] = &msgs[i][0]
}

// startTail copies what is left of msg after its whole blocks into lane l's pad, followed
// by MD5's padding: a one bit, zeros, and the message length in bits.
func (h *Hasher) startTail(l int, msg []byte) {
	pad := &h.pad[l]
	rest := copy(pad[:], msg[len(msg)/blockSize*blockSize:])
	end := blockSize
	if rest >= blockSize-8 {
		end = 2 * blockSize
	}
	pad[rest] = 0x80
	clear(pad[rest+1 : end-8])
	binary.LittleEndian.PutUint64(pad[end-8:end], uint64(len(msg))<<3)
	h.lane[l].tail, h.lane[l].off, h.lane[l].blocks = true, 0, end/blockSize
	h.ptrs[l] = &pad[0]
}

// digest writes lane l's final state as a digest.
func (h *Hasher) digest(l int, sum *[Size]byte) {
	for w := range 4 {
		binary.LittleEndian.PutUint32(sum[4*w:], h.state[w][l])
	}
}
