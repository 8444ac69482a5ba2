// Package iam holds no code: policies.json is the one machine-readable statement of the IAM
// permissions Shardline's roles and commands need. These tests keep README.md's copy of them
// identical, and run the producer, the agent and the consumer against the emulators to check the
// policies against the API actions they really call; cmd/shardline's
// TestIAMPolicyOfEveryCommand does the same for every command of the command line.
package iam

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

type policies struct {
	Roles    map[string]any `json:"roles"`
	Commands map[string]struct {
		Actions []string `json:"actions"`
	} `json:"commands"`
}

func load(t *testing.T) (policies, string) {
	t.Helper()
	b, err := os.ReadFile("policies.json")
	if err != nil {
		t.Fatal(err)
	}
	var p policies
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("policies.json: %v", err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return p, string(readme)
}

var (
	policyBlock = regexp.MustCompile("(?s)<!-- iam:policy ([a-z-]+) -->\n```json\n(.*?)\n```")
	tableRow    = regexp.MustCompile("(?m)^\\| `([a-z -]+)`[^|]* \\| (.*) \\|$")
)

// TestReadmePolicies checks that every policy block in the README is, as JSON, the role's
// policy in policies.json, and that every role is shown.
func TestReadmePolicies(t *testing.T) {
	p, readme := load(t)
	shown := map[string]bool{}
	for _, m := range policyBlock.FindAllStringSubmatch(readme, -1) {
		name, block := m[1], m[2]
		shown[name] = true
		want, ok := p.Roles[name]
		if !ok {
			t.Errorf("README shows a policy for %q, which policies.json does not have", name)
			continue
		}
		var got any
		if err := json.Unmarshal([]byte(block), &got); err != nil {
			t.Errorf("README's %s policy is not valid JSON: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("README's %s policy differs from policies.json:\nREADME: %v\nfile:   %v", name, got, want)
		}
	}
	for name := range p.Roles {
		if !shown[name] {
			t.Errorf("policies.json's %s policy is not in the README (want a block after <!-- iam:policy %s -->)", name, name)
		}
	}
}

// TestReadmeCommandTable checks the README's table of the actions each command needs against
// policies.json, row by row.
func TestReadmeCommandTable(t *testing.T) {
	p, readme := load(t)
	i := strings.Index(readme, "<!-- iam:commands -->")
	if i < 0 {
		t.Fatal("README has no <!-- iam:commands --> table")
	}
	table := readme[i:]
	if end := strings.Index(table, "\n\n"); end > 0 {
		table = table[:end]
	}
	seen := map[string]bool{}
	for _, m := range tableRow.FindAllStringSubmatch(table, -1) {
		cmd := m[1]
		seen[cmd] = true
		var got []string
		for _, a := range strings.Split(m[2], ",") {
			got = append(got, strings.Trim(strings.TrimSpace(a), "`"))
		}
		want, ok := p.Commands[cmd]
		if !ok {
			t.Errorf("README lists %q, which policies.json does not have", cmd)
			continue
		}
		w := slices.Clone(want.Actions)
		slices.Sort(w)
		slices.Sort(got)
		if !slices.Equal(got, w) {
			t.Errorf("README gives %s %v, policies.json %v", cmd, got, w)
		}
	}
	for cmd := range p.Commands {
		if !seen[cmd] {
			t.Errorf("policies.json's %q is not in the README's table", cmd)
		}
	}
}
