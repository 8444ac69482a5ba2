package aggregation

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardline/shardline/internal/testenv"
)

// These tests check the format against aws-kinesis-agg, the Node.js
// implementation AWS publishes in awslabs/kinesis-aggregation, through
// testdata/aggregation/kpl-interop.js.
//
// Two defects of aws-kinesis-agg 4.2.8 shape them:
//
//   - Its encoder builds the key tables with Object.keys, which lists
//     integer-like keys ("7", "42") before the others and in numeric order,
//     so records point at the wrong key when such keys arrive in another
//     order. Groups it encodes that contain such keys are compared with its
//     own decoder's reading of the bytes rather than with the input.
//   - Its decoder reads a missing explicit_hash_key_index as 0 and gives the
//     record the first explicit hash key of the table. It therefore misreads
//     its own and the KPL's aggregates that mix records with and without an
//     explicit hash key; this package's encoder puts an unreferenced empty
//     entry first in such aggregates (see doc.go) so that it reads them
//     right.

type jsRecord struct {
	PK   string  `json:"pk"`
	EHK  *string `json:"ehk"`
	Sub  *int    `json:"sub,omitempty"`
	Data string  `json:"data"`
}

type interopGroup struct {
	name    string
	records []UserRecord
	intKeys bool // holds integer-like keys that the Node encoder misorders
	unwrap  bool // Shardline emits single records unwrapped
}

func (g interopGroup) mixed() bool {
	with, without := false, false
	for _, r := range g.records {
		if r.ExplicitHashKey != "" {
			with = true
		} else {
			without = true
		}
	}
	return with && without
}

func toJS(r UserRecord) jsRecord {
	ehk := r.ExplicitHashKey
	return jsRecord{PK: r.PartitionKey, EHK: &ehk, Data: base64.StdEncoding.EncodeToString(r.Data)}
}

// fromJS converts a user record reported by aws-kinesis-agg; a missing
// explicit hash key is the empty string in this package.
func fromJS(t *testing.T, r jsRecord) UserRecord {
	t.Helper()
	data, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		t.Fatalf("bad base64 from node: %v", err)
	}
	u := UserRecord{PartitionKey: r.PK, Data: data}
	if r.EHK != nil {
		u.ExplicitHashKey = *r.EHK
	}
	if r.Sub != nil {
		u.SubSequenceNumber, u.Aggregated = int64(*r.Sub), true
	}
	return u
}

// runNode runs kpl-interop.js in the given mode.
func runNode(t *testing.T, mode string, in, out any) {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		testenv.Unavailable(t, "cannot find the module root: %v", err)
	}
	modules := filepath.Join(root, "testdata", "emulators", "node_modules")
	pkg, err := os.ReadFile(filepath.Join(modules, "aws-kinesis-agg", "package.json"))
	if err != nil {
		testenv.Unavailable(t, "aws-kinesis-agg is not installed: run npm ci in testdata/emulators (%v)", err)
	}
	var meta struct{ Version string }
	if json.Unmarshal(pkg, &meta) == nil && meta.Version != "4.2.8" {
		t.Logf("testing against aws-kinesis-agg %s; these tests were written for 4.2.8", meta.Version)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Unavailable(t, "node is not on PATH: install Node.js and run npm ci in testdata/emulators")
	}
	input, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join(root, "testdata", "aggregation", "kpl-interop.js"), mode, modules)
	cmd.Stdin = bytes.NewReader(input)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	output, err := cmd.Output()
	if err != nil {
		t.Fatalf("node kpl-interop.js %s: %v\n%s", mode, err, stderr.String())
	}
	if err := json.Unmarshal(output, out); err != nil {
		t.Fatalf("node output: %v\n%.500s", err, output)
	}
}

