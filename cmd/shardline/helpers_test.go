package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/internal/testenv"
)

// awsEnv points the standard AWS configuration at test values, so that the commands load
// their configuration as they would for a user, yet no shared config file, profile or
// instance role of the machine running the tests is consulted. It returns the kinesis-mock
// endpoint.
func awsEnv(t *testing.T) string {
	t.Helper()
	ep := testenv.KinesisEndpoint(t)
	testAWSConfig(t)
	return ep
}

// testAWSConfig is awsEnv without kinesis-mock, for tests that bring their own endpoint.
func testAWSConfig(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           "test",
		"AWS_SECRET_ACCESS_KEY":       "test",
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  testenv.Region,
		"AWS_DEFAULT_REGION":          "",
		"AWS_PROFILE":                 "",
		"AWS_DEFAULT_PROFILE":         "",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),      // absent on purpose
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"), // absent on purpose
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_ENDPOINT_URL":            "",
		"AWS_ENDPOINT_URL_KINESIS":    "",
		"TERM":                        "dumb",
	} {
		t.Setenv(k, v)
	}
}

// result is what one command line did.
type result struct {
	code   int
	stdout string
	stderr string
}

func (r result) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

// cli runs a command line in-process against the endpoint, with stdin as standard input.
func cli(t *testing.T, ep, stdin string, args ...string) result {
	t.Helper()
	return cliCtx(context.Background(), t, ep, stdin, args...)
}

func cliCtx(ctx context.Context, t *testing.T, ep, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if ep != "" {
		args = append([]string{"--endpoint", ep}, args...)
	}
	code := run(ctx, args, strings.NewReader(stdin), &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// mustRun runs a command line that must succeed.
func mustRun(t *testing.T, ep, stdin string, args ...string) result {
	t.Helper()
	r := cli(t, ep, stdin, args...)
	if r.code != 0 {
		t.Fatalf("shardline %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// expect checks a command line's exit code and that stderr contains every one of want.
func expect(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("want exit %d, got %s", code, r)
		return
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r)
		}
	}
}

// newStream creates a stream with the CLI and deletes it when the test ends.
func newStream(t *testing.T, ep string, shards int) string {
	t.Helper()
	name := testenv.UniqueName(t, "slcli")
	mustRun(t, ep, "", "stream", "create", name, "--shards", strconv.Itoa(shards))
	cleanupStream(t, name)
	return name
}

// cleanupStream deletes the stream when the test ends, whether or not the test deleted it.
func cleanupStream(t *testing.T, name string) {
	t.Helper()
	kc := testenv.Kinesis(t, nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = kc.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(name), EnforceConsumerDeletion: aws.Bool(true)})
	})
}

// shardsOf lists a stream's shards directly, to check what the commands did.
func shardsOf(t *testing.T, name string) []types.Shard {
	t.Helper()
	out, err := testenv.Kinesis(t, nil).ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatalf("ListShards %s: %v", name, err)
	}
	return out.Shards
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
