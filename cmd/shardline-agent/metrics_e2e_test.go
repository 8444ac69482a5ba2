package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/shardline/shardline/internal/testenv"
)

// TestKinesisAgentMetrics: with cloudwatch.kinesisAgentMetrics and no namespace, the flow's
// metrics land in CloudWatch (moto) where the Amazon Kinesis Agent's dashboards look for
// them: namespace AWSKinesisAgent, dimension Destination=KinesisStream:NAME, and the names
// its KinesisSender publishes (RecordsSent, BytesSent, RecordSendAttempts; RecordSendErrors
// too, but the publisher leaves out a counter that stayed at zero, and no send fails here).
func TestKinesisAgentMetrics(t *testing.T) {
	kc := testenv.Kinesis(t, nil)
	endpoint := testenv.KinesisEndpoint(t)
	cwEndpoint := testenv.CloudWatchEndpoint(t)
	stream := testenv.CreateStream(t, kc, 1)

	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.json")
	logFile := filepath.Join(dir, "app.log")
	writeJSON(t, conf, map[string]any{
		"kinesis.endpoint":               endpoint,
		"cloudwatch.emitMetrics":         true,
		"cloudwatch.endpoint":            cwEndpoint,
		"cloudwatch.kinesisAgentMetrics": true,
		"flows": []map[string]any{{
			"filePattern": logFile, "kinesisStream": stream,
			"initialPosition": "START_OF_FILE", "maxBufferAgeMillis": 1000,
			"minTimeBetweenFilePollsMillis": 20,
		}},
	})
	appendLines(t, logFile, "m", 1, 100)
	proc := startAgent(t, agentEnv(t), "-config", conf, "-state-dir", filepath.Join(dir, "state"))
	r := newStreamReader(t, kc, stream)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		r.poll(t)
		if u, _ := countLines(t, r.all(), "m", 100); u == 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the lines")
		}
	}
	proc.stopGracefully(30 * time.Second) // the last interval is uploaded at the stop

	cw := testenv.CloudWatch(t, nil)
	dest := "KinesisStream:" + stream
	out, err := cw.ListMetrics(t.Context(), &cloudwatch.ListMetricsInput{
		Namespace:  aws.String("AWSKinesisAgent"),
		Dimensions: []types.DimensionFilter{{Name: aws.String("Destination"), Value: aws.String(dest)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range out.Metrics {
		names[aws.ToString(m.MetricName)] = true
		for _, d := range m.Dimensions {
			if aws.ToString(d.Name) == "StreamName" && aws.ToString(m.MetricName) == "RecordsSent" {
				t.Errorf("RecordsSent has a StreamName dimension; the Kinesis Agent's has only Destination")
			}
		}
	}
	for _, want := range []string{"RecordsSent", "BytesSent", "RecordSendAttempts"} {
		if !names[want] {
			t.Errorf("no %s metric with Destination=%s in namespace AWSKinesisAgent; found %v", want, dest, names)
		}
	}
	st, err := cw.GetMetricStatistics(t.Context(), &cloudwatch.GetMetricStatisticsInput{
		Namespace: aws.String("AWSKinesisAgent"), MetricName: aws.String("RecordsSent"),
		Dimensions: []types.Dimension{{Name: aws.String("Destination"), Value: aws.String(dest)}},
		StartTime:  aws.Time(time.Now().Add(-time.Hour)), EndTime: aws.Time(time.Now().Add(time.Hour)),
		Period: aws.Int32(60), Statistics: []types.Statistic{types.StatisticSum},
	})
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, p := range st.Datapoints {
		sum += aws.ToFloat64(p.Sum)
	}
	if sum != 100 {
		t.Errorf("RecordsSent sums to %v under Destination=%s, want 100", sum, dest)
	}
}
