package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proxy sits between the binary and kinesis-mock, so that a test can hold back or refuse
// the calls of one API action (named by the X-Amz-Target header, as Kinesis's JSON protocol
// does) while the rest pass.
type proxy struct {
	*httptest.Server
	mu     sync.Mutex
	seen   map[string]int
	hold   map[string]bool // actions whose requests wait until the client gives up
	closed bool
}

func newProxy(t *testing.T, ep string) *proxy {
	t.Helper()
	target, err := url.Parse(ep)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{seen: map[string]int{}, hold: map[string]bool{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = nil
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		action := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "Kinesis_20131202.")
		p.mu.Lock()
		p.seen[action]++
		hold := p.hold[action]
		p.mu.Unlock()
		if hold {
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.shutdown)
	return p
}

func (p *proxy) count(action string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[action]
}

// actions returns the API actions called since the last call, in IAM's service:Action form,
// and starts counting afresh.
func (p *proxy) actions() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for a := range p.seen {
		out = append(out, "kinesis:"+a)
	}
	clear(p.seen)
	return out
}

func (p *proxy) holdAction(action string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold[action] = true
}

// shutdown makes the endpoint go away: open connections are closed and new ones refused,
// as when the emulator or a load balancer dies.
func (p *proxy) shutdown() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.Server.CloseClientConnections()
	p.Server.Close()
}

// started is a binary running in the background, its output collected as it comes.
type started struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	code   int
}

func startBinary(t *testing.T, bin string, args ...string) *started {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	s := &started{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	s.cmd = exec.CommandContext(ctx, bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	in, err := s.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.stdin = in
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.done)
		err := s.cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			s.code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				s.code = -int(ws.Signal()) // killed by the signal: no status of its own
			}
		}
	}()
	t.Cleanup(func() {
		_ = s.stdin.Close()
		_ = s.cmd.Process.Kill()
		<-s.done
	})
	return s
}

func (s *started) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

func (s *started) wait(t *testing.T) result {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the command did not exit; stderr so far:\n%s", s.stderr.String())
	}
	return result{code: s.code, stdout: s.stdout.String(), stderr: s.stderr.String()}
}

func lineBlock(prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%s-%d\n", prefix, i)
	}
	return b.String()
}

// TestBinarySIGTERM checks that put ended by SIGTERM exits with 143, as shells report a
// process ended by that signal, and 130 for SIGINT, each after its summary.
func TestBinarySIGTERM(t *testing.T) {
	ep := awsEnv(t)
	name := newStream(t, ep, 1)
	bin := binary(t)
	total := 0
	for _, c := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGTERM, 143}, {syscall.SIGINT, 130}} {
		total += 20
		s := startBinary(t, bin, "--endpoint", ep, "put", name, "-k", "fixed:k")
		if _, err := io.WriteString(s.stdin, lineBlock("x", 20)); err != nil {
			t.Fatal(err)
		}
		// put keeps reading stdin, which stays open, until the signal.
		waitFor(t, "put to send the lines", func() bool {
			return len(catLines(t, ep, name)) == total
		})
		s.signal(t, c.sig)
		r := s.wait(t)
		if r.code != c.code || !strings.Contains(r.stderr, "shardline: interrupted") ||
			!strings.Contains(r.stderr, "put 20 of 20 records") {
			t.Errorf("after %v: want exit %d and the summary, got %s", c.sig, c.code, r)
		}
	}
}

func catLines(t *testing.T, ep, name string) []string {
	t.Helper()
	return lines(mustRun(t, ep, "", "cat", name).stdout)
}

// TestBinarySecondInterrupt checks that a second Ctrl-C during put, while records are still
// unsent, ends put at once with a summary that accounts for every line read: here every
// PutRecords call is held without an answer, so all of them are abandoned.
func TestBinarySecondInterrupt(t *testing.T) {
	ep := awsEnv(t)
	name := newStream(t, ep, 1)
	px := newProxy(t, ep)
	px.holdAction("PutRecords")
	s := startBinary(t, binary(t), "--endpoint", px.URL, "put", name, "--close-timeout", "10m", "--record-ttl", "10m")
	if _, err := io.WriteString(s.stdin, lineBlock("y", 500)); err != nil {
		t.Fatal(err)
	}
	_ = s.stdin.Close()
	waitFor(t, "a PutRecords call", func() bool { return px.count("PutRecords") > 0 })
	s.signal(t, syscall.SIGINT)
	waitFor(t, "the first interrupt's notice", func() bool {
		return strings.Contains(s.stderr.String(), "interrupt again to quit at once")
	})
	s.signal(t, syscall.SIGINT)
	r := s.wait(t)
	if r.code != exitInterrupted || !strings.Contains(r.stderr, "put 0 of 500 records") ||
		!strings.Contains(r.stderr, "0 failed, 500 abandoned") {
		t.Errorf("want exit 130 and a summary of 500 abandoned records, got %s", r)
	}
}

