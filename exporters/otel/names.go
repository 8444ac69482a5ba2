package shardlineotel

import (
	"slices"
	"strings"

	"github.com/shardline/shardline/exporters/internal/metricname"
	"github.com/shardline/shardline/metrics"
)

// Prefix starts the name of every metric the Producer exports.
const Prefix = "shardline."

// unitScale says how a Shardline unit is exported: the UCUM unit OpenTelemetry expects,
// the divisor converting a value to it (times are exported in seconds, as the semantic
// conventions ask), the words that say the unit in a Shardline name, which are dropped, and
// a word that stays in the name because it says what is counted (bytes).
type unitScale struct {
	unit    string
	divisor float64
	words   []string
	keep    string
}

func scaleOf(u metrics.Unit) unitScale {
	switch u {
	case metrics.UnitMilliseconds:
		return unitScale{"s", 1e3, []string{"millis", "milliseconds"}, ""}
	case metrics.UnitMicroseconds:
		return unitScale{"s", 1e6, []string{"micros", "microseconds"}, ""}
	case metrics.UnitSeconds:
		return unitScale{"s", 1, []string{"seconds"}, ""}
	case metrics.UnitBytes:
		return unitScale{"By", 1, []string{"bytes"}, "bytes"}
	case metrics.UnitBytesPerSecond:
		return unitScale{"By/s", 1, []string{"bytes"}, "bytes"}
	case metrics.UnitCountPerSecond:
		return unitScale{"{count}/s", 1, nil, ""}
	case metrics.UnitPercent:
		return unitScale{"%", 1, []string{"percent"}, ""}
	case metrics.UnitCount:
		// An annotation rather than "1": translators into Prometheus read "1" on a gauge as a
		// ratio and append _ratio.
		return unitScale{"{count}", 1, nil, ""}
	}
	return unitScale{"", 1, nil, ""}
}

// MetricName returns the OpenTelemetry name and unit under which the Producer exports a
// Shardline series of this name and unit: Prefix and the name in snake_case, without words
// that repeat the unit, and with _bytes last for sizes. BufferingTime becomes
// shardline.buffering_time in s, MillisBehindLatest shardline.behind_latest in s,
// BytesProcessed shardline.processed_bytes in By and UserRecordsPut shardline.user_records_put
// in {count}. Translated into Prometheus by OpenTelemetry's rules, the names come out as the
// Prometheus collector of github.com/shardline/shardline/exporters/prometheus names them.
func MetricName(name string, unit metrics.Unit) (otelName, otelUnit string) {
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
	} else if sc.keep != "" {
		kept = append(kept, sc.keep)
	}
	return Prefix + strings.Join(kept, "_"), sc.unit
}

// AttributeKey returns the attribute a Shardline dimension becomes: its name in snake_case,
// so StreamName is stream_name and ShardId shard_id, as in the Prometheus collector.
func AttributeKey(dimension string) string {
	return strings.Join(metricname.SplitWords(dimension), "_")
}
