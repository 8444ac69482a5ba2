package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/compression"
)

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// agentBinary builds the command once per test run, with -race when the tests have it, so the
// build reuses the packages compiled for the tests and the daemon runs under the detector too.
func agentBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("no go command to build with: %w", err)
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "shardline-agent-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "shardline-agent")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, goTool, append(args, ".")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// agentEnv is the environment of the daemon under test: the test's, without any AWS setting
// that could reach a real account, plus the emulators' placeholder credentials and region.
func agentEnv(t *testing.T, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	none := filepath.Join(t.TempDir(), "none")
	env = append(env,
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE="+none, "AWS_SHARED_CREDENTIALS_FILE="+none)
	return append(env, extra...)
}

// agentProc is one run of the daemon as a real process.
type agentProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func startAgent(t *testing.T, env []string, args ...string) *agentProc {
	t.Helper()
	p := &agentProc{t: t, out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(agentBinary(t), args...)
	p.cmd.Env = env
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("output of agent process %d:\n%s", p.cmd.Process.Pid, p.out.String())
		}
	})
	return p
}

func (p *agentProc) signal(sig syscall.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the process to end and returns its exit code (-1 when a signal ended it).
func (p *agentProc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("the agent did not exit within %v", timeout)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatal(p.err)
	}
	return 0
}

// kill ends the process with SIGKILL, as a crash or the OOM killer would.
func (p *agentProc) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

// stopGracefully sends SIGTERM and expects a clean exit.
func (p *agentProc) stopGracefully(timeout time.Duration) {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	if code := p.wait(timeout); code != 0 {
		p.t.Fatalf("exit code %d after SIGTERM", code)
	}
	if !strings.Contains(p.out.String(), "stopped; checkpoints saved") {
		p.t.Errorf("the agent did not report its checkpoints saved")
	}
}

// waitLog waits until the output contains s.
func (p *agentProc) waitLog(timeout time.Duration, s string) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.out.String(), s) {
		if time.Now().After(deadline) {
			p.t.Fatalf("no %q in the agent's output within %v", s, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var ackedRe = regexp.MustCompile(`msg=progress .*\backed=(\d+)`)

// maxAckStep is the largest increase of the acknowledged count between two progress lines.
func (p *agentProc) maxAckStep() int {
	prev, step := 0, 0
	for _, m := range ackedRe.FindAllStringSubmatch(p.out.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		step = max(step, n-prev)
		prev = n
	}
	return step
}

// warnings returns the output's WARN and ERROR lines.
func (p *agentProc) warnings() []string {
	var out []string
	for _, l := range strings.Split(p.out.String(), "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			out = append(out, l)
		}
	}
	return out
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	// Written aside and renamed, as a configuration management tool would, so a reload never
	// reads half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// streamReader reads a stream back from TRIM_HORIZON, shard by shard, undoing compression and
// aggregation, and remembers where it stopped so later polls read only what is new.
type streamReader struct {
	kc     *kinesis.Client
	stream string
	iters  map[string]string
	shards []string
	// users holds each shard's user records in stream order.
	users map[string][]string
	// kinesisRecords counts the Kinesis records read, to show how well lines were packed.
	kinesisRecords int
}

func newStreamReader(t *testing.T, kc *kinesis.Client, stream string) *streamReader {
	t.Helper()
	ctx := context.Background()
	out, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	r := &streamReader{kc: kc, stream: stream, iters: map[string]string{}, users: map[string][]string{}}
	for _, sh := range out.Shards {
		id := aws.ToString(sh.ShardId)
		it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: aws.String(id), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatal(err)
		}
		r.shards = append(r.shards, id)
		r.iters[id] = aws.ToString(it.ShardIterator)
	}
	return r
}

// poll reads every shard up to its tip.
func (r *streamReader) poll(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, id := range r.shards {
		for r.iters[id] != "" {
			out, err := r.kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String(r.iters[id]), Limit: aws.Int32(10000)})
			var throttled *types.ProvisionedThroughputExceededException
			if errors.As(err, &throttled) {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			if err != nil {
				t.Fatalf("GetRecords on %s: %v", id, err)
			}
			r.iters[id] = aws.ToString(out.NextShardIterator)
			for _, rec := range out.Records {
				r.kinesisRecords++
				data, err := compression.Decode(rec.Data)
				if err != nil {
					t.Fatalf("record %s: %v", aws.ToString(rec.SequenceNumber), err)
				}
				users, err := aggregation.Deaggregate(nil, data, aws.ToString(rec.PartitionKey), "")
				if err != nil {
					t.Fatalf("record %s: %v", aws.ToString(rec.SequenceNumber), err)
				}
				for _, u := range users {
					r.users[id] = append(r.users[id], string(u.Data))
				}
			}
			if len(out.Records) == 0 {
				break
			}
		}
	}
}

// all returns every user record of every shard.
func (r *streamReader) all() []string {
	var out []string
	for _, id := range r.shards {
		out = append(out, r.users[id]...)
	}
	return out
}