// TestBinaryUnreachableEndpoint checks that put gives up soon after its endpoint goes away
// mid-run, rather than reading and expiring records for the whole record TTL (ten minutes
// here, far beyond the test's own limit), names the failure as a refused connection, and
// accounts for every line read.
func TestBinaryUnreachableEndpoint(t *testing.T) {
	ep := awsEnv(t)
	name := newStream(t, ep, 1)
	px := newProxy(t, ep)
	s := startBinary(t, binary(t), "--endpoint", px.URL, "put", name, "-k", "fixed:k", "--record-ttl", "10m")
	if _, err := io.WriteString(s.stdin, lineBlock("z", 30)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first lines to be sent", func() bool { return len(catLines(t, ep, name)) >= 30 })
	px.shutdown()
	// Keep feeding lines, as a pipe from a busy source would, until put stops reading.
	go func() {
		for i := 0; ; i++ {
			if _, err := io.WriteString(s.stdin, lineBlock(fmt.Sprint("w", i), 10)); err != nil {
				return
			}
			select {
			case <-s.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	r := s.wait(t)
	if r.code != exitFailure || !strings.Contains(r.stderr, "cannot reach the Kinesis endpoint "+strings.TrimPrefix(px.URL, "http://")+": connection refused") {
		t.Fatalf("want exit 1 naming a refused connection, got %s", r)
	}
	var sent, read, failed, abandoned int
	summary := strings.ReplaceAll(r.stderr[strings.Index(r.stderr, "put "):], ",", "")
	if _, err := fmt.Sscanf(summary, "put %d of %d records", &sent, &read); err != nil {
		t.Fatalf("no summary: %v\n%s", err, r)
	}
	tail := summary[strings.Index(summary, "retries ")+len("retries "):]
	if _, err := fmt.Sscanf(tail, "%d failed %d abandoned", &failed, &abandoned); err != nil {
		t.Fatalf("summary without counts: %v\n%s", err, r)
	}
	if sent < 30 || sent+failed+abandoned != read {
		t.Errorf("summary does not account for every line: %d sent + %d failed + %d abandoned != %d read\n%s", sent, failed, abandoned, read, r)
	}
}

// TestBinaryQuietSDKAndMissingCredentials runs the binary where no credentials exist and the
// instance metadata service refuses IMDSv2 tokens, which makes the SDK log that it falls back
// to IMDSv1. The user sees one error with the AWS CLI's hint, and no line of the SDK's own.
func TestBinaryQuietSDKAndMissingCredentials(t *testing.T) {
	awsEnv(t)
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A metadata service without IMDSv2 tokens answers the token PUT with 403, 404 or
		// 405; the SDK's feature/ec2/imds token provider (token_provider.go) then logs a
		// warning and falls back to IMDSv1, whose credentials path answers 404 here: no role.
		http.NotFound(w, r)
	}))
	defer imds.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)
	ln, err := net.Listen("tcp", "127.0.0.1:0") // an endpoint that must never be called
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := runBinary(ctx, t, binary(t), "", "--endpoint", "http://"+ln.Addr().String(), "stream", "list")
	if r.code != exitFailure || !strings.HasPrefix(r.stderr, "shardline: unable to locate AWS credentials") ||
		!strings.Contains(r.stderr, `"aws configure"`) {
		t.Errorf("want the credentials hint, got %s", r)
	}
	if strings.Contains(r.stderr, "SDK ") || strings.Contains(r.stderr, "IMDSv1") {
		t.Errorf("the SDK's own log reached stderr: %s", r)
	}
	// With the metadata service turned off, as on most laptops, the hint is the same.
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	r = runBinary(ctx, t, binary(t), "", "--endpoint", "http://"+ln.Addr().String(), "stream", "list")
	if r.code != exitFailure || !strings.HasPrefix(r.stderr, "shardline: unable to locate AWS credentials") {
		t.Errorf("with AWS_EC2_METADATA_DISABLED=true: %s", r)
	}
}

// TestBinaryRefusedConnection checks that a call to an endpoint where nothing listens is
// reported as a refused connection to that endpoint, not as the SDK's retry summary.
func TestBinaryRefusedConnection(t *testing.T) {
	awsEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, args := range [][]string{{"stream", "list"}, {"put", "s"}, {"cat", "s"}} {
		r := runBinary(ctx, t, binary(t), "a\n", append([]string{"--endpoint", "http://" + addr}, args...)...)
		if r.code != exitFailure || !strings.HasSuffix(r.stderr, ": cannot reach the Kinesis endpoint "+addr+": connection refused\n") ||
			strings.Contains(r.stderr, "StatusCode") {
			t.Errorf("shardline %s: %s", strings.Join(args, " "), r)
		}
	}
}
