package main

import (
	"encoding/json"
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/internal/testenv"
)

// TestStreamLifecycle walks one stream through every stream command: create, describe (table
// and JSON), list, split at the middle, merge the children back, update-shard-count, a
// second create of the same name, delete --wait, and describe of the deleted stream.
func TestStreamLifecycle(t *testing.T) {
	ep := awsEnv(t)
	name := testenv.UniqueName(t, "slcli")
	cleanupStream(t, name)

	r := mustRun(t, ep, "", "stream", "create", name, "--shards", "2")
	if want := "created stream " + name + " (PROVISIONED, 2 open shards)\n"; r.stdout != want {
		t.Errorf("create stdout = %q, want %q", r.stdout, want)
	}
	// Not a terminal: the wait shows as plain lines.
	if !strings.Contains(r.stderr, "waiting for stream "+name+" to become ACTIVE\n") ||
		!strings.Contains(r.stderr, "stream "+name+" is ACTIVE after ") || strings.Contains(r.stderr, "\r") {
		t.Errorf("create progress on stderr:\n%s", r.stderr)
	}

	r = mustRun(t, ep, "", "stream", "describe", name)
	for _, want := range []string{"Stream:", name, "Status:      ACTIVE", "Mode:        PROVISIONED", "2 open, 0 closed",
		"shardId-000000000000  open", "shardId-000000000001  open", "50.00%", "340282366920938463463374607431768211455"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("describe output lacks %q:\n%s", want, r.stdout)
		}
	}

	d := describeJSON(t, ep, name)
	if d.StreamName != name || d.StreamStatus != "ACTIVE" || d.OpenShardCount != 2 || len(d.Shards) != 2 {
		t.Fatalf("describe --json: %+v", d)
	}
	if d.Shards[0].StartingHashKey != "0" || d.Shards[1].EndingHashKey != "340282366920938463463374607431768211455" {
		t.Errorf("hash key ranges do not cover the key space: %+v", d.Shards)
	}

	if r := mustRun(t, ep, "", "stream", "list"); !slices.Contains(lines(r.stdout), name) {
		t.Errorf("stream list lacks %s:\n%s", name, r.stdout)
	}
	var listed []listEntry
	r = mustRun(t, ep, "", "stream", "list", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil {
		t.Fatalf("stream list --json: %v\n%s", err, r.stdout)
	}
	if !slices.ContainsFunc(listed, func(e listEntry) bool { return e.StreamName == name }) {
		t.Errorf("stream list --json lacks %s", name)
	}

	// Split shard 0 (named by its number) in the middle of its range.
	s0 := d.Shards[0]
	r = mustRun(t, ep, "", "stream", "split", name, "--shard", "0")
	start, _ := new(big.Int).SetString(s0.StartingHashKey, 10)
	end, _ := new(big.Int).SetString(s0.EndingHashKey, 10)
	mid := new(big.Int).Add(start, new(big.Int).Rsh(new(big.Int).Add(new(big.Int).Sub(end, start), big.NewInt(1)), 1))
	if !strings.Contains(r.stdout, "split shard shardId-000000000000 of stream "+name+" at "+mid.String()) {
		t.Errorf("split output:\n%s", r.stdout)
	}
	d = describeJSON(t, ep, name)
	children := childrenOf(d, "shardId-000000000000")
	if d.OpenShardCount != 3 || len(children) != 2 || stateOf(d, "shardId-000000000000") != "closed" {
		t.Fatalf("after split: %+v", d)
	}
	if children[0].EndingHashKey != new(big.Int).Sub(mid, big.NewInt(1)).String() || children[1].StartingHashKey != mid.String() {
		t.Errorf("children do not meet at %s: %+v", mid, children)
	}
	if r := mustRun(t, ep, "", "stream", "describe", name); !strings.Contains(r.stdout, "closed") ||
		!strings.Contains(r.stdout, "shardId-000000000000  ") {
		t.Errorf("describe after split:\n%s", r.stdout)
	}

	// Merge the two children back, naming them by ID and in reverse order.
	r = mustRun(t, ep, "", "stream", "merge", name, "--shard", children[1].ShardID, "--adjacent", children[0].ShardID)
	if !strings.Contains(r.stdout, "merged shards "+children[1].ShardID+" and "+children[0].ShardID) {
		t.Errorf("merge output:\n%s", r.stdout)
	}
	d = describeJSON(t, ep, name)
	var merged *shardEntry
	for i, s := range d.Shards {
		if s.ParentShardID != "" && s.AdjacentParentShardID != "" {
			merged = &d.Shards[i]
		}
	}
	if merged == nil || merged.State != "open" || merged.StartingHashKey != s0.StartingHashKey || merged.EndingHashKey != s0.EndingHashKey {
		t.Fatalf("after merge: %+v", d)
	}
	if !strings.Contains(r.stdout, "into "+merged.ShardID) {
		t.Errorf("merge output does not name %s:\n%s", merged.ShardID, r.stdout)
	}

	r = mustRun(t, ep, "", "stream", "update-shard-count", name, "--shards", "4")
	if want := "stream " + name + " now has 4 open shards (was 2)\n"; r.stdout != want {
		t.Errorf("update-shard-count stdout = %q, want %q", r.stdout, want)
	}
	if d = describeJSON(t, ep, name); d.OpenShardCount != 4 {
		t.Errorf("open shards after update-shard-count: %d", d.OpenShardCount)
	}

	expect(t, cli(t, ep, "", "stream", "create", name), 1, "stream "+name+" already exists")

	r = mustRun(t, ep, "", "stream", "delete", name, "--wait")
	if r.stdout != "deleted stream "+name+"\n" || !strings.Contains(r.stderr, "stream "+name+" is deleted after") {
		t.Errorf("delete --wait: %s", r)
	}
	expect(t, cli(t, ep, "", "stream", "describe", name), 1, "shardline: stream "+name+" not found\n")
}

