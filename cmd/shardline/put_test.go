package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shardline/shardline/internal/testenv"
)

// catJSON reads the stream with cat --json and any further arguments.
func catJSON(t *testing.T, ep, name string, args ...string) []catRecord {
	t.Helper()
	r := mustRun(t, ep, "", append([]string{"cat", name, "--json"}, args...)...)
	var recs []catRecord
	for _, l := range lines(r.stdout) {
		var rec catRecord
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("cat --json line %q: %v", l, err)
		}
		recs = append(recs, rec)
	}
	return recs
}

func dataOf(recs []catRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Data)
	}
	return out
}

func numbered(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s%03d", prefix, i))
	}
	return out
}

// TestPutAndCat writes lines from stdin with random keys over two shards and from files with
// one fixed key, and reads them back: every line once, and the fixed key's lines in order.
func TestPutAndCat(t *testing.T) {
	ep := awsEnv(t)
	name := newStream(t, ep, 2)

	in := numbered("line-", 1, 300)
	r := mustRun(t, ep, strings.Join(in, "\n")+"\n", "put", name)
	if !strings.Contains(r.stderr, "put 300 of 300 records (2.3 KiB) to stream "+name) || !strings.Contains(r.stderr, "0 retries, 0 failed") {
		t.Errorf("put summary: %s", r)
	}
	if r.stdout != "" || strings.Contains(r.stderr, "\r") {
		t.Errorf("put wrote to stdout or drew a progress line off a terminal: %s", r)
	}
	got := lines(mustRun(t, ep, "", "cat", name).stdout)
	slices.Sort(got)
	if !slices.Equal(got, in) {
		t.Fatalf("cat returned %d lines, want the %d put", len(got), len(in))
	}
	recs := catJSON(t, ep, name)
	shards := map[string]int{}
	for _, rec := range recs {
		shards[rec.Shard]++
		if rec.Stream != name || rec.Sequence == "" || rec.PartitionKey == "" || rec.ArrivalTime == nil || rec.Encoding != "utf-8" {
			t.Fatalf("cat --json record: %+v", rec)
		}
	}
	if len(shards) != 2 {
		t.Errorf("random keys used %d shards of 2: %v", len(shards), shards)
	}

	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	writeFile(t, a, strings.Join(numbered("a-", 1, 50), "\n")+"\n")
	writeFile(t, b, strings.Join(numbered("b-", 1, 50), "\n")) // no final newline
	r = mustRun(t, ep, "from-stdin\n", "put", name, a, "-", b, "--partition-key", "fixed:files")
	if !strings.Contains(r.stderr, "put 101 of 101 records") {
		t.Errorf("put files: %s", r)
	}
	want := append(append(numbered("a-", 1, 50), "from-stdin"), numbered("b-", 1, 50)...)
	if got := lines(mustRun(t, ep, "", "cat", name, "--key", "files").stdout); !slices.Equal(got, want) {
		t.Errorf("cat --key files:\n got %v\nwant %v", got, want)
	}
	if n := len(lines(mustRun(t, ep, "", "cat", name, "--key", "files", "--key", "nosuch", "-n", "7").stdout)); n != 7 {
		t.Errorf("cat --max-records 7 wrote %d lines", n)
	}
}

// TestPutOptions puts with every compression codec, with and without aggregation, and checks
// that cat undoes both and reports them in --json.
func TestPutOptions(t *testing.T) {
	ep := awsEnv(t)
	name := newStream(t, ep, 1)
	for _, codec := range []string{"none", "gzip", "zstd", "snappy"} {
		for _, agg := range []bool{true, false} {
			key := fmt.Sprintf("%s-%v", codec, agg)
			// The producer compresses only what gets smaller, so the lines repeat themselves.
			in := numbered(key+"-"+strings.Repeat("compressible ", 20), 1, 20)
			mustRun(t, ep, strings.Join(in, "\n")+"\n", "put", name, "-k", "fixed:"+key,
				"--compression", codec, fmt.Sprintf("--aggregate=%v", agg))
			recs := catJSON(t, ep, name, "--key", key)
			if got := dataOf(recs); !slices.Equal(got, in) {
				t.Errorf("%s: cat returned %v", key, got)
				continue
			}
			aggregated := 0
			for _, rec := range recs {
				wantCodec := codec
				if codec == "none" {
					wantCodec = ""
				}
				if rec.Compression != wantCodec {
					t.Errorf("%s: record compression %q", key, rec.Compression)
				}
				if rec.Aggregated {
					aggregated++
				}
			}
			if agg && aggregated == 0 || !agg && aggregated != 0 {
				t.Errorf("%s: %d of %d records came out of aggregates", key, aggregated, len(recs))
			}
		}
	}
}

// TestPutPartitionKeys checks the hash and json:FIELD key modes.
func TestPutPartitionKeys(t *testing.T) {
	ep := awsEnv(t)
	name := newStream(t, ep, 2)
	mustRun(t, ep, "alpha\nbeta\n", "put", name, "--partition-key", "hash")
	mustRun(t, ep, `{"user":{"id":"u-1"},"n":1}`+"\n"+`{"user":{"id":42},"n":2}`+"\n"+`{"user":{"id":true}}`+"\n",
		"put", name, "--partition-key", "json:user.id")
	got := map[string]string{}
	for _, rec := range catJSON(t, ep, name) {
		got[rec.Data] = rec.PartitionKey
	}
	for _, line := range []string{"alpha", "beta"} {
		sum := md5.Sum([]byte(line))
		if got[line] != hex.EncodeToString(sum[:]) {
			t.Errorf("hash key of %q = %q", line, got[line])
		}
	}
	for data, key := range map[string]string{
		`{"user":{"id":"u-1"},"n":1}`: "u-1", `{"user":{"id":42},"n":2}`: "42", `{"user":{"id":true}}`: "true",
	} {
		if got[data] != key {
			t.Errorf("json key of %s = %q, want %q", data, got[data], key)
		}
	}
}

