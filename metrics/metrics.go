package metrics

import (
	"fmt"
	"slices"
	"strings"
)

// Unit is a CloudWatch standard unit. The constants are spelled exactly as CloudWatch spells
// them, so a Unit converts to types.StandardUnit without a lookup table.
type Unit string

// Units used by Shardline's metrics.
const (
	UnitCount          Unit = "Count"
	UnitBytes          Unit = "Bytes"
	UnitMilliseconds   Unit = "Milliseconds"
	UnitMicroseconds   Unit = "Microseconds"
	UnitSeconds        Unit = "Seconds"
	UnitNone           Unit = "None"
	UnitPercent        Unit = "Percent"
	UnitBytesPerSecond Unit = "Bytes/Second"
	UnitCountPerSecond Unit = "Count/Second"
)

// Level says how important a series is, as the KPL's and KCL's metrics levels do. A publisher
// configured with level L publishes a series when the series' level is at most L; LevelNone
// publishes nothing.
//
// The zero Level is not one of the constants: in a configuration it selects the default
// (LevelDetailed), and a series registered with it is treated as LevelDetailed. This keeps the
// zero PublisherConfig meaningful.
type Level uint8

// Metrics levels, in increasing order of detail.
const (
	LevelNone Level = iota + 1
	LevelSummary
	LevelDetailed
)

// effective maps the zero Level to the default.
func (l Level) effective() Level {
	if l == 0 || l > LevelDetailed {
		return LevelDetailed
	}
	return l
}

// String returns the level's name as the KPL and KCL configurations spell it.
func (l Level) String() string {
	switch l {
	case 0:
		return "DEFAULT"
	case LevelNone:
		return "NONE"
	case LevelSummary:
		return "SUMMARY"
	case LevelDetailed:
		return "DETAILED"
	}
	return fmt.Sprintf("Level(%d)", uint8(l))
}

// ParseLevel parses "none", "summary" or "detailed" in any case.
func ParseLevel(s string) (Level, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "NONE":
		return LevelNone, nil
	case "SUMMARY":
		return LevelSummary, nil
	case "DETAILED":
		return LevelDetailed, nil
	}
	return 0, fmt.Errorf("metrics: unknown level %q (want none, summary or detailed)", s)
}

// MarshalText makes a Level readable in JSON and YAML configuration files.
func (l Level) MarshalText() ([]byte, error) { return []byte(strings.ToLower(l.String())), nil }

// UnmarshalText accepts what ParseLevel accepts.
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// Granularity selects the finest dimension level a publisher emits, as the KPL's
// MetricsGranularity does. Every series is also emitted at each coarser level (see the package
// documentation), so a finer granularity multiplies the number of CloudWatch series.
//
// The zero Granularity selects the default, GranularityStream.
type Granularity uint8

// Granularities, from coarse to fine.
const (
	// GranularityGlobal drops StreamName and ShardId from every series.
	GranularityGlobal Granularity = iota + 1
	// GranularityStream keeps StreamName and drops ShardId.
	GranularityStream
	// GranularityShard keeps both. The KPL defaults to it, and with many shards the volume of
	// PutMetricData it causes gets throttled; Shardline makes it opt-in.
	GranularityShard
)

func (g Granularity) effective() Granularity {
	if g == 0 || g > GranularityShard {
		return GranularityStream
	}
	return g
}

// String returns the granularity's name as the KPL configuration spells it.
func (g Granularity) String() string {
	switch g {
	case 0:
		return "DEFAULT"
	case GranularityGlobal:
		return "GLOBAL"
	case GranularityStream:
		return "STREAM"
	case GranularityShard:
		return "SHARD"
	}
	return fmt.Sprintf("Granularity(%d)", uint8(g))
}

// ParseGranularity parses "global", "stream" or "shard" in any case.
func ParseGranularity(s string) (Granularity, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "GLOBAL":
		return GranularityGlobal, nil
	case "STREAM":
		return GranularityStream, nil
	case "SHARD":
		return GranularityShard, nil
	}
	return 0, fmt.Errorf("metrics: unknown granularity %q (want global, stream or shard)", s)
}

// MarshalText makes a Granularity readable in configuration files.
func (g Granularity) MarshalText() ([]byte, error) { return []byte(strings.ToLower(g.String())), nil }

// UnmarshalText accepts what ParseGranularity accepts.
func (g *Granularity) UnmarshalText(b []byte) error {
	v, err := ParseGranularity(string(b))
	if err != nil {
		return err
	}
	*g = v
	return nil
}

// Kind is the kind of a series.
type Kind uint8

// Series kinds.
const (
	KindCounter Kind = iota + 1
	KindGauge
	KindDistribution
)

// String returns "counter", "gauge" or "distribution".
func (k Kind) String() string {
	switch k {
	case KindCounter:
		return "counter"
	case KindGauge:
		return "gauge"
	case KindDistribution:
		return "distribution"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Dimension is a CloudWatch dimension: a name and a value that, with the metric name,
// identify a series.
type Dimension struct {
	Name  string // 1-255 printable ASCII characters, not starting with ':'
	Value string // 1-1024 printable ASCII characters
}

// Dim is shorthand for Dimension{Name: name, Value: value}.
func Dim(name, value string) Dimension { return Dimension{Name: name, Value: value} }

// Dimension names. StreamName and ShardId take part in roll-up (see Granularity); every other
// dimension is kept at every level.
const (
	DimStreamName   = "StreamName"
	DimShardID      = "ShardId"
	DimOperation    = "Operation"
	DimErrorCode    = "ErrorCode"
	DimWorkerID     = "WorkerIdentifier"
	DimFile         = "File"
	DimTableName    = "TableName"
	DimConsumerName = "ConsumerName"
	DimHost         = "Host"
)

// canonicalDims returns a sorted copy of dims with one entry per name. The last value given
// for a name wins, because CloudWatch rejects a datum that repeats a dimension name and a
// series must not depend on the order its dimensions were listed in.
func canonicalDims(dims []Dimension) []Dimension {
	if len(dims) == 0 {
		return nil
	}
	out := make([]Dimension, 0, len(dims))
	for _, d := range dims {
		if i := slices.IndexFunc(out, func(o Dimension) bool { return o.Name == d.Name }); i >= 0 {
			out[i].Value = d.Value
			continue
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Dimension) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// seriesKey identifies a series by name and canonical dimensions. The separators are bytes
// CloudWatch does not allow in names, so distinct series never share a key.
func seriesKey(name string, dims []Dimension) string {
	var b strings.Builder
	n := len(name)
	for _, d := range dims {
		n += len(d.Name) + len(d.Value) + 2
	}
	b.Grow(n)
	b.WriteString(name)
	for _, d := range dims {
		b.WriteByte(0)
		b.WriteString(d.Name)
		b.WriteByte(1)
		b.WriteString(d.Value)
	}
	return b.String()
}

// hasAll reports whether dims contains every dimension in match.
func hasAll(dims, match []Dimension) bool {
	for _, m := range match {
		if !slices.Contains(dims, m) {
			return false
		}
	}
	return true
}