func describeJSON(t *testing.T, ep, name string) describeOutput {
	t.Helper()
	var d describeOutput
	r := mustRun(t, ep, "", "stream", "describe", name, "--json")
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("describe --json: %v\n%s", err, r.stdout)
	}
	return d
}

func childrenOf(d describeOutput, parent string) []shardEntry {
	var out []shardEntry
	for _, s := range d.Shards {
		if s.ParentShardID == parent && s.AdjacentParentShardID == "" {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b shardEntry) int {
		x, _ := new(big.Int).SetString(a.StartingHashKey, 10)
		y, _ := new(big.Int).SetString(b.StartingHashKey, 10)
		return x.Cmp(y)
	})
	return out
}

func stateOf(d describeOutput, id string) string {
	for _, s := range d.Shards {
		if s.ShardID == id {
			return s.State
		}
	}
	return "missing"
}

// TestStreamCreateOnDemandAndDeleteNoWait covers on-demand mode and the commands'
// --wait=false forms.
func TestStreamCreateOnDemandAndDeleteNoWait(t *testing.T) {
	ep := awsEnv(t)
	name := testenv.UniqueName(t, "slcli")
	cleanupStream(t, name)
	r := mustRun(t, ep, "", "stream", "create", name, "--on-demand")
	if !strings.HasPrefix(r.stdout, "created stream "+name+" (ON_DEMAND, ") {
		t.Errorf("create --on-demand: %s", r)
	}
	if d := describeJSON(t, ep, name); d.StreamMode != "ON_DEMAND" {
		t.Errorf("mode %q, want ON_DEMAND", d.StreamMode)
	}
	r = mustRun(t, ep, "", "stream", "delete", name)
	if r.stdout != "deleting stream "+name+"\n" || r.stderr != "" {
		t.Errorf("delete without --wait: %s", r)
	}

	other := testenv.UniqueName(t, "slcli")
	cleanupStream(t, other)
	r = mustRun(t, ep, "", "stream", "create", other, "--shards", "2", "--wait=false")
	if r.stdout != "creating stream "+other+" (provisioned, 2 shards)\n" || r.stderr != "" {
		t.Errorf("create --wait=false: %s", r)
	}
	if err := testenv.WaitStreamActive(t.Context(), testenv.Kinesis(t, nil), other); err != nil {
		t.Fatal(err)
	}
	r = mustRun(t, ep, "", "stream", "split", other, "--shard", "1", "--wait=false")
	if !strings.HasPrefix(r.stdout, "splitting shard shardId-000000000001 of stream "+other+" at ") {
		t.Errorf("split --wait=false: %s", r)
	}
}

