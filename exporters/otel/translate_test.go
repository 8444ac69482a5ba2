package shardlineotel_test

import (
	"context"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	shardlineotel "github.com/shardline/shardline/exporters/otel"
	"github.com/shardline/shardline/metrics"
)

// Through OpenTelemetry's own Prometheus exporter, the bridge's metrics get the names the
// Prometheus collector of exporters/prometheus gives them (its package documentation has the
// table), so one dashboard serves both set-ups.
func TestPrometheusTranslationGivesCollectorNames(t *testing.T) {
	reg := metrics.NewRegistry()
	s := metrics.Dim(metrics.DimStreamName, "s")
	for _, d := range metrics.Definitions() {
		switch d.Kind {
		case metrics.KindCounter:
			reg.Counter(d.Name, d.Unit, d.Level, s).Add(1)
		case metrics.KindGauge:
			reg.Gauge(d.Name, d.Unit, d.Level, s).Set(1)
		case metrics.KindDistribution:
			reg.Distribution(d.Name, d.Unit, d.Level, s).Observe(1)
		}
	}
	bridge, err := shardlineotel.NewProducer(reg, shardlineotel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pr := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(pr), otelprom.WithProducer(bridge), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	defer mp.Shutdown(context.Background())
	fams, err := pr.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fams {
		got = append(got, f.GetName())
	}
	// Every name in the table of exporters/prometheus's package documentation, in its order.
	want := []string{
		"shardline_user_records_received_total",
		"shardline_user_records_pending",
		"shardline_user_records_put_total",
		"shardline_user_records_data_put_bytes_total",
		"shardline_kinesis_records_put_total",
		"shardline_kinesis_records_data_put_bytes_total",
		"shardline_errors_by_code_total",
		"shardline_all_errors_total",
		"shardline_retries_per_record",
		"shardline_buffering_time_seconds",
		"shardline_request_time_seconds",
		"shardline_user_record_expired_total",
		"shardline_user_records_per_kinesis_record",
		"shardline_kinesis_records_per_put_records_request",
		"shardline_user_records_per_put_records_request",
		"shardline_shard_map_refreshes_total",
		"shardline_throttled_records_total",
		"shardline_adaptive_rate_limit_per_second",
		"shardline_behind_latest_seconds",
		"shardline_records_processed_total",
		"shardline_processed_bytes_total",
		"shardline_processing_time_seconds",
		"shardline_record_age_seconds",
		"shardline_leases_held",
		"shardline_leases_taken_total",
		"shardline_leases_lost_total",
		"shardline_renewal_latency_seconds",
		"shardline_dynamodb_read_capacity",
		"shardline_dynamodb_write_capacity",
		"shardline_dynamodb_requests_total",
		"shardline_deaggregation_errors_total",
		"shardline_corrupt_records_total",
		"shardline_records_outside_shard_range_total",
		"shardline_shard_end_not_checkpointed_total",
		"shardline_processor_errors_total",
		"shardline_unreadable_leases",
		"shardline_retrieval_fallbacks_total",
		"shardline_lease_table_requests_per_shard_hour",
		"shardline_lines_read_total",
		"shardline_records_sent_total",
		"shardline_sent_bytes_total",
		"shardline_record_send_attempts_total",
		"shardline_record_send_errors_total",
		"shardline_service_errors_total",
		"shardline_files_tailed",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("translated names\n%v\nwant the collector's\n%v", got, want)
	}
}
