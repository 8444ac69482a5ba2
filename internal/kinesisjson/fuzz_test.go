package kinesisjson

import (
	"math/rand/v2"
	"testing"
)

// FuzzGetRecordsDecode feeds arbitrary bodies to the decoder and to the SDK's protocol. The
// decoder must never panic; where the SDK accepts a body the decoder must accept it with the
// same output (with FreshData or without), and where the SDK rejects one (or panics, on a "NaN" timestamp) the decoder
// must reject it too. One decoder serves every input, as one serves a shard reader, so state
// left over from an earlier body would show.
func FuzzGetRecordsDecode(f *testing.F) {
	// Small seeds: the fuzzer mutates, and minimizes, every byte of an input.
	g := &gen{r: rand.New(rand.NewPCG(9, 10))}
	for added := 0; added < 20; {
		if b := g.answer(); len(b) <= 4096 {
			f.Add(b)
			added++
		}
	}
	d, fresh := &GetRecordsDecoder{}, &GetRecordsDecoder{FreshData: true}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkSame(t, d, body)
		checkSame(t, fresh, body)
	})
}
