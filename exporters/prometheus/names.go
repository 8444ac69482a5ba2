package shardlineprom

import (
	"slices"
	"strings"

	"github.com/shardline/shardline/exporters/internal/metricname"
	"github.com/shardline/shardline/metrics"
)

// Prefix starts the name of every metric the Collector exports.
const Prefix = "shardline_"

// unitScale says how a Shardline unit is exported: the suffix the Prometheus naming
// conventions ask for, the divisor that converts a value to the base unit the suffix names
// (Prometheus uses seconds, never milliseconds), and the words that say the unit in a
// Shardline name and would repeat it (MillisBehindLatest, BytesProcessed).
type unitScale struct {
	suffix  string
	divisor float64
	words   []string
}

func scaleOf(u metrics.Unit) unitScale {
	switch u {
	case metrics.UnitMilliseconds:
		return unitScale{"_seconds", 1e3, []string{"millis", "milliseconds"}}
	case metrics.UnitMicroseconds:
		return unitScale{"_seconds", 1e6, []string{"micros", "microseconds"}}
	case metrics.UnitSeconds:
		return unitScale{"_seconds", 1, []string{"seconds"}}
	case metrics.UnitBytes:
		return unitScale{"_bytes", 1, []string{"bytes"}}
	case metrics.UnitBytesPerSecond:
		return unitScale{"_bytes_per_second", 1, []string{"bytes"}}
	case metrics.UnitCountPerSecond:
		return unitScale{"_per_second", 1, nil}
	case metrics.UnitPercent:
		return unitScale{"_percent", 1, []string{"percent"}}
	}
	return unitScale{"", 1, nil} // Count, None and units Shardline does not use
}

// MetricName returns the Prometheus name under which the Collector exports a Shardline series
// of this name, kind and unit: Prefix, the name in snake_case without words that repeat the
// unit, the unit's suffix (_seconds, _bytes, _per_second, ...), and _total for counters.
// UserRecordsPut becomes shardline_user_records_put_total, BufferingTime (milliseconds)
// shardline_buffering_time_seconds, BytesProcessed shardline_processed_bytes_total and
// MillisBehindLatest shardline_behind_latest_seconds.
func MetricName(name string, kind metrics.Kind, unit metrics.Unit) string {
	sc := scaleOf(unit)
	words := metricname.SplitWords(name)
	kept := words[:0:0]
	for _, w := range words {
		if !slices.Contains(sc.words, w) {
			kept = append(kept, w)
		}
	}
	if len(kept) == 0 {
		kept = words
	}
	n := Prefix + strings.Join(kept, "_") + sc.suffix
	if kind == metrics.KindCounter {
		n += "_total"
	}
	return n
}

// LabelName returns the Prometheus label a Shardline dimension becomes: its name in
// snake_case, so StreamName is stream_name and ShardId shard_id.
func LabelName(dimension string) string {
	n := strings.Join(metricname.SplitWords(dimension), "_")
	if n == "" || n[0] >= '0' && n[0] <= '9' || strings.HasPrefix(n, "__") {
		// Prometheus reserves names starting with __ and forbids a leading digit.
		n = "dim_" + n
	}
	return n
}
