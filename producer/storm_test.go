package producer

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// randomStorm refuses each entry with probability share, whatever the rate: a storm that
// slowing down does not end (a hot partition on the service side, a noisy neighbour).
type randomStorm struct {
	mu    sync.Mutex
	rng   *rand.Rand
	share float64
	n     int
}

func (s *randomStorm) hook(string, types.PutRecordsRequestEntry) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rng.Float64() < s.share {
		s.n++
		return "ProvisionedThroughputExceededException"
	}
	return ""
}

// TestThrottleStormDelivers throttles half the entries of every request for the whole run,
// with the default RecordTTL and retry delays: every record must still be delivered once to
// a KCL-rule reader, in per-key order with StrictOrdering. (Before, a request with any
// throttled entry doubled its shard's backoff, which a storm pinned at RetryMaxDelay, and
// records expired.)
func TestThrottleStormDelivers(t *testing.T) {
	for _, strict := range []bool{false, true} {
		var clean time.Duration
		for _, share := range []float64{0, 0.5} {
			f := newFake(t, 4)
			st := &randomStorm{rng: rand.New(rand.NewPCG(1, 2)), share: share}
			f.entryHook = st.hook
			p := newTestProducer(t, f, Config{StrictOrdering: strict, Linger: 20 * time.Millisecond, AggregationMaxSize: 4096})
			recs := makeRecords(20000, 400, 100)
			r := newResults(t)
			start := time.Now()
			putAll(t, p, recs, r)
			r.wait(60 * time.Second)
			took := time.Since(start)
			s := p.Stats()
			closeProducer(t, p)
			expired := 0
			for i := range recs {
				if res, _ := r.get(&recs[i]); res.Err != nil {
					expired++
					if expired == 1 {
						t.Errorf("strict %v, storm %.1f: record %d: %v", strict, share, i, res.Err)
					}
				}
			}
			opts := 0
			if !strict {
				opts = unordered
			}
			checkStream(t, f.read(t), recs, opts)
			if share == 0 {
				clean = took
			}
			lowest := 1e9
			for _, v := range s.AdaptiveRateLimit {
				lowest = min(lowest, v)
			}
			t.Logf("strict %v, storm %.1f: %d records, %d failed, %d entries throttled, %v (clean %v), adaptive rate at the end %.0f/s at the lowest",
				strict, share, len(recs), expired, st.n, took.Round(time.Millisecond), clean.Round(time.Millisecond), lowest)
		}
	}
}

// TestRandomStormDoesNotSlowTheShards throttles half the entries of every request at random,
// with requests that carry many entries per shard. The PutRecords API reference says the
// service processes a request's records one after the other, a failed record not stopping
// the later ones; a shard's throughput budget only shrinks while one request is processed,
// so refused entries followed, more than once, by taken ones at least as large show the
// refusals were not about the shard's throughput. The adaptive rate must then stay where it
// is. Before, such a
// response halved the rate (for the three seconds the limiter judges a decrease) and
// dropped the shard's burst.
func TestRandomStormDoesNotSlowTheShards(t *testing.T) {
	f := newFake(t, 4)
	st := &randomStorm{rng: rand.New(rand.NewPCG(3, 4)), share: 0.5}
	f.entryHook = st.hook
	p := newTestProducer(t, f, Config{DisableAggregation: true})
	recs := makeRecords(20000, 400, 100)
	r := newResults(t)
	// The lowest adaptive rate of any shard, sampled through the run: a decrease lasts
	// seconds (the limiter judges it for three), so sampling every 5 ms sees it.
	lowest := math.Inf(1)
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			for _, v := range p.Stats().AdaptiveRateLimit {
				lowest = min(lowest, v)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	putAll(t, p, recs, r)
	r.wait(60 * time.Second)
	close(stop)
	<-sampled
	closeProducer(t, p)
	for i := range recs {
		if res, _ := r.get(&recs[i]); res.Err != nil {
			t.Fatalf("record %d: %v", i, res.Err)
		}
	}
	if st.n < 5000 {
		t.Fatalf("only %d entries throttled", st.n)
	}
	if want := float64(ShardRecordsPerSecond * DefaultRateLimit / 100); lowest < want {
		t.Errorf("a shard's adaptive rate fell to %.0f/s (configured %.0f/s) in a storm that slowing down does not end", lowest, want)
	}
	checkStream(t, f.read(t), recs, unordered)
}
