package agent

import (
	"math/rand/v2"
	"testing"
)

// TestInFlightsNeverShareASlot hands out inFlights and finishes them in random order, many
// blocks' worth, and checks that no inFlight is handed out again while in use and that no
// more than maxInFlightBlocks blocks are made, however scattered the stragglers that keep
// them (the rest are allocated one by one).
func TestInFlightsNeverShareASlot(t *testing.T) {
	var s inFlights
	rng := rand.New(rand.NewPCG(5, 6))
	inUse := map[*inFlight]bool{}
	var live []*inFlight
	blocks := map[*inFlightBlock]bool{}
	for i := range 4 * maxInFlightBlocks * inFlightBlockLen {
		f := s.get()
		if inUse[f] {
			t.Fatalf("get %d: an inFlight in use was handed out again", i)
		}
		inUse[f] = true
		f.ack.seq = uint64(i)
		live = append(live, f)
		if f.block != nil {
			blocks[f.block] = true
		}
		// Keep up to two blocks' worth in flight, finishing a random one.
		for len(live) > 2*inFlightBlockLen || len(live) > 0 && rng.IntN(3) == 0 {
			j := rng.IntN(len(live))
			g := live[j]
			live[j], live = live[len(live)-1], live[:len(live)-1]
			delete(inUse, g)
			s.put(g)
		}
	}
	if len(blocks) > maxInFlightBlocks || s.blocks > maxInFlightBlocks {
		t.Fatalf("%d blocks made, at most %d allowed", len(blocks), maxInFlightBlocks)
	}
	if len(blocks) < 2 {
		t.Fatalf("blocks were not reused: %d seen", len(blocks))
	}
}

// TestInFlightsReuseBlocksInOrder finishes inFlights in the order they were handed out, as
// the producer mostly reports results, and checks that a few blocks serve them all.
func TestInFlightsReuseBlocksInOrder(t *testing.T) {
	var s inFlights
	var live []*inFlight
	for range 50 * inFlightBlockLen {
		live = append(live, s.get())
		if len(live) > inFlightBlockLen+10 {
			s.put(live[0])
			live = live[1:]
		}
	}
	if s.blocks > 3 {
		t.Fatalf("%d blocks made for a block's worth in flight", s.blocks)
	}
}
