package shardlineotel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/shardline/shardline/metrics"
)

// ScopeName is the instrumentation scope of the metrics the Producer exports: the package
// that records them.
const ScopeName = "github.com/shardline/shardline/metrics"

// DefaultBucketsPerOctave is the histogram resolution used when Options.BucketsPerOctave is
// zero: 8 buckets per power of two, each at most 12.5% wide.
const DefaultBucketsPerOctave = 8

// Options configures a Producer. The zero value exports every series with the default
// histogram resolution.
type Options struct {
	// Level selects the series to export, as PublisherConfig.Level does for CloudWatch: a
	// series registered at a level at most Level is exported. metrics.LevelNone exports
	// nothing. Default (zero): metrics.LevelDetailed, every series.
	Level metrics.Level

	// BucketsPerOctave is how many histogram buckets each power of two is exported as: 1, 2,
	// 4, 8, 16 or 32. Shardline records 32; fewer merge neighbours, which keeps every count
	// exact since the merged bounds are Shardline bounds. Default (zero):
	// DefaultBucketsPerOctave.
	BucketsPerOctave int
}

// Producer is an OpenTelemetry SDK metric Producer that reads a Shardline metrics.Registry
// whenever a reader collects. Pass it to a reader with sdkmetric.WithProducer. It is safe for
// concurrent use.
//
// The OpenTelemetry metrics API has no asynchronous histogram, and Shardline's histograms
// are already aggregated, so the bridge hands the SDK finished data instead of registering
// instruments: a counter is what an observable counter would give (a cumulative, monotonic
// Sum), a gauge a Gauge, a distribution a cumulative explicit-bucket Histogram with exact
// Min and Max. Data is always cumulative, whatever temporality the reader's exporter
// prefers.
type Producer struct {
	reg       *metrics.Registry
	level     metrics.Level
	perOctave int
	scope     instrumentation.Scope

	mu    sync.Mutex
	last  time.Time            // the previous Produce, or New
	start map[string]time.Time // series key -> start time of its cumulative values
}

var _ sdkmetric.Producer = (*Producer)(nil)

// NewProducer returns a Producer over reg, the registry given to the producer's, consumer's
// or agent's Config.Metrics. Create it when the program starts: a series' start time is
// when the Producer first could have seen it, so a series recorded into before the Producer
// existed gets a start time later than its first value.
func NewProducer(reg *metrics.Registry, opts Options) (*Producer, error) {
	if reg == nil {
		return nil, errors.New("shardlineotel: nil Registry: pass the registry the roles record into")
	}
	level := opts.Level
	if level == 0 {
		level = metrics.LevelDetailed
	}
	if level > metrics.LevelDetailed {
		return nil, fmt.Errorf("shardlineotel: Options.Level %v is not one of LevelNone, LevelSummary and LevelDetailed", level)
	}
	per := opts.BucketsPerOctave
	if per == 0 {
		per = DefaultBucketsPerOctave
	}
	if per < 1 || per > 32 || per&(per-1) != 0 {
		return nil, fmt.Errorf("shardlineotel: Options.BucketsPerOctave %d must be 1, 2, 4, 8, 16 or 32", opts.BucketsPerOctave)
	}
	return &Producer{
		reg: reg, level: level, perOctave: per,
		scope: instrumentation.Scope{Name: ScopeName},
		last:  time.Now(), start: map[string]time.Time{},
	}, nil
}

// Produce reads the registry into one ScopeMetrics. A gauge that was never set is left out,
// as CloudWatch publishing leaves it out.
func (p *Producer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	if p.level == metrics.LevelNone {
		return nil, nil
	}
	snap := p.reg.Snapshot()
	now := time.Now()

	// One Metrics per name and kind, in the snapshot's order; histogram series of one metric
	// share bucket bounds.
	type family struct {
		m      metricdata.Metrics
		bounds []float64
	}
	var fams []*family
	index := map[string]*family{}
	var series []metrics.SeriesSnapshot
	for _, s := range snap.Series {
		if s.Level > p.level || s.Kind == metrics.KindGauge && !s.GaugeSet {
			continue
		}
		series = append(series, s)
		key := s.Kind.String() + "\x00" + s.Name
		f := index[key]
		if f == nil {
			name, unit := MetricName(s.Name, s.Unit)
			f = &family{m: metricdata.Metrics{Name: name, Unit: unit, Description: description(s.Name, s.Unit)}}
			index[key] = f
			fams = append(fams, f)
		}
		if s.Kind == metrics.KindDistribution {
			f.bounds = p.addBounds(f.bounds, s.Distribution, scaleOf(s.Unit).divisor)
		}
	}
	for _, f := range fams {
		slices.Sort(f.bounds)
		f.bounds = slices.Compact(f.bounds)
	}

	keys := map[string]attribute.Key{} // dimension name -> attribute key, for this call
	p.mu.Lock()
	seen := make(map[string]bool, len(series))
	for _, s := range series {
		f := index[s.Kind.String()+"\x00"+s.Name]
		attrs := attributes(s.Dimensions, keys)
		div := scaleOf(s.Unit).divisor
		key := seriesKey(s)
		seen[key] = true
		start, ok := p.start[key]
		if !ok {
			// The series did not exist at the previous Produce (or this is the first).
			start = p.last
			p.start[key] = start
		}
		switch s.Kind {
		case metrics.KindCounter:
			sum, _ := f.m.Data.(metricdata.Sum[int64])
			sum.Temporality, sum.IsMonotonic = metricdata.CumulativeTemporality, true
			sum.DataPoints = append(sum.DataPoints, metricdata.DataPoint[int64]{Attributes: attrs, StartTime: start, Time: now, Value: s.Counter})
			f.m.Data = sum
		case metrics.KindGauge:
			g, _ := f.m.Data.(metricdata.Gauge[float64])
			g.DataPoints = append(g.DataPoints, metricdata.DataPoint[float64]{Attributes: attrs, Time: now, Value: s.Gauge / div})
			f.m.Data = g
		case metrics.KindDistribution:
			h, _ := f.m.Data.(metricdata.Histogram[float64])
			h.Temporality = metricdata.CumulativeTemporality
			h.DataPoints = append(h.DataPoints, p.histogramPoint(s.Distribution, div, f.bounds, attrs, start, now))
			f.m.Data = h
		}
	}
	// A series removed from the registry starts again from zero if it comes back.
	for k := range p.start {
		if !seen[k] {
			delete(p.start, k)
		}
	}
	p.last = now
	p.mu.Unlock()

	sm := metricdata.ScopeMetrics{Scope: p.scope, Metrics: make([]metricdata.Metrics, 0, len(fams))}
	for _, f := range fams {
		if f.m.Data != nil {
			sm.Metrics = append(sm.Metrics, f.m)
		}
	}
	return []metricdata.ScopeMetrics{sm}, nil
}

