package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardline/shardline/internal/testenv"
)

// iamPolicies is the part of iam/policies.json this test reads: the API actions each command
// of the command line needs.
type iamPolicies struct {
	Commands map[string]struct {
		Actions []string `json:"actions"`
	} `json:"commands"`
}

func readIAMPolicies(t *testing.T) iamPolicies {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "iam", "policies.json"))
	if err != nil {
		t.Fatal(err)
	}
	var p iamPolicies
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("iam/policies.json: %v", err)
	}
	return p
}

// TestIAMPolicyOfEveryCommand runs every command of the built binary through a proxy that
// records the Kinesis API actions called (the X-Amz-Target of each request), and checks that
// iam/policies.json grants each command exactly those: no call would be denied under the
// documented policy, and the policy grants nothing the command does not use. Each command
// runs in the variants that call the most (waiting, --json, following).
func TestIAMPolicyOfEveryCommand(t *testing.T) {
	ep := awsEnv(t)
	policies := readIAMPolicies(t)
	px := newProxy(t, ep)
	bin := binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	name := testenv.UniqueName(t, "sliam")
	cleanupStream(t, name)
	runs := []struct {
		command string
		stdin   string
		args    []string
	}{
		{"stream create", "", []string{"stream", "create", name, "--shards", "2"}},
		{"stream describe", "", []string{"stream", "describe", name}},
		{"stream describe", "", []string{"stream", "describe", name, "--json"}},
		{"stream list", "", []string{"stream", "list"}},
		{"stream list", "", []string{"stream", "list", "--json"}},
		{"put", "a\nb\nc\n", []string{"put", name}},
		{"put", "d\n", []string{"put", name, "--aggregate=false", "--compression", "zstd"}},
		{"cat", "", []string{"cat", name}},
		{"cat", "", []string{"cat", name, "-f", "-n", "4", "--json"}},
		{"stream split", "", []string{"stream", "split", name, "--shard", "0"}},
		{"stream merge", "", []string{"stream", "merge", name, "--shard", "2", "--adjacent", "3"}},
		{"stream update-shard-count", "", []string{"stream", "update-shard-count", name, "--shards", "4"}},
		{"completion", "", []string{"__complete", "stream", "split", ""}},
		{"completion", "", []string{"__complete", "stream", "split", name, "--shard", ""}},
		{"stream delete", "", []string{"stream", "delete", name, "--wait"}},
	}
	called := map[string][]string{}
	for _, r := range runs {
		args := append([]string{"--endpoint", px.URL}, r.args...)
		if r.command == "completion" {
			args = append([]string{"__complete", "--endpoint", px.URL}, r.args[1:]...)
		}
		res := runBinary(ctx, t, bin, r.stdin, args...)
		if res.code != 0 {
			t.Fatalf("shardline %s: %s", strings.Join(r.args, " "), res)
		}
		for _, a := range px.actions() {
			if !slices.Contains(called[r.command], a) {
				called[r.command] = append(called[r.command], a)
			}
		}
	}
	for cmd, actions := range called {
		slices.Sort(actions)
		granted := slices.Clone(policies.Commands[cmd].Actions)
		slices.Sort(granted)
		if !slices.Equal(actions, granted) {
			t.Errorf("%s calls %v; iam/policies.json grants %v", cmd, actions, granted)
		}
	}
	for cmd := range policies.Commands {
		if _, ok := called[cmd]; !ok {
			t.Errorf("iam/policies.json names %q, which this test does not run", cmd)
		}
	}
}
