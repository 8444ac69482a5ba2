package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/shardline/shardline/internal/testenv"
)

func appendLines(t *testing.T, path, prefix string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "%s %06d\n", prefix, i)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
}

// countLines counts each record's copies, and checks every record is one of the lines
// written with prefix, numbered 1 to n.
func countLines(t *testing.T, records []string, prefix string, n int) (unique, total int) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range records {
		var i int
		if _, err := fmt.Sscanf(r, prefix+" %d\n", &i); err != nil || i < 1 || i > n {
			t.Fatalf("unexpected record %q in the %s stream", r, prefix)
		}
		seen[r]++
	}
	for _, c := range seen {
		total += c
	}
	return len(seen), total
}

// TestReloadAddsFlowKeepingPositions: SIGHUP with a flow added to a new stream starts that
// flow, and gives its stream a producer, while the unchanged flow keeps running and its file's
// position: none of its lines is sent twice. A configuration that cannot be read is refused
// without disturbing anything. The Kinesis endpoint comes from AWS_ENDPOINT_URL_KINESIS here,
// and metrics go to CloudWatch (moto), where they are found after the stop.
func TestReloadAddsFlowKeepingPositions(t *testing.T) {
	kc := testenv.Kinesis(t, nil, func(o *kinesis.Options) { o.RetryMaxAttempts = 5 })
	endpoint := testenv.KinesisEndpoint(t)
	cwEndpoint := testenv.CloudWatchEndpoint(t)
	s1 := testenv.CreateStream(t, kc, 1)
	s2 := testenv.CreateStream(t, kc, 1)
	namespace := testenv.UniqueName(t, "ns")

	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	flow := func(pattern, stream string) map[string]any {
		return map[string]any{
			"filePattern": filepath.Join(logs, pattern), "kinesisStream": stream,
			"initialPosition": "START_OF_FILE", "maxBufferAgeMillis": 1000,
			"minTimeBetweenFilePollsMillis": 20, "rescanIntervalMillis": 200,
		}
	}
	config := func(flows ...map[string]any) map[string]any {
		return map[string]any{
			"maxSendingThreads":      4, // the Amazon Kinesis Agent's, ignored with a warning
			"cloudwatch.emitMetrics": true,
			"cloudwatch.endpoint":    cwEndpoint,
			"cloudwatch.namespace":   namespace,
			"flows":                  flows,
		}
	}
	conf := filepath.Join(dir, "agent.json")
	writeJSON(t, conf, config(flow("a-*.log", s1)))
	aLog, bLog := filepath.Join(logs, "a-1.log"), filepath.Join(logs, "b-1.log")
	appendLines(t, aLog, "a", 1, 300)
	appendLines(t, bLog, "b", 1, 200) // no flow reads it yet

	proc := startAgent(t, agentEnv(t, "AWS_ENDPOINT_URL_KINESIS="+endpoint),
		"-config", conf, "-state-dir", filepath.Join(dir, "state"))
	r1, r2 := newStreamReader(t, kc, s1), newStreamReader(t, kc, s2)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(300 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor("the first flow's lines", func() bool {
		r1.poll(t)
		u, _ := countLines(t, r1.all(), "a", 300)
		return u == 300
	})
	if n := strings.Count(proc.out.String(), "maxSendingThreads: ignored"); n != 1 {
		t.Errorf("the ignored setting was reported %d times, want once", n)
	}

	if err := os.WriteFile(conf+".tmp", []byte(`{"flows": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(conf+".tmp", conf); err != nil {
		t.Fatal(err)
	}
	proc.signal(syscall.SIGHUP)
	proc.waitLog(10*time.Second, "reload failed; the configuration in use is kept")

	writeJSON(t, conf, config(flow("a-*.log", s1), flow("b-*.log", s2)))
	proc.signal(syscall.SIGHUP)
	proc.waitLog(10*time.Second, "configuration reloaded")
	if !strings.Contains(proc.out.String(), "restarted=0") {
		t.Errorf("the unchanged flow was restarted by the reload")
	}
	appendLines(t, aLog, "a", 301, 600)
	appendLines(t, bLog, "b", 201, 400)
	waitFor("both flows' lines", func() bool {
		r1.poll(t)
		r2.poll(t)
		u1, _ := countLines(t, r1.all(), "a", 600)
		u2, _ := countLines(t, r2.all(), "b", 400)
		return u1 == 600 && u2 == 400
	})
	proc.stopGracefully(30 * time.Second)
	r1.poll(t)
	r2.poll(t)
	if u, n := countLines(t, r1.all(), "a", 600); u != 600 || n != 600 {
		t.Errorf("first stream: %d lines, %d records; want 600 of each (the reload must not send its lines again)", u, n)
	}
	if u, n := countLines(t, r2.all(), "b", 400); u != 400 || n != 400 {
		t.Errorf("second stream: %d lines, %d records; want 400 of each", u, n)
	}
	if w := proc.warnings(); len(w) > 0 {
		t.Logf("warnings: %q", w)
	}

	// The last interval's metrics are uploaded when the daemon stops.
	cw := testenv.CloudWatch(t, nil)
	out, err := cw.ListMetrics(context.Background(), &cloudwatch.ListMetricsInput{Namespace: aws.String(namespace)})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range out.Metrics {
		names[aws.ToString(m.MetricName)] = true
	}
	for _, want := range []string{"LinesRead", "RecordsSent", "UserRecordsPut"} {
		if !names[want] {
			t.Errorf("no %s metric in CloudWatch namespace %s; found %v", want, namespace, names)
		}
	}
}
