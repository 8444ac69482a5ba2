package iam

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shardline/shardline/internal/testenv"
)

// recordingProxy forwards to the emulator at target through rec, so that a separate process
// (the agent) can be given its URL as its endpoint.
func recordingProxy(t *testing.T, target string, rec *recorder) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = rec
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestAgentRoleCalls runs the shardline-agent binary on a log file, with its Kinesis and
// CloudWatch endpoints behind recording proxies, stops it with SIGTERM, and checks that the
// README's rule holds: the agent needs the producer's policy, exactly.
func TestAgentRoleCalls(t *testing.T) {
	rec := &recorder{next: http.DefaultTransport}
	kinesisURL := recordingProxy(t, testenv.KinesisEndpoint(t), rec)
	cloudwatchURL := recordingProxy(t, testenv.CloudWatchEndpoint(t), rec)
	stream := testenv.CreateStream(t, testenv.Kinesis(t, nil), 1)
	goTool, err := exec.LookPath("go")
	if err != nil {
		testenv.Unavailable(t, "no go command to build the agent with: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "shardline-agent")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin, "../cmd/shardline-agent").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	logFile := filepath.Join(dir, "app.log")
	var lines strings.Builder
	for i := range 20 {
		fmt.Fprintf(&lines, "line %d\n", i)
	}
	if err := os.WriteFile(logFile, []byte(lines.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	conf, err := json.Marshal(map[string]any{
		"kinesis.endpoint":       kinesisURL,
		"cloudwatch.endpoint":    cloudwatchURL,
		"cloudwatch.emitMetrics": true,
		"flows": []any{map[string]any{
			"filePattern":        logFile,
			"kinesisStream":      stream,
			"initialPosition":    "START_OF_FILE",
			"maxBufferAgeMillis": 1000,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	none := filepath.Join(dir, "none")
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-config", confPath, "-state-dir", filepath.Join(dir, "state"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=" + none, "AWS_SHARED_CREDENTIALS_FILE=" + none}
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(time.Minute)
	for !slices.Contains(rec.actions(), "kinesis:PutRecords") {
		select {
		case err := <-exited:
			t.Fatalf("the agent exited (%v) before sending; its output:\n%s", err, out.String())
		case <-deadline:
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("the agent sent nothing; its output:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Fatalf("the agent's stop: %v\n%s", err, out.String())
	}
	if got, want := rec.actions(), granted(t, "producer"); !slices.Equal(got, want) {
		t.Errorf("the agent called %v; the producer's policy, which the README gives it, grants %v\n%s", got, want, out.String())
	}
}
