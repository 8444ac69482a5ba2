package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// This file runs the Kinesis side of the demo on `shardline emulator`, the command form of the
// kinesistest package: a local endpoint that enforces the service's per-shard write and read
// rates, request and record sizes and control-plane rates. kinesis-mock, which enforces none of
// them, stays available with -kinesis kinesis-mock.

// Kinesis backends for -kinesis.
const (
	kinesisEmulator    = "emulator"     // shardline emulator, started and stopped by the demo
	kinesisKinesisMock = "kinesis-mock" // whatever SHARDLINE_KINESIS_ENDPOINT names (make demo starts kinesis-mock)
)

// shardlinePackage is the command line's package; its emulator subcommand serves Kinesis.
const shardlinePackage = "github.com/shardline/shardline/cmd/shardline"

// emulatorProcess is a running `shardline emulator`.
type emulatorProcess struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
	err  error
}

// emulatorStartTimeout bounds the wait for the emulator's first line, its endpoint URL.
const emulatorStartTimeout = 30 * time.Second

// startEmulator starts bin's emulator subcommand on a free loopback port and returns once it
// has printed its endpoint URL. Its log goes to logPath.
func startEmulator(bin, logPath string, env []string) (*emulatorProcess, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &emulatorProcess{done: make(chan struct{})}
	p.cmd = exec.Command(bin, "emulator", "--listen", "127.0.0.1:0", "--region", region)
	p.cmd.Env = env
	p.cmd.Stderr = logf
	detach(p.cmd)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s emulator: %w", bin, err)
	}
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		line := ""
		if sc.Scan() {
			line = strings.TrimSpace(sc.Text())
		}
		first <- line
		for sc.Scan() { // nothing else is expected; keep the pipe drained
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	select {
	case p.url = <-first:
	case <-time.After(emulatorStartTimeout):
	}
	if !strings.HasPrefix(p.url, "http://") {
		_ = p.stop(5 * time.Second)
		return nil, fmt.Errorf("shardline emulator printed no endpoint URL within %v (its log: %s)", emulatorStartTimeout, tail(logPath, 5))
	}
	return p, nil
}

// stop stops the emulator with SIGTERM, as an operator would, and waits for it to exit.
func (p *emulatorProcess) stop(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("shardline emulator did not stop within %v of SIGTERM and was killed", timeout)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return fmt.Errorf("shardline emulator exited with status %d", ee.ExitCode())
	}
	return p.err
}

// buildCommands builds the given command packages into dir with one go build and returns the
// binaries' paths, in order. It runs in the module, as make demo does, and uses the same build
// cache as go run.
func buildCommands(ctx context.Context, dir string, pkgs ...string) ([]string, error) {
	if len(pkgs) == 0 {
		return nil, nil
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("building %s needs the go command: %w", strings.Join(pkgs, " "), err)
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	out, err := exec.CommandContext(ctx, goCmd, append(args, pkgs...)...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go build %s (run the demo from the repository, e.g. with make demo): %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	bins := make([]string, len(pkgs))
	for i, pkg := range pkgs {
		bins[i] = filepath.Join(dir, pkg[strings.LastIndexByte(pkg, '/')+1:])
	}
	return bins, nil
}
