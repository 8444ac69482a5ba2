package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/shardline/shardline/internal/testenv"
)

// s3Records reads every object of a bucket that a Firehose delivery stream wrote to. Firehose
// concatenates the records it delivers; each of ours ends in a newline, so the objects split
// back into the records. moto writes one object per PutRecordBatch call.
func s3Records(t *testing.T, s3c *s3.Client, bucket string) (records []string, objects int) {
	t.Helper()
	ctx := context.Background()
	p := s3.NewListObjectsV2Paginator(s3c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			objects++
			out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range strings.SplitAfter(string(b), "\n") {
				if r != "" {
					records = append(records, r)
				}
			}
		}
	}
	return records, objects
}

// TestEndToEndFirehoseFlow: a configuration with a Firehose flow only, as many Kinesis Agent
// users have, runs: the lines of its files go through PutRecordBatch to the delivery stream
// (moto, at firehose.endpoint) and land in its S3 bucket. A flow that names both kinesisStream
// and deliveryStream goes to Firehose, as the Kinesis Agent's FileFlowFactory decides. After a
// graceful restart in the middle no line is missing or repeated: checkpoints follow Firehose's
// acknowledgements as they follow Kinesis'.
func TestEndToEndFirehoseFlow(t *testing.T) {
	fh, s3c := testenv.Firehose(t, nil), testenv.S3(t, nil)
	endpoint := testenv.FirehoseEndpoint(t)
	stream1, bucket1 := testenv.CreateDeliveryStream(t, fh, s3c)
	stream2, bucket2 := testenv.CreateDeliveryStream(t, fh, s3c)
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "agent.json")
	writeJSON(t, conf, map[string]any{
		"firehose.endpoint":      endpoint,
		"cloudwatch.emitMetrics": false,
		"flows": []any{
			map[string]any{
				"filePattern": filepath.Join(logs, "app-*.log"), "deliveryStream": stream1,
				"initialPosition": "START_OF_FILE", "maxBufferAgeMillis": 1000,
			},
			map[string]any{
				"filePattern": filepath.Join(logs, "web.log"), "deliveryStream": stream2,
				"kinesisStream": "not-used", "initialPosition": "START_OF_FILE", "maxBufferAgeMillis": 1000,
			},
		},
	})
	var app, web []string
	write := func(name, prefix string, from, to int, into *[]string) {
		f, err := os.OpenFile(filepath.Join(logs, name), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for i := from; i <= to; i++ {
			l := fmt.Sprintf("%s line %05d %s\n", prefix, i, strings.Repeat("f", i%40))
			*into = append(*into, l)
			f.WriteString(l)
		}
	}
	write("app-1.log", "app1", 1, 1500, &app)
	write("app-2.log", "app2", 1, 700, &app)
	write("web.log", "web", 1, 600, &web)
	args := []string{"-config", conf, "-state-dir", filepath.Join(dir, "state"), "-stats-interval", "100ms"}
	proc := startAgent(t, agentEnv(t), args...)
	proc.waitLinesRead(30*time.Second, len(app)+len(web), "first part")
	proc.stopGracefully(60 * time.Second)
	if w := proc.warnings(); len(w) != 1 || !strings.Contains(w[0], "kinesisStream: ignored") {
		t.Errorf("warnings %q, want only the one about kinesisStream", w)
	}
	write("app-1.log", "app1", 1501, 2500, &app)
	write("web.log", "web", 601, 1000, &web)
	proc = startAgent(t, agentEnv(t), args...)
	proc.waitLinesRead(30*time.Second, 1400, "second part")
	proc.stopGracefully(60 * time.Second)

	got1, objects1 := s3Records(t, s3c, bucket1)
	got2, objects2 := s3Records(t, s3c, bucket2)
	t.Logf("%d and %d S3 objects", objects1, objects2)
	count(app, got1).check(t)
	count(web, got2).check(t)
	if objects1 == 0 || objects1 > len(app)/10 {
		t.Errorf("%d objects for %d records: records were not batched", objects1, len(app))
	}
}
