package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardline/shardline/agent"
)

func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	// The configuration is checked after the AWS settings are loaded; they must come from
	// here, never from the instance metadata service or a developer's profile.
	none := filepath.Join(dir, "none")
	for k, v := range map[string]string{"AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CONFIG_FILE": none, "AWS_SHARED_CREDENTIALS_FILE": none, "AWS_PROFILE": ""} {
		t.Setenv(k, v)
	}
	tooLarge := filepath.Join(dir, "large.json")
	if err := os.WriteFile(tooLarge, []byte(`{"flows": [{"filePattern": "/var/log/x.log", "kinesisStream": "s", "maxRecordSizeBytes": 2097152}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	stateDir := "/proc/self/shardline-state" // root can create files anywhere but under /proc
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		stateDir = filepath.Join(ro, "state")
	}
	unusable := filepath.Join(dir, "unusable.json")
	if err := os.WriteFile(unusable, []byte(`{"cloudwatch.emitMetrics": false, "stateDirectory": "`+stateDir+`", "flows": [{"filePattern": "/var/log/x.log", "kinesisStream": "s"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args     []string
		code     int
		output   string
		inStdout bool
	}{
		{[]string{"-version"}, exitOK, "shardline-agent devel (go", true},
		{[]string{"-h"}, exitOK, "Usage: shardline-agent", false},
		{[]string{"-no-such-flag"}, exitUsage, "flag provided but not defined", false},
		{[]string{"extra"}, exitUsage, `unexpected argument "extra"`, false},
		{[]string{"-log-level", "loud"}, exitUsage, "-log-level", false},
		{[]string{"-config", filepath.Join(dir, "missing.json")}, exitConfig, "no such file or directory", false},
		{[]string{"-config", unusable}, exitConfig, "state directory not usable: " + stateDir, false},
		{[]string{"-config", tooLarge}, exitConfig, "flows[0].maxRecordSizeBytes: 2097152 is more than 1 MiB", false},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := run(c.args, &stdout, &stderr)
		out := stderr.String()
		if c.inStdout {
			out = stdout.String()
		}
		if code != c.code || !strings.Contains(out, c.output) {
			t.Errorf("%q: exit %d, want %d; output %q, want it to contain %q", c.args, code, c.code, out, c.output)
		}
	}
}

func TestEndpointsAndRegions(t *testing.T) {
	urls := map[string]string{
		"":                                 "",
		"kinesis.eu-west-1.amazonaws.com":  "https://kinesis.eu-west-1.amazonaws.com",
		"http://127.0.0.1:4567":            "http://127.0.0.1:4567",
		" https://monitoring.example.com ": "https://monitoring.example.com",
	}
	for in, want := range urls {
		if got, err := endpointURL(in); err != nil || got != want {
			t.Errorf("endpointURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := endpointURL("http://"); err == nil {
		t.Error("endpointURL accepted a URL without a host")
	}
	regions := map[string]string{
		"kinesis.eu-west-1.amazonaws.com":                               "eu-west-1",
		"https://kinesis-fips.us-gov-west-1.amazonaws.com":              "us-gov-west-1",
		"kinesis.cn-north-1.amazonaws.com.cn":                           "cn-north-1",
		"vpce-0abc-def.kinesis.ap-southeast-2.vpce.amazonaws.com":       "ap-southeast-2",
		"http://127.0.0.1:4567":                                         "",
		"kinesis.example.com":                                           "",
		"https://kinesis.us-east-1.amazonaws.com.attacker.example/path": "",
	}
	for in, want := range regions {
		if got := regionFromEndpoint(in); got != want {
			t.Errorf("regionFromEndpoint(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestStateDirOverride: -state-dir moves the checkpoint file when the configuration leaves it
// to the state directory, and not when the configuration names it.
func TestStateDirOverride(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flows := `"flows": [{"filePattern": "/var/log/app.log", "kinesisStream": "s"}]`
	plain := write("plain.json", `{"stateDirectory": "/var/lib/elsewhere", `+flows+`}`)
	named := write("named.json", `{"checkpointFile": "/srv/cp.json", `+flows+`}`)

	cfg, err := loadConfig(options{configPath: plain, stateDir: "/tmp/st"}, log)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StateDirectory != "/tmp/st" || cfg.CheckpointFile != filepath.Join("/tmp/st", agent.CheckpointFileName) {
		t.Errorf("state directory %s, checkpoint file %s", cfg.StateDirectory, cfg.CheckpointFile)
	}
	cfg, err = loadConfig(options{configPath: named, stateDir: "/tmp/st"}, log)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CheckpointFile != "/srv/cp.json" {
		t.Errorf("an explicit checkpointFile moved to %s", cfg.CheckpointFile)
	}
	cfg, err = loadConfig(options{configPath: plain}, log)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CheckpointFile != filepath.Join("/var/lib/elsewhere", agent.CheckpointFileName) {
		t.Errorf("without -state-dir the checkpoint file is %s", cfg.CheckpointFile)
	}

	old, cur := *cfg, *cfg
	cur.KinesisEndpoint, cur.CloudWatchNamespace, cur.AssumeRoleARN = "http://x", "N", "arn:aws:iam::1:role/r"
	if got := restartOnly(&old, &cur); strings.Join(got, ",") != "kinesis.endpoint,cloudwatch.namespace,assumeRoleARN" {
		t.Errorf("restartOnly = %v", got)
	}
}

// TestExampleConfiguration: the example shipped for operators loads without errors or
// warnings, so it only shows settings that do something.
func TestExampleConfiguration(t *testing.T) {
	cfg, err := agent.LoadConfig(filepath.Join("..", "..", "examples", "agent", "agent.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) > 0 {
		t.Errorf("warnings: %q", cfg.Warnings)
	}
}
