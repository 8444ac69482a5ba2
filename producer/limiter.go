package producer

import (
	"math"
	"time"
)

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
	// judgeAfter is how long after a decrease the limiter starts measuring whether it
	// helped, and judgeWindow how long it measures: Kinesis measures a shard's throughput per
	// second, so requests in the second of the decrease still meet the old second's budget,
	// and a window of a few seconds keeps the count of seconds' budgets it spans steady.
	judgeAfter  = int64(1e9)
	judgeWindow = int64(2e9)
	// costlyRatio: a decrease cost throughput when the shard accepted less than this share of
	// the entries per second after it than before it. A shard over its capacity accepts as
	// much at the lower rate (it throttled only the excess); a storm that refuses a share of
	// entries whatever the rate (an overloaded partition, a noisy neighbour) accepts less the
	// less is sent, and slowing down for it only makes records expire.
	costlyRatio = 0.6
	// flatFor is how long the limiter trusts its finding that slowing down does not help.
	flatFor = int64(10e9)
	// minWait is the shortest wait the limiter asks for, so the dispatcher does not spin on
	// sub-millisecond refills.
	minWait = int64(1e6)
)

// limiterBucketSpan is how much throughput a limiter's buckets hold: one second's worth at
// the current rate (advance caps the tokens there).
const limiterBucketSpan = time.Second

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

	// Telling "over capacity" from "some entries refused". The shard's accepted entries are
	// counted over the last second or two, for the rate before a decrease; after one, the
	// rate stays put while judging: from judgeFrom for judgeWindow, the accepted entries are
	// counted in judgeAcc and compared with accBefore.
	accepted     buckets
	judging      bool
	judgeFrom    int64
	judgeAcc     int64
	accBefore    float64
	flatUntil    int64 // a decrease was found costly: none until then
	lastThrottle int64
	lastStorm    int64 // when a response last showed a throttle not about throughput
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
	l.accepted.at = now
	return l
}

// advance refills the buckets and, while no throttle is reported, raises the factor.
func (l *limiter) advance(now int64) {
	dt := float64(now-l.last) / 1e9
	if dt <= 0 {
		return
	}
	l.last = now
	if l.judging && now >= l.judgeFrom+judgeWindow && now-l.lastThrottle >= 1e9 {
		l.judging = false // no throttle for a second: the decrease helped
	}
	if l.adaptive && l.factor < 1 && !l.judging {
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

// tokens refills the buckets and returns the records and bytes that may be taken now; take
// succeeds while both are non-negative, so the last record taken may overdraw them.
func (l *limiter) tokens(now int64) (recs, bytes float64) {
	l.advance(now)
	return l.recTok, l.byteTok
}

// rates are the record and byte rates currently allowed.
func (l *limiter) rates() (recs, bytes float64) {
	return l.recRate * l.factor, l.byteRate * l.factor
}

// observe counts the shard's entries of a response that the service accepted.
func (l *limiter) observe(now, sentAt, accepted int64) {
	l.accepted.add(now, accepted)
	if l.judging && sentAt >= l.judgeFrom {
		l.judgeAcc += accepted
	}
}

// throttled applies the multiplicative decrease for a throttle reported on a request sent at
// sentAt, when the throttling looks like a shard over its capacity. Requests sent before the
// last decrease took effect are ignored, since their throttles describe the old rate, and so
// are throttles within decreaseSpacing of the last decrease. After a decrease the rate stays
// put while the limiter measures the accepted rate (judgeAfter, judgeWindow); a throttle
// after that decreases again only if the shard accepted about as much as before: if it
// accepted clearly less (costlyRatio), the service refuses a share of entries whatever the
// rate, so the rate goes back to where it was and no decrease follows for flatFor. It
// reports whether the rate changed.
func (l *limiter) throttled(now, sentAt int64) bool {
	if !l.adaptive {
		return false
	}
	l.lastThrottle = now
	if now < l.flatUntil {
		return false
	}
	before := -1.0
	if l.judging {
		if now < l.judgeFrom+judgeWindow {
			return false
		}
		l.judging = false
		rate := float64(l.judgeAcc) / float64(now-l.judgeFrom) * 1e9
		if rate < l.accBefore*costlyRatio {
			l.advance(now)
			l.factor = math.Max(l.factor, l.ceiling)
			l.flatUntil = now + flatFor
			return true
		}
		before = rate
	} else if sentAt < l.lastDecrease || now-l.lastDecrease < decreaseSpacing {
		return false
	}
	if before < 0 {
		before = l.accepted.rate(now)
	}
	l.accBefore = before
	l.judging, l.judgeFrom, l.judgeAcc = true, now+judgeAfter, 0
	l.advance(now)
	l.ceiling = l.factor
	l.factor = math.Max(rateFloor, l.factor*rateDecrease)
	l.lastDecrease = now
	// Drop the saved-up burst: it is what the service just refused.
	l.recTok = math.Min(l.recTok, 0)
	l.byteTok = math.Min(l.byteTok, 0)
	return true
}

// dropBurst spends the tokens saved up while the shard was quiet: after a throttle the shard
// sends at its steady rate, since the burst is what the service may just have refused.
func (l *limiter) dropBurst(now int64) {
	if !l.adaptive {
		return
	}
	l.advance(now)
	l.recTok = math.Min(l.recTok, 0)
	l.byteTok = math.Min(l.byteTok, 0)
}

// refund gives back the tokens of records the service refused without counting them against
// the shard (a throttle that was not about the shard's throughput), up to a full bucket.
func (l *limiter) refund(now, recs, bytes int64) {
	l.lastStorm = now
	l.advance(now)
	r, b := l.recRate*l.factor, l.byteRate*l.factor
	l.recTok = math.Min(r, l.recTok+float64(recs))
	l.byteTok = math.Min(b, l.byteTok+float64(bytes))
}

// stormy reports whether a throttle not about the shard's throughput (refund) was seen
// within the last second.
func (l *limiter) stormy(now int64) bool {
	return l.adaptive && l.lastStorm != 0 && now-l.lastStorm < 1e9
}

// recordsPerSecond is the record rate currently allowed.
func (l *limiter) recordsPerSecond() float64 { return l.recRate * l.factor }

// buckets counts events in one-second buckets: the current one, from at, and the one before.
type buckets struct {
	cur, prev int64
	at        int64
}

func (b *buckets) add(now, n int64) {
	if d := now - b.at; d >= 2e9 {
		b.prev, b.cur, b.at = 0, 0, now
	} else if d >= 1e9 {
		b.prev, b.cur, b.at = b.cur, 0, b.at+1e9
	}
	b.cur += n
}

// rate is the count per second over the last one to two seconds, and over at least one: a
// shorter span would count one second's budget of a shard as a higher rate.
func (b *buckets) rate(now int64) float64 {
	if now-b.at >= 2e9 {
		return 0
	}
	span := now - b.at
	n := b.cur
	if now-b.at >= 1e9 {
		// The current bucket is over: it is the one before, and the new one is empty.
		n, span = b.cur, now-b.at
	} else {
		n += b.prev
		span += 1e9
	}
	return float64(n) / float64(max(span, 1e9)) * 1e9
}
