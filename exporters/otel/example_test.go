package shardlineotel_test

import (
	"context"
	"fmt"
	"log"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	shardlineotel "github.com/shardline/shardline/exporters/otel"
	"github.com/shardline/shardline/metrics"
)

// Example reads a producer's registry through the OpenTelemetry SDK. In a program, reg goes
// to producer.Config.Metrics (and consumer.Config.Metrics, agent.Config.Metrics), and the
// reader is a PeriodicReader around an OTLP exporter; here a ManualReader shows what an
// exporter receives, and two records' worth of recording stand in for the producer.
func Example() {
	reg := metrics.NewRegistry()
	stream := metrics.Dim(metrics.DimStreamName, "orders")
	reg.Counter(metrics.UserRecordsPut, metrics.UnitCount, metrics.LevelSummary, stream, metrics.Dim(metrics.DimShardID, "shardId-000000000000")).Add(2)
	buffering := reg.Distribution(metrics.BufferingTime, metrics.UnitMilliseconds, metrics.LevelSummary, stream)
	buffering.Observe(12) // milliseconds, as Shardline records times
	buffering.Observe(150)

	bridge, err := shardlineotel.NewProducer(reg, shardlineotel.Options{BucketsPerOctave: 1})
	if err != nil {
		log.Fatal(err)
	}
	reader := sdkmetric.NewManualReader(sdkmetric.WithProducer(bridge))
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		log.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				p := d.DataPoints[0]
				fmt.Printf("%s [%s] %s: %d\n", m.Name, m.Unit, p.Attributes.Encoded(attribute.DefaultEncoder()), p.Value)
			case metricdata.Histogram[float64]:
				p := d.DataPoints[0]
				mx, _ := p.Max.Value()
				fmt.Printf("%s [%s] %s: count %d, sum %g, max %g, bounds %v, counts %v\n",
					m.Name, m.Unit, p.Attributes.Encoded(attribute.DefaultEncoder()), p.Count, p.Sum, mx, p.Bounds, p.BucketCounts)
			}
		}
	}
	// Output:
	// shardline.buffering_time [s] stream_name=orders: count 2, sum 0.162, max 0.15, bounds [0.016 0.256], counts [1 1 0]
	// shardline.user_records_put [{count}] shard_id=shardId-000000000000,stream_name=orders: 2
}