// interopGroups returns the record sets exchanged with aws-kinesis-agg. With
// forNodeEncoder, integer-like keys appear only in groups marked intKeys.
func interopGroups(forNodeEncoder bool) []interopGroup {
	rng := rand.New(rand.NewPCG(2024, 11))
	keys := []string{"user-1", "clé", "中文キー", "🚀-rocket", "a", strings.Repeat("é", 256), strings.Repeat("𝄞", 128),
		"key with spaces", "ключ", "x\u0301y", "tab\tkey"}
	intLike := []string{"0", "7", "42", "1000", "3"}
	bigEHKs := []string{MaxHashKey.String(), "18446744073709551616", HashKey{Hi: 1 << 40, Lo: 5}.String(),
		HashKey{Hi: rng.Uint64() | 1, Lo: rng.Uint64()}.String(), HashKey{Hi: rng.Uint64() | 1, Lo: rng.Uint64()}.String()}
	smallEHKs := []string{"0", "1", "4294967294", "4294967295", "99"}

	data := func() []byte {
		switch rng.IntN(6) {
		case 0:
			return []byte{}
		case 1:
			return []byte(Magic) // user data that looks like an aggregate
		default:
			return randomData(rng, rng.IntN(400))
		}
	}
	build := func(n int, pks, ehks []string, ehkShare float64) []UserRecord {
		recs := make([]UserRecord, n)
		for i := range recs {
			recs[i] = UserRecord{PartitionKey: pks[rng.IntN(len(pks))], Data: data()}
			if ehks != nil && rng.Float64() < ehkShare {
				recs[i].ExplicitHashKey = ehks[rng.IntN(len(ehks))]
			}
		}
		return recs
	}
	large := make([]UserRecord, 70)
	for i := range large {
		// Around half the default aggregate size: some pairs, some singles.
		large[i] = UserRecord{PartitionKey: keys[i%3], Data: randomData(rng, 15000+rng.IntN(25000))}
	}

	groups := []interopGroup{
		{name: "many records shared keys", records: build(400, keys, nil, 0)},
		{name: "all explicit hash keys", records: build(200, keys[:4], bigEHKs, 1)},
		{name: "mixed explicit hash keys", records: build(200, keys, bigEHKs, 0.5)},
		{name: "single record", records: build(1, keys[2:3], nil, 0), unwrap: true},
		{name: "single record with explicit hash key", records: build(1, keys[:1], bigEHKs[:1], 1), unwrap: true},
		{name: "empty data only", records: []UserRecord{{PartitionKey: "e1"}, {PartitionKey: "e2", Data: []byte{}}, {PartitionKey: "e1"}}},
		{name: "over 1 MiB", records: large, unwrap: true},
		{name: "integer-like keys", records: build(100, append(intLike, keys[:3]...), nil, 0), intKeys: true},
	}
	if !forNodeEncoder {
		groups = append(groups,
			interopGroup{name: "integer-like keys and small explicit hash keys", records: build(300, append(intLike, keys...), append(smallEHKs, bigEHKs...), 0.4)},
			interopGroup{name: "small explicit hash keys only", records: build(100, keys, smallEHKs, 1), unwrap: true},
		)
	}
	return groups
}

// TestInteropNodeEncodes has aws-kinesis-agg aggregate records and checks
// that Deaggregate returns exactly those records, and that Shardline encodes
// the same records to the same bytes.
func TestInteropNodeEncodes(t *testing.T) {
	groups := interopGroups(true)
	var in struct {
		Groups [][]jsRecord `json:"groups"`
	}
	for _, g := range groups {
		var js []jsRecord
		for _, r := range g.records {
			js = append(js, toJS(r))
		}
		in.Groups = append(in.Groups, js)
	}
	var out struct {
		Groups [][]jsRecord `json:"groups"`
	}
	runNode(t, "aggregate", in, &out)
	if len(out.Groups) != len(groups) {
		t.Fatalf("node returned %d groups, want %d", len(out.Groups), len(groups))
	}

	// Let aws-kinesis-agg decode its own output too, for the groups whose
	// encoding it gets wrong.
	var decodeIn struct {
		Records []jsRecord `json:"records"`
	}
	for _, encoded := range out.Groups {
		decodeIn.Records = append(decodeIn.Records, encoded...)
	}
	var decodeOut struct {
		Results []struct {
			Error   *string    `json:"error"`
			Records []jsRecord `json:"records"`
		} `json:"results"`
	}
	runNode(t, "deaggregate", decodeIn, &decodeOut)

	next := 0
	for gi, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			encoded := out.Groups[gi]
			if len(encoded) == 0 {
				t.Fatal("node emitted nothing")
			}
			var got, nodeView []UserRecord
			for i, kr := range encoded {
				blob, err := base64.StdEncoding.DecodeString(kr.Data)
				if err != nil {
					t.Fatal(err)
				}
				if !IsAggregated(blob) {
					t.Fatalf("Kinesis record %d is not an aggregate", i)
				}
				before := len(got)
				got, err = Deaggregate(got, blob, kr.PK, *kr.EHK)
				if err != nil {
					t.Fatalf("Kinesis record %d: %v", i, err)
				}
				if first := got[before]; kr.PK != first.PartitionKey && !g.intKeys {
					t.Errorf("Kinesis record %d put under %q, its first record has %q", i, kr.PK, first.PartitionKey)
				}
				res := decodeOut.Results[next+i]
				if res.Error != nil {
					t.Fatalf("aws-kinesis-agg cannot decode its own record %d: %s", i, *res.Error)
				}
				for _, r := range res.Records {
					nodeView = append(nodeView, fromJS(t, r))
				}
			}
			next += len(encoded)

			if !g.intKeys {
				sameRecords(t, renumber(got), expectAggregated(g.records))
			}
			if !g.mixed() {
				// Both decoders read the same records out of the bytes.
				sameRecords(t, got, nodeView)
			}

			// Same records, same bytes, unless the aggregate mixes explicit
			// hash keys (placeholder) or node misordered its key tables.
			if len(encoded) == 1 && !g.mixed() && !g.intKeys {
				agg := NewAggregator(MaxRecordSize)
				rec := aggregateAll(t, agg, g.records)
				want, _ := base64.StdEncoding.DecodeString(encoded[0].Data)
				if !bytes.Equal(rec.Data, want) {
					t.Fatalf("Shardline's aggregate differs from aws-kinesis-agg's:\n got  %x\n want %x", head(rec.Data), head(want))
				}
			}
		})
	}
	if next != len(decodeOut.Results) {
		t.Fatalf("decoded %d records, node returned %d results", next, len(decodeOut.Results))
	}
}

