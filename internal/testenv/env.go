package testenv

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// StartCommand is the command that installs and starts the emulators; messages name it so a
// reader knows what to run.
const StartCommand = "scripts/emulators.sh start (or make test, which also runs it)"

// Environment variable names carrying the emulator endpoints.
const (
	KinesisEndpointVar    = "SHARDLINE_KINESIS_ENDPOINT"
	DynamoDBEndpointVar   = "SHARDLINE_DYNAMODB_ENDPOINT"
	CloudWatchEndpointVar = "SHARDLINE_CLOUDWATCH_ENDPOINT"
)

// Unavailable reports that something a test needs is missing. Under CI=true the test fails,
// because a skipped test would hide a gap; elsewhere it is skipped. Either way the message says
// what is missing and how to provide it.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (required under CI=true)", msg)
	}
	t.Skip(msg)
}

// InCI reports whether the tests run in CI, where nothing may be skipped.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1"
}

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// ModuleRoot returns the directory holding the main module's go.mod, found by walking up from
// the working directory (a test runs in its package directory).
func ModuleRoot() (string, error) {
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err == nil && strings.Contains(string(data), "module github.com/shardline/shardline\n") {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = fmt.Errorf("testenv: no go.mod of github.com/shardline/shardline above the working directory")
				return
			}
			dir = parent
		}
	})
	return rootDir, rootErr
}

var (
	fileOnce sync.Once
	fileVars map[string]string
)

// endpoint returns the value of the named variable from the environment or, failing that,
// from .emulators/env at the module root.
func endpoint(name string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	fileOnce.Do(func() {
		fileVars = map[string]string{}
		root, err := ModuleRoot()
		if err != nil {
			return
		}
		f, err := os.Open(filepath.Join(root, ".emulators", "env"))
		if err != nil {
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
			k, v, ok := strings.Cut(line, "=")
			if ok {
				fileVars[k] = strings.Trim(v, `"'`)
			}
		}
	})
	return fileVars[name]
}

// requireEndpoint returns the endpoint in the named variable or ends the test through
// Unavailable.
func requireEndpoint(t testing.TB, name, service string) string {
	t.Helper()
	ep := endpoint(name)
	if ep == "" {
		Unavailable(t, "%s emulator endpoint not configured (%s unset and no .emulators/env): run %s", service, name, StartCommand)
	}
	return ep
}
