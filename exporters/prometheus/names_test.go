package shardlineprom

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/shardline/shardline/metrics"
)

func TestMetricName(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind metrics.Kind
		unit metrics.Unit
		want string
	}{
		{metrics.UserRecordsPut, metrics.KindCounter, metrics.UnitCount, "shardline_user_records_put_total"},
		{metrics.BufferingTime, metrics.KindDistribution, metrics.UnitMilliseconds, "shardline_buffering_time_seconds"},
		{metrics.MillisBehindLatest, metrics.KindGauge, metrics.UnitMilliseconds, "shardline_behind_latest_seconds"},
		{metrics.BytesProcessed, metrics.KindCounter, metrics.UnitBytes, "shardline_processed_bytes_total"},
		{metrics.UserRecordsDataPut, metrics.KindCounter, metrics.UnitBytes, "shardline_user_records_data_put_bytes_total"},
		{metrics.DynamoDBReadCapacity, metrics.KindDistribution, metrics.UnitCount, "shardline_dynamodb_read_capacity"},
		{metrics.AdaptiveRateLimit, metrics.KindGauge, metrics.UnitCountPerSecond, "shardline_adaptive_rate_limit_per_second"},
		{"RequestTime", metrics.KindDistribution, metrics.UnitMicroseconds, "shardline_request_time_seconds"},
		{"Bytes", metrics.KindCounter, metrics.UnitBytes, "shardline_bytes_bytes_total"}, // nothing left without the unit word
		{"HTTPRequests", metrics.KindCounter, metrics.UnitCount, "shardline_http_requests_total"},
		{"weird name-1", metrics.KindGauge, metrics.UnitNone, "shardline_weird_name_1"},
	} {
		if got := MetricName(tc.name, tc.kind, tc.unit); got != tc.want {
			t.Errorf("MetricName(%q, %v, %v) = %q, want %q", tc.name, tc.kind, tc.unit, got, tc.want)
		}
	}
}

func TestLabelName(t *testing.T) {
	for dim, want := range map[string]string{
		metrics.DimStreamName: "stream_name",
		metrics.DimShardID:    "shard_id",
		metrics.DimWorkerID:   "worker_identifier",
		metrics.DimErrorCode:  "error_code",
		metrics.DimTableName:  "table_name",
		metrics.DimFile:       "file",
		"9Lives":              "dim_9_lives",
		"":                    "dim_",
	} {
		if got := LabelName(dim); got != want {
			t.Errorf("LabelName(%q) = %q, want %q", dim, got, want)
		}
	}
}

// nameTable renders every Shardline metric's Prometheus name as the table in doc.go.
func nameTable() string {
	var b strings.Builder
	row := func(a, c string) { b.WriteString(strings.TrimRight(fmt.Sprintf("//\t%-35s %s", a, c), " ") + "\n") }
	row("Shardline name", "Prometheus name")
	row(strings.Repeat("-", 34), strings.Repeat("-", 52))
	for _, d := range metrics.Definitions() {
		row(d.Name, MetricName(d.Name, d.Kind, d.Unit)+" ("+kindName(d.Kind)+")")
	}
	return b.String()
}

func kindName(k metrics.Kind) string {
	if k == metrics.KindDistribution {
		return "histogram"
	}
	return k.String()
}

// TestDocTableMatchesNames keeps the table of names in the package documentation in step
// with MetricName and metrics.Definitions. On failure it prints the table for doc.go.
func TestDocTableMatchesNames(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	if want := nameTable(); !strings.Contains(string(src), want) {
		t.Fatalf("the table in doc.go differs from MetricName; it should read:\n%s", want)
	}
}
