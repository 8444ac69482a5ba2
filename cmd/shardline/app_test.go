package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// TestHelpEveryCommand checks that every command answers --help with its usage and at least
// one example, on stdout and with status 0.
func TestHelpEveryCommand(t *testing.T) {
	a := &app{}
	var walk func(c *cobra.Command)
	var paths [][]string
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Parent() != nil && c.Parent().Name() == "completion" {
			return
		}
		path := strings.Fields(c.CommandPath())[1:]
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(a.rootCommand())
	if len(paths) < 11 {
		t.Fatalf("only %d commands found: %v", len(paths), paths)
	}
	for _, p := range paths {
		if len(p) > 0 && p[0] == "completion" {
			continue
		}
		args := append(append([]string{}, p...), "--help")
		r := cli(t, "", "", args...)
		if r.code != 0 || r.stderr != "" {
			t.Errorf("shardline %s: %s", strings.Join(args, " "), r)
			continue
		}
		for _, want := range []string{"Usage:", "Examples:", "--endpoint"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("shardline %s lacks %q:\n%s", strings.Join(args, " "), want, r.stdout)
			}
		}
	}
	// kinesis-mock serves plain HTTP on 4568 and TLS on 4567 by default (its
	// KINESIS_MOCK_PLAIN_PORT and KINESIS_MOCK_TLS_PORT): an http:// example must use 4568.
	if r := cli(t, "", "", "--help"); !strings.Contains(r.stdout, "--endpoint http://localhost:4568 ") {
		t.Errorf("the --endpoint example does not point at kinesis-mock's plain port:\n%s", r.stdout)
	}
	// A command that only groups others shows its help when run alone.
	if r := cli(t, "", "", "stream"); r.code != 0 || !strings.Contains(r.stdout, "update-shard-count") {
		t.Errorf("shardline stream: %s", r)
	}
}

// TestUsageErrors checks that bad command lines exit with status 2, say what is wrong, and
// point at the help of the command concerned, before any AWS call.
func TestUsageErrors(t *testing.T) {
	awsEnv(t)
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"bogus"}, []string{`unknown command "bogus" for "shardline"`, "Run 'shardline --help' for usage."}},
		{[]string{"stream", "bogus"}, []string{`unknown command "bogus" for "shardline stream"`, "Run 'shardline stream --help'"}},
		{[]string{"stream", "create"}, []string{"shardline stream create expects a stream name, got 0 argument(s)", "Run 'shardline stream create --help'"}},
		{[]string{"stream", "create", "a", "b"}, []string{"expects a stream name, got 2"}},
		{[]string{"stream", "create", "s", "--shards", "many"}, []string{`invalid argument "many" for "--shards"`}},
		{[]string{"stream", "create", "s", "--shards", "0"}, []string{"--shards must be at least 1, got 0"}},
		{[]string{"stream", "create", "s", "--shards", "2", "--on-demand"}, []string{"[on-demand shards] were all set"}},
		{[]string{"stream", "create", "s", "--timeout", "-1s"}, []string{"--timeout must be positive"}},
		{[]string{"stream", "describe", "s", "--colour"}, []string{"unknown flag: --colour"}},
		{[]string{"stream", "split", "s"}, []string{`required flag(s) "shard" not set`}},
		{[]string{"stream", "merge", "s", "--shard", "1"}, []string{`required flag(s) "adjacent" not set`}},
		{[]string{"stream", "update-shard-count", "s"}, []string{`required flag(s) "shards" not set`}},
		{[]string{"stream", "list", "extra"}, []string{"expects no arguments"}},
		{[]string{"stream", "list", "--page-size", "-1"}, []string{"--page-size must be from 1 to 10000"}},
		{[]string{"put"}, []string{"expects a stream name and optional files"}},
		{[]string{"put", "s", "--compression", "lz4"}, []string{`--compression "lz4": want none, gzip, zstd or snappy`}},
		{[]string{"put", "s", "--partition-key", "sometimes"}, []string{`--partition-key "sometimes": want random, hash, fixed:KEY or json:FIELD`}},
		{[]string{"put", "s", "--partition-key", "fixed:"}, []string{"the key must be 1 to 256 UTF-16 code units long"}},
		{[]string{"put", "s", "--partition-key", "json:a..b"}, []string{"want json:FIELD"}},
		{[]string{"put", "s", "--record-ttl", "0s"}, []string{"--record-ttl must be positive"}},
		{[]string{"cat", "s", "--from", "yesterday"}, []string{`--from "yesterday": want trim-horizon, latest, an RFC 3339 time`}},
		{[]string{"cat", "s", "--poll-interval", "10ms"}, []string{"--poll-interval must be at least 200ms"}},
		{[]string{"cat", "s", "-n", "-3"}, []string{"--max-records must not be negative"}},
		{[]string{"--endpoint", "localhost:4567", "stream", "list"}, []string{`--endpoint "localhost:4567": want an http or https URL`}},
		{[]string{"--profile", "nosuch", "stream", "list"}, []string{`profile "nosuch" not found`}},
	}
	for _, c := range cases {
		r := cli(t, "", "", c.args...)
		if r.code != exitUsage {
			t.Errorf("shardline %s: want exit 2, got %s", strings.Join(c.args, " "), r)
			continue
		}
		if r.stdout != "" {
			t.Errorf("shardline %s wrote to stdout: %q", strings.Join(c.args, " "), r.stdout)
		}
		for _, w := range c.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("shardline %s: stderr lacks %q:\n%s", strings.Join(c.args, " "), w, r.stderr)
			}
		}
	}

	t.Setenv("AWS_REGION", "")
	expect(t, cli(t, "", "", "stream", "list"), 2, "no AWS region: pass --region")
}

