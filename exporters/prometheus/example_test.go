package shardlineprom_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	shardlineprom "github.com/shardline/shardline/exporters/prometheus"
	"github.com/shardline/shardline/metrics"
)

// Example exports the registry a producer records into. In a program, reg goes to
// producer.Config.Metrics (and consumer.Config.Metrics, agent.Config.Metrics); here two
// records' worth of recording stand in for the producer.
func Example() {
	reg := metrics.NewRegistry()
	shard := []metrics.Dimension{metrics.Dim(metrics.DimStreamName, "orders"), metrics.Dim(metrics.DimShardID, "shardId-000000000000")}
	reg.Counter(metrics.UserRecordsPut, metrics.UnitCount, metrics.LevelSummary, shard...).Add(2)
	buffering := reg.Distribution(metrics.BufferingTime, metrics.UnitMilliseconds, metrics.LevelSummary, shard[:1]...)
	buffering.Observe(12) // milliseconds, as Shardline records times
	buffering.Observe(150)

	col, err := shardlineprom.NewCollector(reg, shardlineprom.Options{BucketsPerOctave: 1})
	if err != nil {
		log.Fatal(err)
	}
	prom := prometheus.NewRegistry()
	prom.MustRegister(col)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(prom, promhttp.HandlerOpts{}))
	_ = mux // a program serves it: go http.ListenAndServe(":9090", mux)

	// What a scrape of /metrics returns.
	text, err := testutil.GatherAndFormat(prom, expfmt.TypeTextPlain,
		"shardline_buffering_time_seconds", "shardline_user_records_put_total")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(text))
	// Output:
	// # HELP shardline_buffering_time_seconds Time from Put to the record's first send (Shardline BufferingTime, recorded in Milliseconds).
	// # TYPE shardline_buffering_time_seconds histogram
	// shardline_buffering_time_seconds_bucket{stream_name="orders",le="0.016"} 1
	// shardline_buffering_time_seconds_bucket{stream_name="orders",le="0.256"} 2
	// shardline_buffering_time_seconds_bucket{stream_name="orders",le="+Inf"} 2
	// shardline_buffering_time_seconds_sum{stream_name="orders"} 0.162
	// shardline_buffering_time_seconds_count{stream_name="orders"} 2
	// # HELP shardline_user_records_put_total User records written to the stream (Shardline UserRecordsPut, recorded in Count).
	// # TYPE shardline_user_records_put_total counter
	// shardline_user_records_put_total{shard_id="shardId-000000000000",stream_name="orders"} 2
}