// renumber drops the per-aggregate subsequence numbers so that records from
// several aggregates compare with one input list.
func renumber(recs []UserRecord) []UserRecord {
	out := make([]UserRecord, len(recs))
	for i, r := range recs {
		r.SubSequenceNumber = int64(i)
		out[i] = r
	}
	return out
}

func head(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// TestInteropNodeDecodes has Shardline aggregate records, at the default
// aggregate size so that groups span several Kinesis records, and checks
// that aws-kinesis-agg decodes them to exactly the input records.
func TestInteropNodeDecodes(t *testing.T) {
	groups := interopGroups(false)
	type emitted struct {
		group int
		rec   KinesisRecord
	}
	var all []emitted
	for gi, g := range groups {
		agg := Aggregator{UnwrapSingle: g.unwrap}
		for i, r := range g.records {
			err := agg.Add(r)
			if err == ErrFull {
				rec, _ := agg.Flush()
				all = append(all, emitted{gi, rec})
				err = agg.Add(r)
			}
			if err != nil {
				t.Fatalf("%s: record %d: %v", g.name, i, err)
			}
		}
		rec, _ := agg.Flush()
		all = append(all, emitted{gi, rec})
	}

	var in struct {
		Records []jsRecord `json:"records"`
	}
	for _, e := range all {
		ehk := e.rec.ExplicitHashKey
		in.Records = append(in.Records, jsRecord{PK: e.rec.PartitionKey, EHK: &ehk, Data: base64.StdEncoding.EncodeToString(e.rec.Data)})
	}
	var out struct {
		Results []struct {
			Error   *string    `json:"error"`
			Records []jsRecord `json:"records"`
		} `json:"results"`
	}
	runNode(t, "deaggregate", in, &out)
	if len(out.Results) != len(all) {
		t.Fatalf("node returned %d results for %d records", len(out.Results), len(all))
	}

	perGroup := make([][]UserRecord, len(groups))
	unwrapped, aggregates := 0, 0
	for i, e := range all {
		res := out.Results[i]
		if res.Error != nil {
			t.Fatalf("%s: aws-kinesis-agg rejects Kinesis record %d: %s", groups[e.group].name, i, *res.Error)
		}
		if len(res.Records) != e.rec.Records {
			t.Fatalf("%s: Kinesis record %d holds %d user records, node found %d", groups[e.group].name, i, e.rec.Records, len(res.Records))
		}
		for j, r := range res.Records {
			u := fromJS(t, r)
			if u.Aggregated != e.rec.Aggregated || (e.rec.Aggregated && u.SubSequenceNumber != int64(j)) {
				t.Fatalf("%s: Kinesis record %d, user record %d: %s", groups[e.group].name, i, j, describe(u))
			}
			u.SubSequenceNumber, u.Aggregated = 0, false
			perGroup[e.group] = append(perGroup[e.group], u)
		}
		if e.rec.Aggregated {
			aggregates++
		} else {
			unwrapped++
		}
	}
	if aggregates < len(groups) || unwrapped < 3 {
		t.Fatalf("only %d aggregates and %d unwrapped records: the groups do not exercise both", aggregates, unwrapped)
	}
	for gi, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			want := make([]UserRecord, len(g.records))
			for i, r := range g.records {
				want[i] = UserRecord{PartitionKey: r.PartitionKey, ExplicitHashKey: r.ExplicitHashKey, Data: r.Data}
			}
			sameRecords(t, perGroup[gi], want)
		})
	}
	t.Log(fmt.Sprintf("aws-kinesis-agg decoded %d aggregates and %d unwrapped records", aggregates, unwrapped))
}