// TestUnknownStream checks that every command naming a stream that does not exist says so
// and exits with status 1.
func TestUnknownStream(t *testing.T) {
	ep := awsEnv(t)
	name := "slcli-missing-" + strings.ToLower(strings.ReplaceAll(time.Now().Format("150405.000000"), ".", ""))
	for _, args := range [][]string{
		{"stream", "describe", name},
		{"stream", "describe", name, "--json"},
		{"stream", "delete", name},
		{"stream", "split", name, "--shard", "0"},
		{"stream", "merge", name, "--shard", "0", "--adjacent", "1"},
		{"stream", "update-shard-count", name, "--shards", "2"},
		{"put", name},
		{"cat", name},
		{"cat", name, "-f"},
	} {
		r := cli(t, ep, "a line\n", args...)
		if r.code != exitFailure || r.stderr != "shardline: stream "+name+" not found\n" || r.stdout != "" {
			t.Errorf("shardline %s: %s", strings.Join(args, " "), r)
		}
	}
}

// TestStandardAWSConfiguration checks that the endpoint can come from the SDK's
// AWS_ENDPOINT_URL_KINESIS and the region from --region, as with the AWS CLI.
func TestStandardAWSConfiguration(t *testing.T) {
	ep := awsEnv(t)
	name := newStream(t, ep, 1)
	t.Setenv("AWS_ENDPOINT_URL_KINESIS", ep)
	t.Setenv("AWS_REGION", "")
	r := cli(t, "", "", "--region", "us-east-1", "stream", "describe", name)
	if r.code != 0 || !strings.Contains(r.stdout, "Stream:      "+name) {
		t.Errorf("describe through AWS_ENDPOINT_URL_KINESIS: %s", r)
	}
	// A profile from a config file gives the region.
	cfg := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(cfg, []byte("[profile emu]\nregion = us-east-1\naws_access_key_id = test\naws_secret_access_key = test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", cfg)
	if r := cli(t, "", "", "--profile", "emu", "stream", "describe", name); r.code != 0 {
		t.Errorf("describe with --profile emu: %s", r)
	}
}

// TestBinary builds the command and runs the binary once, to show that what go build makes
// works as the in-process tests do: help, a successful call, and the exit codes.
func TestBinary(t *testing.T) {
	ep := awsEnv(t)
	name := newStream(t, ep, 1)
	bin := binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runBin := func(stdin string, args ...string) result {
		t.Helper()
		return runBinary(ctx, t, bin, stdin, args...)
	}

	if r := runBin("", "--help"); r.code != 0 || !strings.Contains(r.stdout, "Exit codes:") {
		t.Errorf("--help: %s", r)
	}
	if r := runBin("one\ntwo\n", "--endpoint", ep, "put", name, "-k", "fixed:k"); r.code != 0 || !strings.Contains(r.stderr, "put 2 of 2 records") {
		t.Errorf("put: %s", r)
	}
	if r := runBin("", "--endpoint", ep, "cat", name); r.code != 0 || r.stdout != "one\ntwo\n" {
		t.Errorf("cat: %s", r)
	}
	if r := runBin("", "--endpoint", ep, "stream", "describe", name+"-absent"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("describe of a missing stream: %s", r)
	}
	if r := runBin("", "stream", "describe"); r.code != 2 {
		t.Errorf("describe without a name: %s", r)
	}
}
