package producer

import "math"

// AIMD parameters of the adaptive rate. They are fixed rather than configurable: they shape
// how fast the limiter reacts, not where it settles, which the service decides.
const (
	// rateDecrease multiplies a shard's rate when the service throttles it, as TCP halves
	// its window on loss.
	rateDecrease = 0.5
	// decreaseSpacing is the least time between two decreases. Kinesis measures a shard's
	// throughput over one-second windows, so once a window is spent every request is
	// throttled until it ends, however much the rate was already cut; reacting to each of
	// those throttles would drive the rate to the floor within a few round trips.
	decreaseSpacing = int64(500e6)
	// rateIncreasePerSecond is the largest fraction of the configured rate regained per
	// second without throttling, so the rate is back to full within seconds of a storm's end.
	// Right after a decrease the step is only this fraction of the rate at which the service
	// throttled, doubling each second without a throttle: a shard that accepts far less than
	// its nominal rate is probed gently near the rate it refused, instead of being overrun
	// again within a second, and a storm that ended is left behind quickly.
	rateIncreasePerSecond = 0.10
	// rateFloor keeps a shard from being starved entirely: its rate never falls below this
	// fraction of the configured one.
	rateFloor = 0.02
	// minWait is the shortest wait the limiter asks for, so the dispatcher does not spin on
	// sub-millisecond refills.
	minWait = int64(1e6)
)

// limiter is a shard's pair of token buckets (records and bytes), refilled at the configured
// rate times an adaptive factor. A bucket may go into debt by one record so that a record
// larger than the bucket still gets through; the debt is paid off before the next one. Not
// safe for concurrent use: the producer guards it with its mutex.
type limiter struct {
	recRate, byteRate float64 // configured per-second rates (RateLimit applied)
	factor            float64 // adaptive multiplier in [rateFloor, 1]
	adaptive          bool

	recTok, byteTok float64
	last            int64   // time of the last refill
	lastDecrease    int64   // time of the last decrease, to decrease once per round trip
	ceiling         float64 // factor at which the service last throttled
}

func newLimiter(rateLimitPercent int, adaptive bool, now int64) limiter {
	f := float64(rateLimitPercent) / 100
	l := limiter{
		recRate:  ShardRecordsPerSecond * f,
		byteRate: ShardBytesPerSecond * f,
		factor:   1,
		adaptive: adaptive,
		last:     now,
	}
	l.recTok, l.byteTok = l.recRate, l.byteRate
	l.lastDecrease = -decreaseSpacing
	l.ceiling = 1
	return l
}

// advance refills the buckets and, while no throttle is reported, raises the factor.
func (l *limiter) advance(now int64) {
	dt := float64(now-l.last) / 1e9
	if dt <= 0 {
		return
	}
	l.last = now
	if l.adaptive && l.factor < 1 {
		since := float64(now-l.lastDecrease) / 1e9
		step := rateIncreasePerSecond * math.Min(1, l.ceiling*math.Exp2(since))
		l.factor = math.Min(1, l.factor+step*dt)
	}
	r, b := l.recRate*l.factor, l.byteRate*l.factor
	l.recTok = math.Min(r, l.recTok+r*dt)
	l.byteTok = math.Min(b, l.byteTok+b*dt)
}

// take spends tokens for one Kinesis record of size bytes, or reports how long to wait
// until it may.
func (l *limiter) take(now int64, size int) (ok bool, wait int64) {
	if wait = l.delay(now); wait > 0 {
		return false, wait
	}
	l.recTok--
	l.byteTok -= float64(size)
	return true, 0
}

// delay reports how long until take succeeds: zero when it would now.
func (l *limiter) delay(now int64) int64 {
	l.advance(now)
	if l.recTok >= 0 && l.byteTok >= 0 {
		return 0
	}
	r, b := l.recRate*l.factor, l.byteRate*l.factor
	w := math.Max(-l.recTok/r, -l.byteTok/b)
	return max(minWait, int64(w*1e9)+1)
}

// throttled applies the multiplicative decrease for a throttle reported on a request sent at
// sentAt. Requests sent before the last decrease took effect are ignored, since their
// throttles describe the old rate, and so are throttles within decreaseSpacing of the last
// decrease. It reports whether the rate changed.
func (l *limiter) throttled(now, sentAt int64) bool {
	if !l.adaptive || sentAt < l.lastDecrease || now-l.lastDecrease < decreaseSpacing {
		return false
	}
	l.advance(now)
	l.ceiling = l.factor
	l.factor = math.Max(rateFloor, l.factor*rateDecrease)
	l.lastDecrease = now
	// Drop the saved-up burst: it is what the service just refused.
	l.recTok = math.Min(l.recTok, 0)
	l.byteTok = math.Min(l.byteTok, 0)
	return true
}

// recordsPerSecond is the record rate currently allowed.
func (l *limiter) recordsPerSecond() float64 { return l.recRate * l.factor }