// TestPutFailures puts input in which some lines cannot be written: too long for a record,
// too long with their key, without the JSON key field, not base64. put names them, writes the
// rest, and exits with status 1.
func TestPutFailures(t *testing.T) {
	ep := awsEnv(t)
	name := newStream(t, ep, 1)

	huge := strings.Repeat("x", 1_100_000)
	justOver := strings.Repeat("y", 1<<20-5) // fits alone, not with its 32-character key
	r := cli(t, ep, "ok-1\n"+huge+"\nok-2\n"+justOver+"\nok-3", "put", name, "-k", "hash")
	expect(t, r, 1,
		"line 2 of stdin: line of 1,100,000 bytes is longer than a record can hold (1,048,576 bytes with its partition key)\n",
		"line 4 of stdin: invalid Data: 1048603 bytes",
		"put 3 of 5 records", "2 failed, 0 abandoned\n",
		"shardline: 2 of 5 records failed\n")
	if got := lines(mustRun(t, ep, "", "cat", name).stdout); !slices.Equal(got, []string{"ok-1", "ok-2", "ok-3"}) {
		t.Errorf("cat after a partly failed put: %v", got)
	}

	r = cli(t, ep, `{"id":"a"}`+"\nnot json\n"+`{"other":1}`+"\n"+`{"id":{"deep":1}}`+"\n", "put", name, "-k", "json:id")
	expect(t, r, 1,
		"line 2 of stdin: not a JSON object, so no partition key field id",
		"line 3 of stdin: no partition key field id",
		"line 4 of stdin: partition key field id is an object or array",
		"shardline: 3 of 4 records failed")

	r = cli(t, ep, "aGVsbG8=\n***\n", "put", name, "--base64")
	expect(t, r, 1, "line 2 of stdin: not valid base64", "put 1 of 2 records", "shardline: 1 of 2 records failed")

	// Past maxFailuresShown the failures are counted only.
	many := strings.Repeat("not json\n", maxFailuresShown+5)
	r = cli(t, ep, many, "put", name, "-k", "json:id")
	expect(t, r, 1, "further failures are counted but not shown", "shardline: 15 of 15 records failed")
	if n := strings.Count(r.stderr, "not a JSON object"); n != maxFailuresShown {
		t.Errorf("%d failures named, want %d", n, maxFailuresShown)
	}

	expect(t, cli(t, ep, "", "put", name, filepath.Join(t.TempDir(), "absent.log")), 1, "input ", "absent.log: no such file or directory")
}

// TestPutCatBase64 round-trips binary records, newlines and invalid UTF-8 included, through
// put --base64 and cat --base64, and checks that cat --json gives such data in base64.
func TestPutCatBase64(t *testing.T) {
	ep := awsEnv(t)
	name := newStream(t, ep, 1)
	rng := rand.New(rand.NewPCG(1, 2))
	var in []string
	var raw [][]byte
	for i := range 50 {
		b := make([]byte, 1+i*7)
		for j := range b {
			b[j] = byte(rng.UintN(256))
		}
		b[0] = 0xff // never valid UTF-8
		raw = append(raw, b)
		in = append(in, base64.StdEncoding.EncodeToString(b))
	}
	mustRun(t, ep, strings.Join(in, "\n")+"\n", "put", name, "--base64", "-k", "fixed:bin")
	if got := lines(mustRun(t, ep, "", "cat", name, "--base64").stdout); !slices.Equal(got, in) {
		t.Errorf("cat --base64 differs from what was put")
	}
	recs := catJSON(t, ep, name)
	for i, rec := range recs {
		d, err := base64.StdEncoding.DecodeString(rec.Data)
		if rec.Encoding != "base64" || err != nil || !bytes.Equal(d, raw[i]) {
			t.Fatalf("record %d: encoding %q, data differs or is not base64 (%v)", i, rec.Encoding, err)
		}
	}
}

// TestProgressOnTerminal runs commands as if stderr were a terminal: put redraws a progress
// line and ends with the summary, and a wait shows a spinner line that is erased at the end.
func TestProgressOnTerminal(t *testing.T) {
	ep := awsEnv(t)
	name := testenv.UniqueName(t, "slcli")
	cleanupStream(t, name)
	term := func(stdin string, args ...string) result {
		var stdout, stderr bytes.Buffer
		a := &app{stdin: strings.NewReader(stdin), stdout: &stdout, stderr: &stderr, terminal: true}
		code := a.execute(context.Background(), append([]string{"--endpoint", ep}, args...))
		return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	}
	r := term("", "stream", "create", name)
	if r.code != 0 || !strings.Contains(r.stderr, clearLine+"⠋ waiting for stream "+name+" to become ACTIVE: ") ||
		!strings.HasSuffix(r.stderr, clearLine) {
		t.Fatalf("create on a terminal: %q", r.stderr)
	}
	r = term(strings.Repeat("a line\n", 3000)+strings.Repeat("z", 1_100_000)+"\n", "put", name)
	if r.code != 1 {
		t.Fatalf("put on a terminal: %s", r)
	}
	for _, want := range []string{" records/s  ", " retries  ", " failed  ", " pending",
		clearLine + "line 3001 of stdin: line of 1,100,000 bytes", "put 3,000 of 3,001 records"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("put progress lacks %q:\n%q", want, r.stderr)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
