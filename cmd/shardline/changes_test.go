package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/shardline/shardline/internal/testenv"
	"github.com/shardline/shardline/kinesistest"
)

// TestBinaryJSONChanges runs every command that changes a stream with --json and reads back
// one JSON object each, with the operation, the status and the shards involved.
func TestBinaryJSONChanges(t *testing.T) {
	ep := awsEnv(t)
	name := testenv.UniqueName(t, "slcli")
	cleanupStream(t, name)
	bin := binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	change := func(args ...string) changeOutput {
		t.Helper()
		r := runBinary(ctx, t, bin, "", append([]string{"--endpoint", ep, "stream"}, append(args, "--json")...)...)
		var out changeOutput
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		dec.DisallowUnknownFields()
		if r.code != 0 {
			t.Fatalf("stream %s --json: %s", strings.Join(args, " "), r)
		}
		if err := dec.Decode(&out); err != nil || dec.More() {
			t.Fatalf("stream %s --json: not one JSON object (%v): %s", strings.Join(args, " "), err, r)
		}
		return out
	}
	if out := change("create", name, "--shards", "2"); out.Operation != "CreateStream" || out.StreamName != name || !out.Waited ||
		out.StreamStatus != "ACTIVE" || out.StreamMode != "PROVISIONED" || out.OpenShardCount == nil || *out.OpenShardCount != 2 {
		t.Errorf("create: %+v", out)
	}
	out := change("split", name, "--shard", "0")
	if out.Operation != "SplitShard" || out.StreamStatus != "ACTIVE" || len(out.ParentShards) != 1 || out.ParentShards[0] != "shardId-000000000000" ||
		len(out.ChildShards) != 2 || out.ChildShards[0].ParentShardID != "shardId-000000000000" || *out.OpenShardCount != 3 {
		t.Errorf("split: %+v", out)
	}
	a, b := out.ChildShards[0].ShardID, out.ChildShards[1].ShardID
	if out := change("merge", name, "--shard", a, "--adjacent", b); out.Operation != "MergeShards" || len(out.ChildShards) != 1 ||
		out.ChildShards[0].AdjacentParentShardID == "" || *out.OpenShardCount != 2 {
		t.Errorf("merge: %+v", out)
	}
	if out := change("update-shard-count", name, "--shards", "4"); out.Operation != "UpdateShardCount" || *out.PreviousShardCount != 2 ||
		*out.OpenShardCount != 4 {
		t.Errorf("update-shard-count: %+v", out)
	}
	if out := change("delete", name, "--wait"); out.Operation != "DeleteStream" || !out.Waited || out.StreamStatus != "DELETED" {
		t.Errorf("delete --wait: %+v", out)
	}
}

// TestBinaryEmptyStreamList checks that stream list says so on stderr when the account has no
// stream in the region, and leaves stdout empty for scripts (--json: an empty array). The
// account is an in-process emulator of its own: the shared emulator holds the streams of tests
// running in parallel, whatever region they name.
func TestBinaryEmptyStreamList(t *testing.T) {
	cleanAWSEnv(t)
	srv := kinesistest.NewServer(kinesistest.Options{Region: "ap-southeast-4"})
	defer srv.Close()
	ep := srv.URL
	bin := binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := runBinary(ctx, t, bin, "", "--endpoint", ep, "--region", "ap-southeast-4", "stream", "list")
	if r.code != 0 || r.stdout != "" || r.stderr != "no streams in region ap-southeast-4 at "+ep+"\n" {
		t.Errorf("stream list on an empty account: %s", r)
	}
	r = runBinary(ctx, t, bin, "", "--endpoint", ep, "--region", "ap-southeast-4", "stream", "list", "--json")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("stream list --json on an empty account: %s", r)
	}
}