func seriesKey(s metrics.SeriesSnapshot) string {
	var b strings.Builder
	b.WriteString(s.Name)
	for _, d := range s.Dimensions {
		b.WriteByte(0)
		b.WriteString(d.Name)
		b.WriteByte(1)
		b.WriteString(d.Value)
	}
	return b.String()
}

// attributes converts dimensions, memoising their keys in keys: a registry has many series
// and few dimension names.
func attributes(dims []metrics.Dimension, keys map[string]attribute.Key) attribute.Set {
	kvs := make([]attribute.KeyValue, len(dims))
	for i, d := range dims {
		k, ok := keys[d.Name]
		if !ok {
			k = attribute.Key(AttributeKey(d.Name))
			keys[d.Name] = k
		}
		kvs[i] = k.String(d.Value)
	}
	return attribute.NewSet(kvs...)
}

// description is the meaning from metrics.Definitions and the Shardline name, so a reader
// can find the metric in Shardline's documentation and in CloudWatch.
func description(name string, unit metrics.Unit) string {
	if d, ok := metrics.LookupDefinition(name); ok {
		return fmt.Sprintf("%s (Shardline %s, recorded in %s).", capitalize(d.Meaning), name, d.Unit)
	}
	return fmt.Sprintf("Shardline %s, recorded in %s.", name, unit)
}

func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// upperBound returns the upper bound, in Shardline's unit, of the exported bucket that holds
// the Shardline bucket b: b's own with 32 buckets per octave, otherwise that of the group of
// neighbours b falls in, which is also a Shardline bound, so grouping is exact.
func (p *Producer) upperBound(b metrics.Bucket) float64 {
	if math.IsInf(b.Lower, -1) || math.IsInf(b.Upper, 1) {
		return b.Upper
	}
	frac, exp := math.Frexp(b.Lower) // b.Lower = frac × 2^exp, frac in [0.5, 1)
	base := math.Ldexp(1, exp-1)
	group := math.Floor((2*frac - 1) * float64(p.perOctave))
	return base * (1 + (group+1)/float64(p.perOctave))
}

func (p *Producer) addBounds(dst []float64, d metrics.DistributionSnapshot, div float64) []float64 {
	for _, b := range d.Buckets() {
		if u := p.upperBound(b); !math.IsInf(u, 1) {
			dst = append(dst, u/div)
		}
	}
	return dst
}

// histogramPoint converts d. OpenTelemetry's bucket i holds values in (bounds[i-1],
// bounds[i]]; a Shardline bucket holds its lower bound, so only a value exactly on a bound
// lands one bucket higher than OpenTelemetry's definition says.
func (p *Producer) histogramPoint(d metrics.DistributionSnapshot, div float64, bounds []float64, attrs attribute.Set, start, now time.Time) metricdata.HistogramDataPoint[float64] {
	counts := make([]uint64, len(bounds)+1)
	for _, b := range d.Buckets() {
		u := p.upperBound(b)
		i := len(bounds) // the overflow bucket, for the top of Shardline's range
		if !math.IsInf(u, 1) {
			i, _ = slices.BinarySearch(bounds, u/div)
		}
		counts[i] += uint64(b.Count)
	}
	pt := metricdata.HistogramDataPoint[float64]{
		Attributes: attrs, StartTime: start, Time: now,
		Count: uint64(d.Count), Sum: d.Sum / div, Bounds: bounds, BucketCounts: counts,
	}
	if d.Count > 0 {
		pt.Min, pt.Max = metricdata.NewExtrema(d.Min/div), metricdata.NewExtrema(d.Max/div)
	}
	return pt
}
