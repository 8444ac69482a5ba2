package metrics

import (
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// statSet is a CloudWatch statistic set being built from samples.
type statSet struct {
	count, sum, min, max float64
	last                 float64
}

func (s *statSet) add(v float64) {
	if s.count == 0 {
		s.min, s.max = v, v
	} else {
		s.min = min(s.min, v)
		s.max = max(s.max, v)
	}
	s.count++
	s.sum += v
	s.last = v
}

func (s *statSet) merge(o statSet) {
	if o.count == 0 {
		return
	}
	if s.count == 0 {
		*s = o
		return
	}
	s.count += o.count
	s.sum += o.sum
	s.min = min(s.min, o.min)
	s.max = max(s.max, o.max)
	s.last = o.last
}

// point is what one series (or, after roll-up, one group of series) contributes to one
// interval.
type point struct {
	name  string
	unit  Unit
	level Level
	kind  Kind
	dims  []Dimension

	// Counters: one sample, the increase over the interval. Gauges: one sample per sampling
	// tick.
	stat statSet
	// Distributions: the interval's observations; Min and Max are lifetime hints.
	hist DistributionSnapshot
	// Counters: the cumulative total, for the log sink.
	total int64
}

// collector turns cumulative registry readings into per-interval points. Each reader (the
// CloudWatch publisher, the log sink) has its own collector, so they never disturb each
// other or the registry.
type collector struct {
	mu       sync.Mutex
	reg      *Registry
	level    Level
	interval time.Duration

	counters map[*series]int64
	dists    map[*series]DistributionSnapshot
	gauges   map[*series]*statSet
	// periodStart is the aligned start of the interval being collected; data collected at the
	// end of an interval is stamped with its start, so it lands in the CloudWatch period it
	// describes.
	periodStart time.Time
}

func newCollector(reg *Registry, level Level, interval time.Duration, now time.Time) *collector {
	return &collector{
		reg:         reg,
		level:       level,
		interval:    interval,
		counters:    map[*series]int64{},
		dists:       map[*series]DistributionSnapshot{},
		gauges:      map[*series]*statSet{},
		periodStart: now.Truncate(interval),
	}
}

func (c *collector) wants(s *series) bool {
	return c.level != LevelNone && s.level <= c.level
}

// sample takes one reading of every gauge that has been set.
func (c *collector) sample() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sampleLocked(c.reg.list())
}

func (c *collector) sampleLocked(list []*series) {
	for _, s := range list {
		if s.kind != KindGauge || !c.wants(s) {
			continue
		}
		v, ok := s.gauge.loadSet()
		if !ok {
			continue
		}
		acc := c.gauges[s]
		if acc == nil {
			acc = &statSet{}
			c.gauges[s] = acc
		}
		acc.add(v)
	}
}

// collect ends the current interval and returns its points, sorted by series, with the
// timestamp of the interval's start. Counters that did not change and distributions that saw
// nothing are left out: CloudWatch bills a custom metric for every hour it receives data, and
// a missing datapoint reads as zero in a Sum.
func (c *collector) collect(now time.Time) ([]point, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.reg.list()
	c.sampleLocked(list)

	counters := make(map[*series]int64, len(c.counters))
	dists := make(map[*series]DistributionSnapshot, len(c.dists))
	var out []point
	for _, s := range list {
		if !c.wants(s) {
			continue
		}
		p := point{name: s.name, unit: s.unit, level: s.level, kind: s.kind, dims: s.dims}
		switch s.kind {
		case KindCounter:
			cur := s.counter.Load()
			counters[s] = cur
			if d := cur - c.counters[s]; d != 0 {
				p.stat.add(float64(d))
				p.total = cur
				out = append(out, p)
			}
		case KindGauge:
			if acc := c.gauges[s]; acc != nil && acc.count > 0 {
				p.stat = *acc
				out = append(out, p)
			}
		case KindDistribution:
			cur := s.dist.Snapshot()
			dists[s] = cur
			if d := cur.since(c.dists[s]); d.Count > 0 {
				p.hist = d
				out = append(out, p)
			}
		}
	}
	// Rebuilding the maps forgets removed series.
	c.counters, c.dists = counters, dists
	clear(c.gauges)

	ts := c.periodStart
	if now.Sub(ts) >= 2*c.interval {
		// Nobody collected for a long time (a publisher flushed by hand, or a stalled
		// loop): stamping the data with a period long gone would hide it from current
		// graphs and alarms.
		ts = now.Truncate(c.interval)
	}
	c.periodStart = now.Truncate(c.interval)
	return out, ts
}

// startPeriod begins the current interval at now, for a publisher started long after it was
// created.
func (c *collector) startPeriod(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.periodStart = now.Truncate(c.interval)
}

// rollUp emits every point at each level the granularity asks for and merges the points
// that share a level's dimension set: shard series merge into their stream's series, stream
// series into the global one. Dimensions other than StreamName and ShardId are kept at every
// level, and extra dimensions are added to all (a series' own dimension wins a name clash).
func rollUp(points []point, g Granularity, extra []Dimension) []point {
	g = g.effective()
	merged := map[string]*point{}
	var order []string
	for _, p := range points {
		var targets [3][]Dimension
		n := 0
		add := func(dims []Dimension) {
			for _, t := range targets[:n] {
				if slices.Equal(t, dims) {
					return
				}
			}
			targets[n] = dims
			n++
		}
		noShard := without(p.dims, DimShardID)
		if g == GranularityShard {
			add(p.dims)
		}
		if g >= GranularityStream {
			add(noShard)
		}
		add(without(noShard, DimStreamName))

		for _, dims := range targets[:n] {
			dims = withExtra(dims, extra)
			key := seriesKey(p.name, dims)
			m := merged[key]
			if m == nil {
				q := p
				q.dims = dims
				merged[key] = &q
				order = append(order, key)
				continue
			}
			if m.kind != p.kind {
				continue // one name registered as two kinds with different dimensions
			}
			m.stat.merge(p.stat)
			m.hist = m.hist.Merge(p.hist)
			m.total += p.total
		}
	}
	slices.Sort(order)
	out := make([]point, 0, len(order))
	for _, k := range order {
		out = append(out, *merged[k])
	}
	return out
}

// without returns dims minus the named dimension, sharing dims when it has none.
func without(dims []Dimension, name string) []Dimension {
	i := slices.IndexFunc(dims, func(d Dimension) bool { return d.Name == name })
	if i < 0 {
		return dims
	}
	out := make([]Dimension, 0, len(dims)-1)
	out = append(out, dims[:i]...)
	return append(out, dims[i+1:]...)
}

// withExtra adds the extra dimensions whose names dims lacks, keeping the result sorted.
func withExtra(dims, extra []Dimension) []Dimension {
	if len(extra) == 0 {
		return dims
	}
	out := slices.Clone(dims)
	for _, e := range extra {
		if !slices.ContainsFunc(dims, func(d Dimension) bool { return d.Name == e.Name }) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Dimension) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// finite reports whether v is a value CloudWatch accepts: finite and within ±2^360.
func finite(v float64) bool {
	return !math.IsNaN(v) && math.Abs(v) <= cloudWatchMaxValue
}

var cloudWatchMaxValue = math.Ldexp(1, 360)
