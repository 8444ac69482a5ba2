package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// startEmulator runs the built command's emulator and returns it with its endpoint, read from
// the first line of its stdout.
func startEmulator(t *testing.T, bin string, args ...string) (*started, string) {
	t.Helper()
	em := startBinary(t, bin, append([]string{"emulator", "--region", "us-east-1"}, args...)...)
	var url string
	waitFor(t, "the emulator's endpoint on stdout", func() bool {
		select {
		case <-em.done:
			t.Fatalf("the emulator exited: %s", em.wait(t))
		default:
		}
		line, _, ok := strings.Cut(em.stdout.String(), "\n")
		url = line
		return ok
	})
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("first stdout line %q is not a loopback URL", url)
	}
	return em, url
}

func emulatorClient(url string) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(url),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		RetryMaxAttempts: 1,
		// A transport of its own: connections to an emulator that was stopped must never be
		// reused for the next one, which may get the same port.
		HTTPClient: &http.Client{Transport: &http.Transport{}},
	})
}

// The emulator keeps streams and records in --state across a SIGTERM and a new start.
func TestBinaryEmulatorStateSurvivesRestart(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "kinesis.state")
	envFile := filepath.Join(dir, "kinesis.env")
	ctx := context.Background()

	em, url := startEmulator(t, bin, "--state", state, "--env-file", envFile)
	env, err := os.ReadFile(envFile)
	if err != nil || !strings.Contains(string(env), "export AWS_ENDPOINT_URL_KINESIS="+url+"\n") {
		t.Fatalf("env file: %q, %v", env, err)
	}
	c := emulatorClient(url)
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("orders"), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	var want []string
	var entries []types.PutRecordsRequestEntry
	for i := range 50 {
		want = append(want, fmt.Sprint("order-", i))
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint(i)), Data: []byte(want[i])})
	}
	out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("orders"), Records: entries})
	if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("PutRecords: %v, %+v", err, out)
	}
	em.signal(t, syscall.SIGTERM)
	if r := em.wait(t); r.code != 0 {
		t.Fatalf("after SIGTERM: %s", r)
	}

	_, url2 := startEmulator(t, bin, "--state", state)
	got := readAllRecords(t, emulatorClient(url2), "orders")
	if len(got) != len(want) {
		t.Fatalf("after the restart read %d records, want %d: %v", len(got), len(want), got)
	}
	seen := map[string]bool{}
	for _, g := range got {
		seen[g] = true
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("record %q lost in the restart", w)
		}
	}
}

// A state file that is not a snapshot stops the emulator with an error naming the file.
func TestBinaryEmulatorCorruptState(t *testing.T) {
	bin := binary(t)
	state := filepath.Join(t.TempDir(), "broken.state")
	if err := os.WriteFile(state, []byte("kinesistest-snapshot v1\n{\"Streams\": [tru"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runBinary(context.Background(), t, bin, "", "emulator", "--state", state)
	expect(t, r, exitFailure, "loading --state "+state, "unusable snapshot")

	if err := os.WriteFile(state, []byte("kinesistest-snapshot v9\n{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runBinary(context.Background(), t, bin, "", "emulator", "--state", state)
	expect(t, r, exitFailure, "loading --state "+state, "format version 9")
}

// Limits on the command line reach the server: one record per second per shard refuses the
// second record.
func TestBinaryEmulatorLimits(t *testing.T) {
	bin := binary(t)
	em, url := startEmulator(t, bin, "--shard-write-records", "1")
	c := emulatorClient(url)
	ctx := context.Background()
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("a"), Data: []byte("1")}, {PartitionKey: aws.String("a"), Data: []byte("2")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(out.FailedRecordCount) != 1 || aws.ToString(out.Records[1].ErrorCode) != "ProvisionedThroughputExceededException" {
		t.Errorf("want the second entry throttled, got %+v", out.Records)
	}
	em.signal(t, syscall.SIGINT)
	if r := em.wait(t); r.code != 0 {
		t.Errorf("after SIGINT: %s", r)
	}
}

// With --access-key-id and --secret-access-key the emulator verifies signatures: the right
// secret passes, a wrong one is refused.
func TestBinaryEmulatorVerifiesSignatures(t *testing.T) {
	bin := binary(t)
	_, url := startEmulator(t, bin, "--access-key-id", "AKIDTEST", "--secret-access-key", "secret")
	ctx := context.Background()
	if _, err := emulatorClient(url).ListStreams(ctx, &kinesis.ListStreamsInput{}); err != nil {
		t.Fatalf("the right secret: %v", err)
	}
	wrong := kinesis.New(emulatorClient(url).Options(), func(o *kinesis.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider("AKIDTEST", "not-the-secret", "")
	})
	_, err := wrong.ListStreams(ctx, &kinesis.ListStreamsInput{})
	if err == nil || !strings.Contains(err.Error(), "InvalidSignatureException") {
		t.Fatalf("a wrong secret: want InvalidSignatureException, got %v", err)
	}
}

// The emulator serves the region clients read from AWS_REGION when --region is not given:
// a client signing for another region than the server's is refused.
func TestBinaryEmulatorRegionFromEnvironment(t *testing.T) {
	bin := binary(t)
	t.Setenv("AWS_REGION", "eu-west-1")
	em := startBinary(t, bin, "emulator")
	waitFor(t, "the endpoint", func() bool { return strings.Contains(em.stdout.String(), "\n") })
	url := strings.TrimSpace(em.stdout.String())
	c := kinesis.New(emulatorClient(url).Options(), func(o *kinesis.Options) { o.Region = "eu-west-1" })
	if _, err := c.ListStreams(context.Background(), &kinesis.ListStreamsInput{}); err != nil {
		t.Fatalf("a client of eu-west-1: %v", err)
	}
}

func TestBinaryEmulatorUnwritableState(t *testing.T) {
	bin := binary(t)
	state := filepath.Join(t.TempDir(), "missing-dir", "k.state")
	r := runBinary(context.Background(), t, bin, "", "emulator", "--state", state)
	expect(t, r, exitFailure, "--state "+state+": cannot write beside it")
}

func TestEmulatorUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"emulator", "--shard-write-records", "0"}, "--shard-write-records 0: must be at least 1"},
		{[]string{"emulator", "--max-record-size", "20000"}, "--max-record-size 20000: must be between 1024 and 10240"},
		{[]string{"emulator", "--updating", "-1s"}, "--updating -1s: must not be negative"},
		{[]string{"emulator", "extra"}, "expects no arguments"},
		{[]string{"emulator", "--access-key-id", "AKID"}, "--access-key-id and --secret-access-key go together"},
	} {
		r := cli(t, "", "", c.args...)
		expect(t, r, exitUsage, c.want)
	}
}

// readAllRecords reads every shard of a stream from its start.
func readAllRecords(t *testing.T, c *kinesis.Client, name string) []string {
	t.Helper()
	ctx := context.Background()
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, sh := range shards.Shards {
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs.Records {
			out = append(out, string(r.Data))
		}
	}
	return out
}
