package version

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shardline/shardline/internal/testenv"
)

// TestMakeBuildStampsEveryBinary runs `make build` as a release would and checks that every
// binary it makes prints the same version line, with the version that
// `git describe --tags --always --dirty` gives for the checkout.
func TestMakeBuildStampsEveryBinary(t *testing.T) {
	for _, tool := range []string{"make", "git", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Unavailable(t, "no %s command: %v", tool, err)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	describe, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		testenv.Unavailable(t, "not a git checkout, so no version to stamp: %v", err)
	}
	want := strings.TrimSpace(string(describe))

	bin := t.TempDir()
	build := exec.CommandContext(ctx, "make", "-C", root, "--no-print-directory", "build", "BINDIR="+bin)
	// Under make test, the outer make's variables (a VERSION=... given to it, say) would
	// reach this one through MAKEFLAGS; the version must come from the Makefile's own default.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" && k != "VERSION" {
			build.Env = append(build.Env, kv)
		}
	}
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	suffix := " " + want + " (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	for _, c := range []struct {
		name string
		flag string
	}{
		{"shardline", "--version"},
		{"shardline-agent", "-version"},
		{"shardline-demo", "-version"},
	} {
		out, err := exec.CommandContext(ctx, filepath.Join(bin, c.name), c.flag).CombinedOutput()
		if err != nil {
			t.Errorf("%s %s: %v\n%s", c.name, c.flag, err, out)
			continue
		}
		if got := string(out); got != c.name+suffix {
			t.Errorf("%s %s printed %q, want %q", c.name, c.flag, got, c.name+suffix)
		}
	}
}
