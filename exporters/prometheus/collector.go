package shardlineprom

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shardline/shardline/metrics"
)

// DefaultBucketsPerOctave is the histogram resolution used when Options.BucketsPerOctave is
// zero: 8 buckets per power of two, each at most 12.5% wide, the resolution Prometheus's own
// native histograms default to (schema 3).
const DefaultBucketsPerOctave = 8

// Options configures a Collector. The zero value exports every series with the default
// histogram resolution.
type Options struct {
	// Level selects the series to export, as PublisherConfig.Level does for CloudWatch: a
	// series registered at a level at most Level is exported. metrics.LevelSummary exports
	// the metrics most dashboards need, metrics.LevelNone nothing. Default (zero):
	// metrics.LevelDetailed, every series.
	Level metrics.Level

	// BucketsPerOctave is how many histogram buckets each power of two is exported as: 1, 2,
	// 4, 8, 16 or 32. Shardline records 32; a smaller number merges neighbours, which keeps
	// every count exact (the merged buckets' bounds are Shardline bucket bounds) and cuts the
	// number of series, one per bucket, that a latency spanning decades costs. Default (zero):
	// DefaultBucketsPerOctave.
	BucketsPerOctave int
}

// Collector is a prometheus.Collector that reads a Shardline metrics.Registry at every scrape.
// It is safe for concurrent use and holds no state between scrapes: values come straight
// from Registry.Snapshot, which is cumulative, so several collectors or a CloudWatch
// publisher can read the same registry without disturbing each other.
//
// It is an unchecked collector (Describe sends no descriptions), because the registry's
// series appear as roles discover streams and shards. Register one Collector per registry
// in a prometheus.Registerer; two over the same registry make Gather report duplicates.
type Collector struct {
	reg       *metrics.Registry
	level     metrics.Level
	perOctave int
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector over reg. reg is the registry given to the producer's,
// consumer's or agent's Config.Metrics; one registry may serve all three.
func NewCollector(reg *metrics.Registry, opts Options) (*Collector, error) {
	if reg == nil {
		return nil, errors.New("shardlineprom: nil Registry: pass the registry the roles record into")
	}
	level := opts.Level
	if level == 0 {
		level = metrics.LevelDetailed
	}
	if level > metrics.LevelDetailed {
		return nil, fmt.Errorf("shardlineprom: Options.Level %v is not one of LevelNone, LevelSummary and LevelDetailed", level)
	}
	per := opts.BucketsPerOctave
	if per == 0 {
		per = DefaultBucketsPerOctave
	}
	if per < 1 || per > 32 || per&(per-1) != 0 {
		return nil, fmt.Errorf("shardlineprom: Options.BucketsPerOctave %d must be 1, 2, 4, 8, 16 or 32", opts.BucketsPerOctave)
	}
	return &Collector{reg: reg, level: level, perOctave: per}, nil
}

// Describe sends nothing, which makes the Collector unchecked: its series are not known in
// advance.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect reads the registry and sends one metric per series: a counter for a Shardline
// counter, a gauge for a gauge that has been set (a gauge never set is left out, as
// CloudWatch publishing leaves it out), and a histogram for a distribution. Times are
// converted to seconds, and dimensions become labels (see MetricName and LabelName).
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c.level == metrics.LevelNone {
		return
	}
	snap := c.reg.Snapshot()
	// A histogram family's series are exported with the same bucket bounds, the union of
	// the bounds any of them needs, so that sum by (le) over shards or streams adds
	// cumulative counts at matching bounds.
	bounds := map[string][]float64{}
	for _, s := range snap.Series {
		if s.Kind == metrics.KindDistribution && s.Level <= c.level {
			name := MetricName(s.Name, s.Kind, s.Unit)
			bounds[name] = c.addBounds(bounds[name], s.Distribution, scaleOf(s.Unit).divisor)
		}
	}
	for name, b := range bounds {
		slices.Sort(b)
		bounds[name] = slices.Compact(b)
	}
	label := map[string]string{} // dimension name -> label name, for this scrape
	for _, s := range snap.Series {
		if s.Level > c.level || s.Kind == metrics.KindGauge && !s.GaugeSet {
			continue
		}
		name := MetricName(s.Name, s.Kind, s.Unit)
		labels := make([]string, len(s.Dimensions))
		values := make([]string, len(s.Dimensions))
		for i, d := range s.Dimensions {
			l, ok := label[d.Name]
			if !ok {
				l = LabelName(d.Name)
				label[d.Name] = l
			}
			labels[i], values[i] = l, d.Value
		}
		desc := prometheus.NewDesc(name, help(s.Name, s.Unit), labels, nil)
		div := scaleOf(s.Unit).divisor
		var m prometheus.Metric
		var err error
		switch s.Kind {
		case metrics.KindCounter:
			m, err = prometheus.NewConstMetric(desc, prometheus.CounterValue, float64(s.Counter), values...)
		case metrics.KindGauge:
			m, err = prometheus.NewConstMetric(desc, prometheus.GaugeValue, s.Gauge/div, values...)
		case metrics.KindDistribution:
			d := s.Distribution
			m, err = prometheus.NewConstHistogram(desc, uint64(d.Count), d.Sum/div, c.cumulative(d, div, bounds[name]), values...)
		default:
			continue
		}
		if err != nil {
			m = prometheus.NewInvalidMetric(desc, err)
		}
		ch <- m
	}
}

// help is the HELP text of a metric: the meaning from metrics.Definitions and the Shardline
// name, so a reader can find the metric in Shardline's documentation and in CloudWatch.
func help(name string, unit metrics.Unit) string {
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
// the Shardline bucket b: with 32 buckets per octave b's own, with fewer the bound of the
// group of neighbours b falls in. Shardline's bounds are exact binary fractions of their
// power of two, so a group's bound is one of them and the grouping is exact.
func (c *Collector) upperBound(b metrics.Bucket) float64 {
	if math.IsInf(b.Lower, -1) || math.IsInf(b.Upper, 1) {
		return b.Upper // the buckets below and above the histogram's range stay whole
	}
	frac, exp := math.Frexp(b.Lower) // b.Lower = frac × 2^exp, frac in [0.5, 1)
	base := math.Ldexp(1, exp-1)
	group := math.Floor((2*frac - 1) * float64(c.perOctave))
	return base * (1 + (group+1)/float64(c.perOctave))
}

// addBounds appends the exported bounds, in Prometheus's unit, of d's non-empty buckets.
func (c *Collector) addBounds(dst []float64, d metrics.DistributionSnapshot, div float64) []float64 {
	for _, b := range d.Buckets() {
		if u := c.upperBound(b); !math.IsInf(u, 1) {
			dst = append(dst, u/div)
		}
	}
	return dst
}

// cumulative returns the Prometheus buckets of d: for every bound, how many observations
// lie below it. An observation equal to a bound counts in the bucket above it, as Shardline
// buckets include their lower bound; Prometheus's le reads "less than or equal", so only a
// value exactly on a bound is counted one bucket higher than Prometheus would.
func (c *Collector) cumulative(d metrics.DistributionSnapshot, div float64, bounds []float64) map[float64]uint64 {
	out := make(map[float64]uint64, len(bounds))
	buckets := d.Buckets()
	var below uint64
	i := 0
	for _, le := range bounds {
		for i < len(buckets) && c.upperBound(buckets[i])/div <= le {
			below += uint64(buckets[i].Count)
			i++
		}
		out[le] = below
	}
	return out
}
