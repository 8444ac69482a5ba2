package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInPlaceTruncationDoesNotWaitForAcks: a file truncated to zero and rewritten in place,
// again and again, while none of its records is acknowledged (a sink batching for its buffer
// age, or a stream that cannot be reached), is read at once each time: reading the new content
// never waits for the old content's acknowledgements, so a further truncation during that wait
// cannot destroy lines that were there to read. The checkpoint meanwhile stays with the content
// whose records are still in flight, at its delivered position, and moves to the newest content
// once everything before it is acknowledged.
func TestInPlaceTruncationDoesNotWaitForAcks(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	const rounds, perRound = 5, 50
	round := func(r int) string {
		var b strings.Builder
		for i := 0; i < perRound; i++ {
			fmt.Fprintf(&b, "round %d line %03d %s\n", r, i, strings.Repeat("p", 20))
		}
		return b.String()
	}
	appendFile(t, p, round(0))
	cfg := testConfig(t, p)
	sink := &blockingSink{}
	a, stop := running(t, cfg, sink)
	for r := 0; r < rounds; r++ {
		want := int64((r + 1) * perRound)
		eventually(t, 10*time.Second, fmt.Sprintf("round %d read while nothing is acknowledged", r), func() bool {
			return a.Stats().RecordsSent >= want
		})
		if r == rounds-1 {
			break
		}
		if err := os.Truncate(p, 0); err != nil {
			t.Fatal(err)
		}
		appendFile(t, p, round(r+1))
	}
	// Nothing was acknowledged: the checkpoint may not have moved in any content.
	time.Sleep(3 * cfg.CheckpointInterval)
	cd, err := loadCheckpoints(cfg.CheckpointFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range cd.Files {
		if e.Offset != 0 {
			t.Errorf("checkpoint at %d with nothing acknowledged", e.Offset)
		}
	}
	sink.flush()
	size := int64(len(round(rounds - 1)))
	eventually(t, 5*time.Second, "the checkpoint at the end of the newest content", func() bool {
		sink.flush()
		if err := a.saveCheckpoint(); err != nil {
			t.Fatal(err)
		}
		cd, err := loadCheckpoints(cfg.CheckpointFile)
		return err == nil && len(cd.Files) == 1 && cd.Files[0].Offset == size
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	for _, it := range sink.pending {
		t.Errorf("record %q still pending", it.rec.Data)
	}
	sink.mu.Unlock()
	if got := a.Stats().RecordsAcked; got != rounds*perRound {
		t.Errorf("%d records acknowledged, want %d", got, rounds*perRound)
	}
}
