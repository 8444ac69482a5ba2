package metrics

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// Registry holds every series a process records. It is safe for concurrent use. Looking up a
// handle takes a lock, so roles resolve handles once, off the hot path (for example when the
// producer learns the shard map), and then record through the handles, which use atomics only.
//
// A nil *Registry is valid: it hands out nil handles, whose methods do nothing, so a role can
// run with metrics switched off without a branch at every call site.
type Registry struct {
	mu     sync.RWMutex
	series map[string]*series
}

// series is one registered name and dimension set with its handle.
type series struct {
	key   string
	name  string
	unit  Unit
	level Level
	kind  Kind
	dims  []Dimension

	counter *Counter
	gauge   *Gauge
	dist    *Distribution
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{series: make(map[string]*series)}
}

// Counter returns the counter for name and dims, creating it on first use. Dimensions are a
// set: their order does not matter, and if a name repeats, its last value wins. The unit and
// level given when the series is created stick; later calls get the same handle whatever unit
// and level they pass.
//
// Counter panics if name and dims are already registered as a gauge or distribution: one
// CloudWatch metric cannot be two kinds of thing.
func (r *Registry) Counter(name string, unit Unit, level Level, dims ...Dimension) *Counter {
	if r == nil {
		return nil
	}
	return r.lookup(name, unit, level, KindCounter, dims).counter
}

// Gauge returns the gauge for name and dims, creating it on first use; see Counter for how
// dimensions, unit and level are treated.
func (r *Registry) Gauge(name string, unit Unit, level Level, dims ...Dimension) *Gauge {
	if r == nil {
		return nil
	}
	return r.lookup(name, unit, level, KindGauge, dims).gauge
}

// Distribution returns the distribution for name and dims, creating it on first use; see
// Counter for how dimensions, unit and level are treated. The unit decides how
// ObserveDuration converts a time.Duration.
func (r *Registry) Distribution(name string, unit Unit, level Level, dims ...Dimension) *Distribution {
	if r == nil {
		return nil
	}
	return r.lookup(name, unit, level, KindDistribution, dims).dist
}

func (r *Registry) lookup(name string, unit Unit, level Level, kind Kind, dims []Dimension) *series {
	cd := canonicalDims(dims)
	key := seriesKey(name, cd)
	r.mu.RLock()
	s := r.series[key]
	r.mu.RUnlock()
	if s == nil {
		r.mu.Lock()
		if s = r.series[key]; s == nil {
			s = newSeries(key, name, unit, level, kind, cd)
			r.series[key] = s
		}
		r.mu.Unlock()
	}
	if s.kind != kind {
		panic(fmt.Sprintf("metrics: %s %v is a %s, not a %s", name, cd, s.kind, kind))
	}
	return s
}

func newSeries(key, name string, unit Unit, level Level, kind Kind, dims []Dimension) *series {
	s := &series{key: key, name: name, unit: unit, level: level.effective(), kind: kind, dims: dims}
	switch kind {
	case KindCounter:
		s.counter = &Counter{}
	case KindGauge:
		s.gauge = &Gauge{}
		s.gauge.v.base.Store(unsetBits)
	case KindDistribution:
		s.dist = &Distribution{h: newHistogram(), perNano: perNanosecond(unit)}
	}
	return s
}

// perNanosecond is the factor from nanoseconds to the unit. Units that are not times record
// durations in milliseconds, the unit Shardline uses for every latency.
func perNanosecond(u Unit) float64 {
	switch u {
	case UnitSeconds:
		return 1e-9
	case UnitMicroseconds:
		return 1e-3
	}
	return 1e-6
}

// Remove unregisters the series with exactly this name and dimension set and reports whether
// there was one. Its handle keeps working but is no longer snapshotted or published; a role
// removes the series of a shard it no longer owns so that a last gauge value is not published
// for ever. Whatever the series recorded since the last publication is not published.
func (r *Registry) Remove(name string, dims ...Dimension) bool {
	if r == nil {
		return false
	}
	key := seriesKey(name, canonicalDims(dims))
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.series[key]
	delete(r.series, key)
	return ok
}

// RemoveWith unregisters every series whose dimensions include all of match, for example
// every series of one shard, and returns how many it removed. With no match it removes
// nothing.
func (r *Registry) RemoveWith(match ...Dimension) int {
	if r == nil || len(match) == 0 {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for k, s := range r.series {
		if hasAll(s.dims, match) {
			delete(r.series, k)
			n++
		}
	}
	return n
}

// list returns the registered series sorted by key, so output built from it is stable.
func (r *Registry) list() []*series {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	out := make([]*series, 0, len(r.series))
	for _, s := range r.series {
		out = append(out, s)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b *series) int { return strings.Compare(a.key, b.key) })
	return out
}

// Snapshot reads every series. Values are cumulative since the series was created; the
// publisher and the log sink derive per-interval values from successive readings. A gauge
// that was never set is reported with value 0 and GaugeSet false.
func (r *Registry) Snapshot() Snapshot {
	list := r.list()
	snap := Snapshot{Series: make([]SeriesSnapshot, 0, len(list))}
	for _, s := range list {
		ss := SeriesSnapshot{
			Name:       s.name,
			Unit:       s.unit,
			Level:      s.level,
			Kind:       s.kind,
			Dimensions: slices.Clone(s.dims),
		}
		switch s.kind {
		case KindCounter:
			ss.Counter = s.counter.Load()
		case KindGauge:
			ss.Gauge, ss.GaugeSet = s.gauge.loadSet()
		case KindDistribution:
			ss.Distribution = s.dist.Snapshot()
		}
		snap.Series = append(snap.Series, ss)
	}
	return snap
}

