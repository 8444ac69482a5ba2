package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/compression"
	"github.com/shardline/shardline/internal/testenv"
)

// putRaw writes Kinesis records directly, bypassing the producer, in order.
func putRaw(t *testing.T, name string, recs ...aggregation.KinesisRecord) {
	t.Helper()
	kc := testenv.Kinesis(t, nil)
	for _, r := range recs {
		in := &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String(r.PartitionKey), Data: r.Data}
		if r.ExplicitHashKey != "" {
			in.ExplicitHashKey = aws.String(r.ExplicitHashKey)
		}
		if _, err := kc.PutRecord(context.Background(), in); err != nil {
			t.Fatalf("PutRecord: %v", err)
		}
	}
}

// aggregate packs user records with the given keys and data into one KPL aggregate.
func aggregate(t *testing.T, keys, data []string) aggregation.KinesisRecord {
	t.Helper()
	var agg aggregation.Aggregator
	for i := range keys {
		if err := agg.Add(aggregation.UserRecord{PartitionKey: keys[i], Data: []byte(data[i])}); err != nil {
			t.Fatal(err)
		}
	}
	kr, ok := agg.Flush()
	if !ok || !kr.Aggregated {
		t.Fatal("no aggregate")
	}
	return kr
}

// TestCatDecodesRecords reads records written without the producer: KPL aggregates made with
// aggregation.Aggregator, one of them compressed, plain records with text and binary data,
// and a corrupt aggregate and frame, which come out as received with a warning.
func TestCatDecodesRecords(t *testing.T) {
	ep := awsEnv(t)
	name := newStream(t, ep, 1)

	agg1 := aggregate(t, []string{"k0", "k1", "k2", "k1"}, []string{"a0", "a1", "a2", "a3"})
	agg2 := aggregate(t, []string{"z0", "z1", "k2"}, []string{"zip0", "zip1", "zip2"})
	framed, err := compression.Encode(nil, agg2.Data, compression.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	corruptAgg := append([]byte(aggregation.Magic), "not a protobuf, no checksum"...)
	corruptFrame := append([]byte(compression.Magic), 9, 1, 2, 3)
	putRaw(t, name,
		agg1,
		aggregation.KinesisRecord{PartitionKey: agg2.PartitionKey, Data: framed},
		aggregation.KinesisRecord{PartitionKey: "plain", Data: []byte("plain text")},
		aggregation.KinesisRecord{PartitionKey: "bin", Data: []byte{0xff, 0xfe, '\n', 0}},
		aggregation.KinesisRecord{PartitionKey: "bad-agg", Data: corruptAgg},
		aggregation.KinesisRecord{PartitionKey: "bad-frame", Data: corruptFrame},
	)

	r := mustRun(t, ep, "", "cat", name, "--json")
	if want := "warning: 1 record with a corrupt compression frame and 1 record with a corrupt KPL aggregate, written as received\n"; r.stderr != want {
		t.Errorf("stderr = %q, want %q", r.stderr, want)
	}
	recs := catJSON(t, ep, name)
	type view struct {
		key, data, encoding, compression string
		sub                              int64
		aggregated                       bool
	}
	var got []view
	seqs := map[string]bool{}
	for _, rec := range recs {
		got = append(got, view{rec.PartitionKey, rec.Data, rec.Encoding, rec.Compression, rec.Subsequence, rec.Aggregated})
		seqs[rec.Sequence] = true
		if rec.Shard != "shardId-000000000000" || rec.Stream != name || rec.ArrivalTime == nil ||
			time.Since(*rec.ArrivalTime) > 10*time.Minute || time.Since(*rec.ArrivalTime) < -time.Minute {
			t.Errorf("metadata of %+v", rec)
		}
	}
	b64 := base64.StdEncoding.EncodeToString
	want := []view{
		{"k0", "a0", "utf-8", "", 0, true}, {"k1", "a1", "utf-8", "", 1, true},
		{"k2", "a2", "utf-8", "", 2, true}, {"k1", "a3", "utf-8", "", 3, true},
		{"z0", "zip0", "utf-8", "gzip", 0, true}, {"z1", "zip1", "utf-8", "gzip", 1, true}, {"k2", "zip2", "utf-8", "gzip", 2, true},
		{"plain", "plain text", "utf-8", "", 0, false},
		{"bin", b64([]byte{0xff, 0xfe, '\n', 0}), "base64", "", 0, false},
		{"bad-agg", b64(corruptAgg), "base64", "", 0, false},
		{"bad-frame", b64(corruptFrame), "base64", "", 0, false},
	}
	if !slices.Equal(got, want) {
		t.Errorf("cat --json:\n got %+v\nwant %+v", got, want)
	}
	if len(seqs) != 6 {
		t.Errorf("%d distinct sequence numbers, want one per Kinesis record (6)", len(seqs))
	}

	// The key filter applies to the user records inside aggregates.
	r = mustRun(t, ep, "", "cat", name, "--key", "k2")
	if r.stdout != "a2\nzip2\n" {
		t.Errorf("cat --key k2 = %q", r.stdout)
	}
	r = mustRun(t, ep, "", "cat", name, "--key", "k1", "--key", "plain", "--json", "--base64")
	if n := strings.Count(r.stdout, `"encoding":"base64"`); n != 3 || !strings.Contains(r.stdout, b64([]byte("plain text"))) {
		t.Errorf("cat --json --base64:\n%s", r.stdout)
	}
	// Raw output is the data as it is, binary bytes included.
	r = mustRun(t, ep, "", "cat", name, "--key", "bin", "--key", "z0")
	if r.stdout != "zip0\n\xff\xfe\n\x00\n" {
		t.Errorf("cat raw = %q", r.stdout)
	}
}

// reshardWhilePutting puts 1..30 under one key while splitting the stream's only shard and
// merging the children back: ten records in the parent, ten in a child, ten in the merged
// shard. Since one key always maps to one shard, a reader that reads parents before children
// sees them in order.
func reshardWhilePutting(t *testing.T, ep, name string, between func(step int)) {
	t.Helper()
	put := func(from, to int) {
		mustRun(t, ep, strings.Join(numbered("", from, to), "\n")+"\n", "put", name, "-k", "fixed:order")
	}
	put(1, 10)
	between(0)
	mustRun(t, ep, "", "stream", "split", name, "--shard", "0")
	put(11, 20)
	between(1)
	mustRun(t, ep, "", "stream", "merge", name, "--shard", "1", "--adjacent", "2")
	put(21, 30)
}

// TestCatReadsReshardedStream reads, without -f, a stream resharded twice: closed parents are
// read to their end before their children, so one key's records come out in order, and cat
// stops by itself.
func TestCatReadsReshardedStream(t *testing.T) {
	ep := awsEnv(t)
	name := newStream(t, ep, 1)
	reshardWhilePutting(t, ep, name, func(int) {})
	recs := catJSON(t, ep, name)
	if got := dataOf(recs); !slices.Equal(got, numbered("", 1, 30)) {
		t.Fatalf("cat of a resharded stream: %v", got)
	}
	if recs[0].Shard != "shardId-000000000000" || recs[29].Shard != "shardId-000000000003" {
		t.Errorf("records 1 and 30 from %s and %s", recs[0].Shard, recs[29].Shard)
	}
	if r := mustRun(t, ep, "", "cat", name, "--from", "latest"); r.stdout != "" {
		t.Errorf("cat --from latest = %q", r.stdout)
	}
	if got := lines(mustRun(t, ep, "", "cat", name, "--from", "1h").stdout); len(got) != 30 {
		t.Errorf("cat --from 1h: %d records", len(got))
	}
}

// TestCatFrom starts reading at a time between two puts.
func TestCatFrom(t *testing.T) {
	ep := awsEnv(t)
	name := newStream(t, ep, 2)
	mustRun(t, ep, "old-1\nold-2\n", "put", name)
	time.Sleep(300 * time.Millisecond)
	mark := time.Now()
	time.Sleep(300 * time.Millisecond)
	mustRun(t, ep, "new-1\nnew-2\n", "put", name)
	got := lines(mustRun(t, ep, "", "cat", name, "--from", mark.UTC().Format(time.RFC3339Nano)).stdout)
	slices.Sort(got)
	if !slices.Equal(got, []string{"new-1", "new-2"}) {
		t.Errorf("cat --from %s: %v", mark.Format(time.RFC3339Nano), got)
	}
}

// TestCatFollow follows a stream while it is written to and resharded: records put after cat
// started appear, the children of split and merged shards are followed after their parents,
// and --max-records ends the run with status 0.
func TestCatFollow(t *testing.T) {
	ep := awsEnv(t)
	name := newStream(t, ep, 1)
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--endpoint", ep, "cat", name, "-f", "--json", "--poll-interval", "200ms", "-n", "30"},
			strings.NewReader(""), &stdout, &stderr)
	}()
	// Each step waits until the follower has caught up, so that the reshards happen while it
	// reads the shards concerned.
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for len(lines(stdout.String())) < n {
			if time.Now().After(deadline) {
				t.Fatalf("follower wrote %d records, want %d; stderr: %s", len(lines(stdout.String())), n, stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	reshardWhilePutting(t, ep, name, func(step int) { waitFor(10 * (step + 1)) })
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("cat -f exit %d, stderr: %s", c, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("cat -f -n 30 did not end; output so far:\n%s", stdout.String())
	}
	var got []string
	shards := map[string]int{}
	for _, l := range lines(stdout.String()) {
		var rec catRecord
		if err := jsonUnmarshal(l, &rec); err != nil {
			t.Fatal(err)
		}
		got = append(got, rec.Data)
		shards[rec.Shard]++
	}
	if !slices.Equal(got, numbered("", 1, 30)) {
		t.Errorf("cat -f wrote %v", got)
	}
	if len(shards) != 3 || shards["shardId-000000000000"] != 10 || shards["shardId-000000000003"] != 10 {
		t.Errorf("records per shard: %v", shards)
	}
}

// TestCatFollowInterrupted checks that interrupting a follow is its normal end (status 0,
// what was read is written), while interrupting a plain cat is reported.
func TestCatFollowInterrupted(t *testing.T) {
	ep := awsEnv(t)
	name := newStream(t, ep, 2)
	mustRun(t, ep, "x\ny\n", "put", name)
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--endpoint", ep, "cat", name, "-f", "--poll-interval", "200ms"}, strings.NewReader(""), &stdout, &stderr)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for len(lines(stdout.String())) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case c := <-code:
		got := lines(stdout.String())
		slices.Sort(got)
		if c != 0 || !slices.Equal(got, []string{"x", "y"}) || stderr.String() != "" {
			t.Errorf("interrupted cat -f: exit %d, stdout %q, stderr %q", c, stdout.String(), stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cat -f did not stop when interrupted")
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	r := cliCtx(ctx, t, ep, "", "cat", name)
	expect(t, r, exitInterrupted, "shardline: interrupted\n")
}

func jsonUnmarshal(s string, v any) error {
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("line %q: %w", s, err)
	}
	return nil
}

// TestCatFollowFromLatest follows from the tip: records already in the stream are skipped,
// and after a split the children are read from their start, so nothing written after cat
// started is lost.
func TestCatFollowFromLatest(t *testing.T) {
	ep := awsEnv(t)
	name := newStream(t, ep, 1)
	mustRun(t, ep, "old\n", "put", name, "-k", "fixed:k")
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--endpoint", ep, "cat", name, "-f", "--from", "latest", "--poll-interval", "200ms"},
			strings.NewReader(""), &stdout, &stderr)
	}()
	// Nothing tells when the follower holds its iterator, so probes are put until one shows.
	waitLine := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !slices.Contains(lines(stdout.String()), want) {
			if time.Now().After(deadline) {
				t.Fatalf("follower never wrote %q; stdout %q, stderr %q", want, stdout.String(), stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for stdout.String() == "" {
		if time.Now().After(deadline) {
			t.Fatalf("follower wrote nothing; stderr %q", stderr.String())
		}
		mustRun(t, ep, "probe\n", "put", name, "-k", "fixed:k")
		time.Sleep(300 * time.Millisecond)
	}
	mustRun(t, ep, "new-1\n", "put", name, "-k", "fixed:k")
	waitLine("new-1")
	mustRun(t, ep, "", "stream", "split", name, "--shard", "0")
	mustRun(t, ep, "new-2\n", "put", name, "-k", "fixed:k")
	waitLine("new-2")
	cancel()
	if c := <-code; c != 0 {
		t.Errorf("cat -f exit %d, stderr %q", c, stderr.String())
	}
	got := lines(stdout.String())
	for len(got) > 0 && got[0] == "probe" {
		got = got[1:]
	}
	if !slices.Equal(got, []string{"new-1", "new-2"}) {
		t.Errorf("cat -f --from latest wrote %q", stdout.String())
	}
}
