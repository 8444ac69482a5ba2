package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// This file runs the shardline-agent daemon as it runs in production: its own process, with an
// agent.json, stopped with SIGTERM. The demo reads the daemon's progress lines (one a second)
// for the records it delivered.

// agentPackage is the daemon's package, built with go build.
const agentPackage = "github.com/shardline/shardline/cmd/shardline-agent"

// agentConfig is the demo's agent.json: one flow from the access log and its rotated files to
// the stream, each line parsed into JSON.
func agentConfig(kinesisEndpoint, region, stateDir, logDir, stream string) ([]byte, error) {
	flow := map[string]any{
		// The pattern covers the rotated files too, so that the agent reads a renamed file to
		// its end and recognises the copy copytruncate makes.
		"filePattern":     filepath.Join(logDir, "access.log*"),
		"kinesisStream":   stream,
		"initialPosition": "START_OF_FILE",
		// Each client's requests go to one shard, in order: the partition key is the parsed
		// host field, the client's address.
		"partitionKeyField": "host",
		// The Amazon Kinesis Agent's default buffer age is a minute; a demo wants records in
		// the stream within a second (the least the setting allows). At this rate
		// aggregation fills Kinesis records well before that anyway.
		"maxBufferAgeMillis":   1000,
		"rescanIntervalMillis": 1000,
		"dataProcessingOptions": []map[string]any{
			{"optionName": "LOGTOJSON", "logFormat": "COMBINEDAPACHELOG"},
		},
	}
	cfg := map[string]any{
		"kinesis.endpoint":         kinesisEndpoint,
		"kinesis.region":           region,
		"cloudwatch.emitMetrics":   false,
		"stateDirectory":           stateDir,
		"checkpointIntervalMillis": 1000,
		"shutdownTimeoutMillis":    10000,
		"flows":                    []any{flow},
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// agentProcess is the running daemon.
type agentProcess struct {
	cmd  *exec.Cmd
	log  *os.File // everything the daemon logged, kept in the demo's directory
	done chan struct{}
	err  error // the exit status, once done is closed

	stopping atomic.Bool

	mu       sync.Mutex
	progress agentProgress // from the last progress line
	final    bool          // the last line read was the final one, logged at exit
}

// agentProgress are the daemon's counters from its progress lines.
type agentProgress struct {
	linesRead, acked, parseErrors int64
	kinesisRecords                int64 // Kinesis records put: aggregates of many lines
}

// startAgent starts the daemon with the given configuration file. Its log goes to logPath.
func startAgent(bin, configPath, logPath string, env []string) (*agentProcess, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &agentProcess{log: logf, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "-config", configPath, "-stats-interval", "500ms")
	p.cmd.Env = env
	p.cmd.Stdout = logf
	detach(p.cmd)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	read := make(chan struct{})
	go func() { defer close(read); p.readLog(stderr) }()
	go func() {
		<-read // Wait closes the pipe; read it to its end first
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// The daemon logs with log/slog's text handler; a progress line looks like
//
//	time=... level=INFO msg=progress linesRead=5120 recordsSent=5120 acked=4980 ...
var (
	progressLine = regexp.MustCompile(`\bmsg=(progress|"final progress")\s`)
	progressKV   = regexp.MustCompile(`\b(linesRead|acked|parseErrors|kinesisRecordsPut)=(\d+)`)
)

func (p *agentProcess) readLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(p.log, line)
		m := progressLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var pr agentProgress
		for _, kv := range progressKV.FindAllStringSubmatch(line, -1) {
			n, _ := strconv.ParseInt(kv[2], 10, 64)
			switch kv[1] {
			case "linesRead":
				pr.linesRead = n
			case "acked":
				pr.acked = n
			case "parseErrors":
				pr.parseErrors = n
			case "kinesisRecordsPut":
				pr.kinesisRecords = n
			}
		}
		p.mu.Lock()
		p.progress, p.final = pr, m[1] != "progress"
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

// stats returns the counters of the last progress line, and whether it was the final one.
func (p *agentProcess) stats() (agentProgress, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.progress, p.final
}

// exited reports whether the daemon has exited.
func (p *agentProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the daemon to stop as systemd does, with SIGTERM: it stops reading, sends the
// records in flight, saves its checkpoints and exits. After the timeout it is killed.
func (p *agentProcess) stop(timeout time.Duration) error {
	if p.stopping.CompareAndSwap(false, true) && !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("the agent did not stop within %v of SIGTERM and was killed", timeout)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return fmt.Errorf("the agent exited with status %d", ee.ExitCode())
	}
	return p.err
}

// agentEnv is the daemon's environment: the demo's, without AWS settings that could point it
// at a real account, plus the placeholder credentials the emulators accept. The endpoint and
// region are in agent.json.
func agentEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	none := filepath.Join(dir, "no-aws-config")
	return append(env, "AWS_ACCESS_KEY_ID=demo", "AWS_SECRET_ACCESS_KEY=demo",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE="+none, "AWS_SHARED_CREDENTIALS_FILE="+none)
}

// tail returns the last n lines of the daemon's log, for a report that went wrong.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