// Counter is a cumulative int64. The zero value is not usable; get one from
// Registry.Counter. All methods are safe on a nil *Counter and then do nothing.
type Counter struct {
	v intAdder
}

// Add adds n. It does not allocate or lock; under contention from many goroutines it spreads
// over per-CPU cells instead of fighting over one cache line.
func (c *Counter) Add(n int64) {
	if c == nil {
		return
	}
	c.v.add(n)
}

// Load returns the counter's total.
func (c *Counter) Load() int64 {
	if c == nil {
		return 0
	}
	return c.v.load()
}

// Gauge is a float64 that describes a state, such as records pending or leases held. A gauge
// is published only once it has been set or added to. The zero value is not usable; get one
// from Registry.Gauge. All methods are safe on a nil *Gauge and then do nothing.
//
// Drive a gauge either with Set or with Add: Adds that race with a Set may be applied before
// or after it.
type Gauge struct {
	v floatAdder
}

// Set sets the gauge to v. NaN and infinities are ignored, as CloudWatch rejects them.
func (g *Gauge) Set(v float64) {
	if g == nil || v != v || math.IsInf(v, 0) {
		return
	}
	g.v.set(v)
}

// Add adds delta, which may be negative. NaN and infinities are ignored.
func (g *Gauge) Add(delta float64) {
	if g == nil || delta != delta || math.IsInf(delta, 0) {
		return
	}
	g.v.add(delta)
}

// Load returns the gauge's value, 0 if it was never set.
func (g *Gauge) Load() float64 {
	if g == nil {
		return 0
	}
	v, _ := g.v.load()
	return v
}

func (g *Gauge) loadSet() (float64, bool) { return g.v.load() }

// Distribution records observations such as latencies and sizes in a log-linear histogram,
// so that local snapshots can answer quantiles and CloudWatch can compute percentiles. The
// zero value is not usable; get one from Registry.Distribution. All methods are safe on a nil
// *Distribution and then do nothing.
type Distribution struct {
	h       *histogram
	perNano float64
}

// Observe records v in the distribution's unit. It does not lock, and it allocates only the
// first time a value falls in a new power of two. NaN and infinities are ignored.
func (d *Distribution) Observe(v float64) {
	if d == nil {
		return
	}
	d.h.observe(v)
}

// ObserveDuration records v converted to the distribution's unit: milliseconds for
// UnitMilliseconds, seconds for UnitSeconds, microseconds for UnitMicroseconds, and
// milliseconds for any other unit.
func (d *Distribution) ObserveDuration(v time.Duration) {
	if d == nil {
		return
	}
	d.h.observe(float64(v) * d.perNano)
}

// Snapshot returns everything observed so far.
func (d *Distribution) Snapshot() DistributionSnapshot {
	if d == nil {
		return DistributionSnapshot{}
	}
	return d.h.snapshot()
}

// Snapshot is a reading of every series in a Registry, sorted by name and then dimensions. It
// is a plain value: roles build their Stats() from it, and it stays valid after the registry
// changes.
type Snapshot struct {
	Series []SeriesSnapshot // one per registered series
}

// SeriesSnapshot is the reading of one series. Exactly one of Counter, Gauge and Distribution
// is meaningful, according to Kind.
type SeriesSnapshot struct {
	Name       string      // metric name
	Unit       Unit        // unit given when the series was created
	Level      Level       // level given when the series was created (never the zero Level)
	Kind       Kind        // which of the value fields below is meaningful
	Dimensions []Dimension // sorted by name

	Counter      int64                // KindCounter: total since creation
	Gauge        float64              // KindGauge: current value, 0 if never set
	GaugeSet     bool                 // KindGauge: the gauge was set or added to; publishers skip it until then
	Distribution DistributionSnapshot // KindDistribution: everything observed since creation
}

// Find returns the series with exactly this name and dimension set.
func (s Snapshot) Find(name string, dims ...Dimension) (SeriesSnapshot, bool) {
	cd := canonicalDims(dims)
	for _, ss := range s.Series {
		if ss.Name == name && slices.Equal(ss.Dimensions, cd) {
			return ss, true
		}
	}
	return SeriesSnapshot{}, false
}

// CounterSum adds up the counters called name whose dimensions include all of match: with
// match StreamName=s it totals every shard and error code of stream s; with no match, every
// series of the name.
func (s Snapshot) CounterSum(name string, match ...Dimension) int64 {
	var n int64
	for _, ss := range s.Series {
		if ss.Name == name && ss.Kind == KindCounter && hasAll(ss.Dimensions, match) {
			n += ss.Counter
		}
	}
	return n
}

// GaugeSum adds up the gauges called name whose dimensions include all of match.
func (s Snapshot) GaugeSum(name string, match ...Dimension) float64 {
	var v float64
	for _, ss := range s.Series {
		if ss.Name == name && ss.Kind == KindGauge && hasAll(ss.Dimensions, match) {
			v += ss.Gauge
		}
	}
	return v
}

// MergedDistribution merges the distributions called name whose dimensions include all of
// match, for example one stream's BufferingTime over all its shards.
func (s Snapshot) MergedDistribution(name string, match ...Dimension) DistributionSnapshot {
	var d DistributionSnapshot
	for _, ss := range s.Series {
		if ss.Name == name && ss.Kind == KindDistribution && hasAll(ss.Dimensions, match) {
			d = d.Merge(ss.Distribution)
		}
	}
	return d
}
