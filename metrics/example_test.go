package metrics_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"
	"github.com/shardline/shardline/metrics"
)

func ExampleRegistry() {
	reg := metrics.NewRegistry()

	// Resolve handles once, when the shard is known; record through them on the hot path.
	shard := []metrics.Dimension{
		metrics.Dim(metrics.DimStreamName, "orders"),
		metrics.Dim(metrics.DimShardID, "shardId-000000000001"),
	}
	put := reg.Counter(metrics.UserRecordsPut, metrics.UnitCount, metrics.LevelSummary, shard...)
	buffering := reg.Distribution(metrics.BufferingTime, metrics.UnitMilliseconds, metrics.LevelSummary, shard...)
	for i := 1; i <= 100; i++ {
		put.Add(1)
		buffering.ObserveDuration(time.Duration(i) * time.Millisecond)
	}

	// A role's Stats() is built from a snapshot.
	snap := reg.Snapshot()
	fmt.Println("records put to orders:", snap.CounterSum(metrics.UserRecordsPut, metrics.Dim(metrics.DimStreamName, "orders")))
	bt := snap.MergedDistribution(metrics.BufferingTime)
	fmt.Printf("buffering time: n=%d mean=%.1fms p50=%.0fms p99=%.0fms max=%.0fms\n",
		bt.Count, bt.Mean(), bt.Quantile(0.5), bt.Quantile(0.99), bt.Max)

	// Without a registry, handles are nil and recording does nothing.
	var off *metrics.Registry
	off.Counter(metrics.UserRecordsPut, metrics.UnitCount, metrics.LevelSummary).Add(1)
	fmt.Println("series without a registry:", len(off.Snapshot().Series))
	// Output:
	// records put to orders: 100
	// buffering time: n=100 mean=50.5ms p50=50ms p99=99ms max=100ms
	// series without a registry: 0
}

// A producer's setup: one registry for the process, one publisher that uploads it.
func ExampleNewCloudWatchPublisher() {
	var cfg aws.Config // from config.LoadDefaultConfig in a real program
	reg := metrics.NewRegistry()
	pub, err := metrics.NewCloudWatchPublisher(cloudwatch.NewFromConfig(cfg), reg, metrics.PublisherConfig{
		Namespace:       "orders-producer",
		Level:           metrics.LevelSummary,
		Granularity:     metrics.GranularityStream,
		ExtraDimensions: []metrics.Dimension{metrics.Dim(metrics.DimHost, "ip-10-0-0-12")},
	})
	if err != nil {
		log.Fatal(err)
	}
	pub.Start()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := pub.Close(ctx); err != nil {
			log.Printf("metrics not flushed: %v (stats %+v)", err, pub.Stats())
		}
	}()

	// ... hand reg to the producer, which records into it ...
}

// A client for moto or another emulator must speak awsQuery.
func ExampleCloudWatchAPI_emulator() {
	var cfg aws.Config
	client := cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) {
		o.BaseEndpoint = aws.String("http://127.0.0.1:5000")
		o.Protocol = awsquery.New(schemas.GraniteServiceVersion20100801)
	})
	var _ metrics.CloudWatchAPI = client
}

// printingClient prints each datum instead of calling CloudWatch.
type printingClient struct{}

func (printingClient) PutMetricData(_ context.Context, in *cloudwatch.PutMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error) {
	for _, d := range in.MetricData {
		var dims []string
		for _, dim := range d.Dimensions {
			dims = append(dims, aws.ToString(dim.Name)+"="+aws.ToString(dim.Value))
		}
		name := fmt.Sprintf("%s %s{%s}", aws.ToString(in.Namespace), aws.ToString(d.MetricName), strings.Join(dims, ","))
		if s := d.StatisticValues; s != nil {
			fmt.Printf("%-52s samples=%g sum=%g min=%g max=%g\n", name, *s.SampleCount, *s.Sum, *s.Minimum, *s.Maximum)
		} else {
			fmt.Printf("%-52s values=%v counts=%v\n", name, d.Values, d.Counts)
		}
	}
	return &cloudwatch.PutMetricDataOutput{}, nil
}

// Flush shows what one interval sends: per-shard series rolled up to their stream and to the
// global series, counters and gauges as statistic sets, distributions as Values and Counts.
// The three observations of 12 fall in the bucket [12, 12.25): one carries the exact minimum,
// the others the bucket's midpoint.
func ExampleCloudWatchPublisher_Flush() {
	reg := metrics.NewRegistry()
	for shard, n := range []int64{30, 12} {
		dims := []metrics.Dimension{metrics.Dim(metrics.DimStreamName, "orders"), metrics.Dim(metrics.DimShardID, fmt.Sprint(shard))}
		reg.Counter(metrics.UserRecordsPut, metrics.UnitCount, metrics.LevelSummary, dims...).Add(n)
	}
	rt := reg.Distribution(metrics.RequestTime, metrics.UnitMilliseconds, metrics.LevelDetailed, metrics.Dim(metrics.DimOperation, "PutRecords"))
	for _, ms := range []float64{12, 12, 12, 40} {
		rt.Observe(ms)
	}

	pub, err := metrics.NewCloudWatchPublisher(printingClient{}, reg, metrics.PublisherConfig{Namespace: "demo"})
	if err != nil {
		log.Fatal(err)
	}
	if err := pub.Flush(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("sent %d datums in %d request(s)\n", pub.Stats().DatumsSent, pub.Stats().Requests)
	// Output:
	// demo RequestTime{Operation=PutRecords}               values=[12 12.125 40] counts=[1 2 1]
	// demo UserRecordsPut{}                                samples=2 sum=42 min=12 max=30
	// demo UserRecordsPut{StreamName=orders}               samples=2 sum=42 min=12 max=30
	// sent 3 datums in 1 request(s)
}

func ExampleNewLogSink() {
	reg := metrics.NewRegistry()
	reg.Counter(metrics.LinesRead, metrics.UnitCount, metrics.LevelSummary, metrics.Dim(metrics.DimFile, "/var/log/app.log")).Add(128)
	reg.Gauge(metrics.FilesTailed, metrics.UnitCount, metrics.LevelSummary).Set(3)

	// Drop the time so the output is reproducible.
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	sink := metrics.NewLogSink(reg, logger, time.Minute, metrics.LevelSummary)
	if err := sink.Close(context.Background()); err != nil { // logs the last interval
		log.Fatal(err)
	}
	// Output:
	// level=INFO msg=metric name=FilesTailed unit=Count value=3 min=3 max=3 samples=1
	// level=INFO msg=metric name=LinesRead unit=Count dims.File=/var/log/app.log delta=128 total=128
}
