package shardlineotel_test

import (
	"context"
	"fmt"
	"testing"

	shardlineotel "github.com/shardline/shardline/exporters/otel"
	"github.com/shardline/shardline/metrics"
)

// shardRegistry records what a producer writing to one stream of n shards registers per
// shard, with a latency spread over three decades in every shard's distribution.
func shardRegistry(n int) *metrics.Registry {
	reg := metrics.NewRegistry()
	for i := range n {
		d := []metrics.Dimension{metrics.Dim(metrics.DimStreamName, "orders"), metrics.Dim(metrics.DimShardID, fmt.Sprintf("shardId-%012d", i))}
		for _, name := range []string{metrics.UserRecordsPut, metrics.UserRecordsDataPut, metrics.KinesisRecordsPut, metrics.KinesisRecordsDataPut, metrics.ThrottledRecords} {
			reg.Counter(name, metrics.UnitCount, metrics.LevelSummary, d...).Add(int64(1000 + i))
		}
		reg.Gauge(metrics.AdaptiveRateLimit, metrics.UnitCountPerSecond, metrics.LevelDetailed, d...).Set(1500)
		pt := reg.Distribution(metrics.ProcessingTime, metrics.UnitMilliseconds, metrics.LevelSummary, d...)
		for v := 1.0; v < 1000; v *= 1.05 {
			pt.Observe(v)
		}
	}
	return reg
}

// BenchmarkProduce is the cost of one collection of a 64-shard stream's series.
func BenchmarkProduce(b *testing.B) {
	p, err := shardlineotel.NewProducer(shardRegistry(64), shardlineotel.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Produce(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