// TestReshardingErrors checks the messages and exit codes of resharding requests that cannot
// work: an explicit --at inside and outside the shard, a closed or unknown shard, shards that
// are not adjacent.
func TestReshardingErrors(t *testing.T) {
	ep := awsEnv(t)
	name := newStream(t, ep, 3)
	shards := shardsOf(t, name)
	s1 := shards[1]
	start := aws.ToString(s1.HashKeyRange.StartingHashKey)
	end := aws.ToString(s1.HashKeyRange.EndingHashKey)

	expect(t, cli(t, ep, "", "stream", "split", name, "--shard", "1", "--at", start), 2,
		"--at "+start+" is outside shard shardId-000000000001's range")
	expect(t, cli(t, ep, "", "stream", "split", name, "--shard", "1", "--at", "12x"), 2, `--at "12x": want a decimal hash key`)
	expect(t, cli(t, ep, "", "stream", "split", name, "--shard", "shardId-000000000009"), 1,
		"shard shardId-000000000009 not found in stream "+name, "open shards: shardId-000000000000, shardId-000000000001, shardId-000000000002")
	expect(t, cli(t, ep, "", "stream", "merge", name, "--shard", "0", "--adjacent", "2"), 1,
		"shards shardId-000000000000", "are not adjacent")
	expect(t, cli(t, ep, "", "stream", "merge", name, "--shard", "2", "--adjacent", "2"), 2, "cannot be merged with itself")

	// Split exactly at the shard's last key: the second child holds one hash key.
	r := mustRun(t, ep, "", "stream", "split", name, "--shard", "1", "--at", end)
	if !strings.Contains(r.stdout, "["+end+", "+end+"]") {
		t.Errorf("split --at %s: %s", end, r)
	}
	var single types.Shard
	for _, s := range shardsOf(t, name) {
		if aws.ToString(s.ParentShardId) == "shardId-000000000001" && aws.ToString(s.HashKeyRange.StartingHashKey) == end {
			single = s
		}
	}
	if single.ShardId == nil {
		t.Fatalf("no child starting at %s", end)
	}
	expect(t, cli(t, ep, "", "stream", "split", name, "--shard", aws.ToString(single.ShardId)), 1, "covers a single hash key")
	expect(t, cli(t, ep, "", "stream", "split", name, "--shard", "1"), 1,
		"shard shardId-000000000001 of stream "+name+" is closed")
	expect(t, cli(t, ep, "", "stream", "update-shard-count", name, "--shards", "40"), 1, "InvalidArgumentException")
}

// TestListPaging lists with one stream per page, so that the listing must continue past
// pages that say more streams follow.
func TestListPaging(t *testing.T) {
	ep := awsEnv(t)
	var names []string
	for range 3 {
		names = append(names, newStream(t, ep, 1))
	}
	r := mustRun(t, ep, "", "stream", "list", "--page-size", "1")
	got := lines(r.stdout)
	for _, n := range names {
		if !slices.Contains(got, n) {
			t.Errorf("list --page-size 1 lacks %s:\n%s", n, r.stdout)
		}
	}
	all := lines(mustRun(t, ep, "", "stream", "list").stdout)
	slices.Sort(all)
	slices.Sort(got)
	// Other tests may create and delete streams meanwhile; ours must be in both listings and
	// neither may repeat a name.
	if len(slices.Compact(slices.Clone(got))) != len(got) || len(slices.Compact(slices.Clone(all))) != len(all) {
		t.Errorf("a listing repeats names:\n%v\n%v", got, all)
	}
}
