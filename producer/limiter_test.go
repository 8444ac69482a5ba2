package producer

import "testing"

// TestLimiterJudgesOnlyWithHistory checks that a throttle in a limiter's first second does
// not decrease its rate. A decrease is judged afterwards against the rate accepted before
// it, and within the first second that rate is mostly unmeasured (counted over a full
// second), so a storm refusing a share of entries at any rate was judged to be the shard's
// capacity, and the rate stayed halved, then halved again.
func TestLimiterJudgesOnlyWithHistory(t *testing.T) {
	const ms = int64(1e6)
	l := newLimiter(100, true, 0)
	l.observe(5*ms, 0, 40)
	if l.throttled(10*ms, 0) || l.factor != 1 {
		t.Fatalf("throttle at 10 ms decreased the rate to factor %.2f", l.factor)
	}
	for now := 20 * ms; now < 1100*ms; now += 20 * ms {
		l.observe(now, now-5*ms, 20)
	}
	if !l.throttled(1100*ms, 1090*ms) || l.factor != rateDecrease {
		t.Fatalf("throttle after a second of history: factor %.2f, want %.2f", l.factor, rateDecrease)
	}
}
