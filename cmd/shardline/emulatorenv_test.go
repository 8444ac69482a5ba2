package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardline/shardline/internal/testenv"
)

// TestEmulatorEnvFile checks that the file scripts/emulators.sh writes also exports the
// endpoint variables the SDK reads (AWS_ENDPOINT_URL_<SERVICE>, see the AWS SDKs and Tools
// reference guide's "Service-specific endpoints" page), so that after sourcing it the built
// command reaches the emulators with no --endpoint.
func TestEmulatorEnvFile(t *testing.T) {
	awsEnv(t) // clears AWS_ENDPOINT_URL_KINESIS, so only the file can set it
	dir := os.Getenv("SHARDLINE_EMULATOR_DIR")
	if dir == "" {
		root, err := testenv.ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, ".emulators")
	}
	file := filepath.Join(dir, "env")
	if _, err := os.Stat(file); err != nil {
		testenv.Unavailable(t, "no %s: run %s", file, testenv.StartCommand)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", "-c", `. "$1" && env`, "bash", file).Output()
	if err != nil {
		t.Fatalf("sourcing %s: %v", file, err)
	}
	vars := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			vars[k] = v
		}
	}
	for svc, sdkVar := range map[string]string{"KINESIS": "AWS_ENDPOINT_URL_KINESIS", "DYNAMODB": "AWS_ENDPOINT_URL_DYNAMODB", "CLOUDWATCH": "AWS_ENDPOINT_URL_CLOUDWATCH"} {
		want := vars["SHARDLINE_"+svc+"_ENDPOINT"]
		if want == "" || vars[sdkVar] != want {
			t.Errorf("%s exports %s=%q, want the %s endpoint %q", file, sdkVar, vars[sdkVar], svc, want)
		}
	}
	name := newStream(t, testenv.KinesisEndpoint(t), 1)
	r := exec.CommandContext(ctx, "bash", "-c", `. "$1" && exec "$2" stream describe "$3"`, "bash", file, binary(t), name)
	got, err := r.CombinedOutput()
	if err != nil || !strings.Contains(string(got), "Stream:      "+name) {
		t.Errorf("shardline stream describe after sourcing %s: %v\n%s", file, err, got)
	}
}
