package kinesisjson

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithytime "github.com/aws/smithy-go/time"
	"github.com/aws/smithy-go/transport/http/protocol/rpcv2"
)

// inData reports whether b lies in the decoder's Data buffer, that is, whether the decoder
// and not the SDK decoded it.
func inData(d *GetRecordsDecoder, b []byte) bool {
	if len(b) == 0 || len(d.data) == 0 {
		return false
	}
	p, lo := uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&d.data[0]))
	return p >= lo && p < lo+uintptr(len(d.data))
}

// TestMatchesSDKThroughClient sends generated answers to a real kinesis client, once with
// the decoder's option and once without, and compares what the two calls return.
func TestMatchesSDKThroughClient(t *testing.T) {
	srv := newCannedServer(t)
	client := srv.client()
	d := &GetRecordsDecoder{}
	g := &gen{r: rand.New(rand.NewPCG(1, 2))}
	ctx := context.Background()
	accepted, records, usedFast := 0, 0, 0
	const answers = 400
	for i := range answers {
		body := g.answer()
		srv.answer(200, body, nil)
		want, wantErr := client.GetRecords(ctx, getRecordsIn())
		got, gotErr := client.GetRecords(ctx, getRecordsIn(), d.Option())
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("answer %d: SDK error %v, decoder error %v\n%.2000s", i, wantErr, gotErr, body)
		}
		if wantErr != nil {
			continue
		}
		accepted++
		if diff := sameOutput(got, want); diff != "" {
			t.Fatalf("answer %d differs: %s\n%.3000s", i, diff, body)
		}
		records += len(got.Records)
		for _, r := range got.Records {
			if inData(d, r.Data) {
				usedFast++
				break
			}
		}
	}
	// The generator writes valid answers but for rare timestamps out of range; most must be
	// accepted, or the comparison proves little.
	if accepted < answers*9/10 || records < answers*10 || usedFast < answers/2 {
		t.Fatalf("only %d of %d answers accepted, %d records, %d decoded by the decoder", accepted, answers, records, usedFast)
	}
}

// TestMatchesSDK compares the decoder with the SDK's protocol directly on many more answers
// than the client test, reusing one decoder throughout, as a shard reader does.
func TestMatchesSDK(t *testing.T) {
	d := &GetRecordsDecoder{}
	g := &gen{r: rand.New(rand.NewPCG(3, 4))}
	n := 1500
	if testing.Short() {
		n = 300
	}
	for i := range n {
		body := g.answer()
		checkSame(t, d, body)
		if t.Failed() {
			t.Fatalf("answer %d", i)
		}
	}
}

// checkSame decodes body both ways and fails t if the results differ.
func checkSame(t testing.TB, d *GetRecordsDecoder, body []byte) {
	t.Helper()
	want, wantErr := sdkDecode(body)
	got, gotErr := fastDecode(d, body)
	if (wantErr == nil) != (gotErr == nil) {
		t.Errorf("SDK error %v, decoder error %v\n%.2000q", wantErr, gotErr, body)
		return
	}
	if wantErr == nil {
		if diff := sameOutput(got, want); diff != "" {
			t.Errorf("outputs differ: %s\n%.3000q", diff, body)
		}
	}
}

// TestEdgeCases compares the two on hand-written bodies: nulls, empty values, odd
// formatting, escapes, and bodies the SDK rejects.
func TestEdgeCases(t *testing.T) {
	deep := func(n int) string {
		return `{"X":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}`
	}
	bodies := []string{
		``,
		` `,
		`{}`,
		` {} `,
		`null`,
		`[]`,
		`"x"`,
		`{"Records":[]}`,
		`{"Records":null}`,
		`{"Records":[null]}`,
		`{"Records":[{}]}`,
		`{"Records":[{"Data":""}]}`,
		`{"Records":[{"Data":null}]}`,
		`{"Records":[{"Data":"AA=="},{"Data":"AAA="},{"Data":"AAAA"}]}`,
		`{"Records":[{"Data":"AB=="}]}`,         // non-zero trailing bits: accepted by the standard decoder
		`{"Records":[{"Data":"AA"}]}`,           // no padding
		`{"Records":[{"Data":"AA=A"}]}`,         // padding inside
		"{\"Records\":[{\"Data\":\"A\nA==\"}]}", // raw line break: a control character
		`{"Records":[{"Data":"A\nA=="}]}`,       // escaped line break: skipped by base64
		`{"Records":[{"Data":"AA==\r\n"}]}`,
		`{"Records":[{"Data":"\r\nAA\n=\n="}]}`,
		`{"Records":[{"Data":"\u0041A=="}]}`,
		`{"Records":[{"Data":"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\nQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"}]}`,
		`{"Records":[{"Data":"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\u0000QUFB"}]}`,
		`{"Records":[{"Data":"AA\\/="}]}`,
		`{"Records":[{"Data":"AA\"}]}`,
		`{"Records":[{"Data":"QUFB\\"}]}`,
		`{"Records":[{"Data":"é"}]}`,
		`{"Records":[{"Data":5}]}`,
		`{"Records":[{"Data":"AA==","Data":"AAA="}]}`,
		`{"Records":[{"Data":"AA=="}],"Records":[{"Data":"AAA="},{}]}`,
		`{"Records":[{"Data":"AA=="}],"Records":null}`,
		`{"Records":[{"SequenceNumber":"1","SequenceNumber":null}]}`,
		`{"Records":[{"SequenceNumber":"\u00e9\ud83d\ude00\ud800x\udc00\\"}]}`,
		"{\"Records\":[{\"PartitionKey\":\"raw \xff\xfe invalid\"}]}",
		"{\"Records\":[{\"PartitionKey\":\"escaped \\n and raw \xff invalid\"}]}",
		`{"Records":[{"PartitionKey":"\u0000"}]}`,
		`{"Records":[{"PartitionKey":"\x"}]}`,
		`{"Records":[{"PartitionKey":"\u12"}]}`,
		`{"Records":[{"PartitionKey":"\uZZZZ"}]}`,
		"{\"Records\":[{\"PartitionKey\":\"tab\there\"}]}",
		`{"Records":[{"PartitionKey":5}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":1.607466963419E9}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":1607466963.4199}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":-1.5}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":"Infinity"}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":"-INFINITY"}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":"\u0049nfinity"}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":"soon"}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":1e400}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":1e-400}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":9223372036854775807}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":99999999999999999999}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":1.}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":01}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":true}]}`,
		`{"Records":[{"ApproximateArrivalTimestamp":{}}]}`,
		`{"Records":[{"EncryptionType":"KMS"},{"EncryptionType":"NONE"},{"EncryptionType":"\u004bMS"},{"EncryptionType":"new"}]}`,
		`{"Records":[{"EncryptionType":1}]}`,
		`{"Records":[{"\u0044ata":"AA==","Sequence\u004eumber":"7"}]}`,
		`{"Records":[{"data":"AA=="}]}`,
		`{"Records":[{"Data":"AA==",}]}`,
		`{"Records":[{"Data":"AA=="},]}`,
		`{"Records":[,]}`,
		`{"Records":[{"Data":"AA=="}}`,
		`{"Records":[{"Data" "AA=="}]}`,
		`{"Records":{}}`,
		`{"Records":"x"}`,
		`{"NextShardIterator":null,"MillisBehindLatest":null}`,
		`{"NextShardIterator":"","MillisBehindLatest":0}`,
		`{"NextShardIterator":5}`,
		`{"MillisBehindLatest":-0}`,
		`{"MillisBehindLatest":-9223372036854775808}`,
		`{"MillisBehindLatest":9223372036854775807}`,
		`{"MillisBehindLatest":9223372036854775808}`,
		`{"MillisBehindLatest":1.0}`,
		`{"MillisBehindLatest":1e3}`,
		`{"MillisBehindLatest":"5"}`,
		`{"MillisBehindLatest":5x}`,
		`{"ChildShards":[]}`,
		`{"ChildShards":[null]}`,
		`{"ChildShards":[{"ShardId":"shardId-000000000001","ParentShards":["shardId-000000000000",null],"HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"170141183460469231731687303715884105727"}}]}`,
		`{"ChildShards":[{"HashKeyRange":null,"ParentShards":null}]}`,
		`{"ChildShards":[{"HashKeyRange":{}}]}`,
		`{"ChildShards":[{"HashKeyRange":[]}]}`,
		`{"ChildShards":[{"ParentShards":[1]}]}`,
		`{"ChildShards":[{"ParentShards":"x"}]}`,
		`{"ChildShards":[{"ParentShards":[,]}]}`,
		`{"Unknown":{"a":[1,2,{"b":null}],"c":"\"","d":-1.5e-3,"e":true,"f":false}}`,
		`{"Unknown":[1 2]}`,
		`{"Unknown":{"a" 1}}`,
		`{"Unknown":{"a":1,}}`,
		`{"Unknown":nul}`,
		`{"Unknown":nullx}`,
		`{"Unknown":tru}`,
		`{"Unknown":-}`,
		`{"Unknown":+1}`,
		`{"Unknown":.5}`,
		`{"Unknown":1.5e}`,
		`{"Unknown":"\q"}`,
		`{"Unknown":}`,
		`{"Unknown"}`,
		`{"Records":[]} trailing garbage {`,
		`{"Records":[]}}`,
		`{"Records":[]`,
		`{"Records":[{"Data":"AA==`,
		`{"a":1 "b":2}`,
		`{,}`,
		`{"MillisBehindLatest":1,}`,
		deep(MaxDepth - 1),
		deep(MaxDepth),
		`{"Records":[{"X":` + strings.Repeat("[", MaxDepth-3) + strings.Repeat("]", MaxDepth-3) + `}]}`,
		`{"Records":[{"X":` + strings.Repeat("[", MaxDepth-2) + strings.Repeat("]", MaxDepth-2) + `}]}`,
	}
	d := &GetRecordsDecoder{}
	for i, body := range bodies {
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkSame(t, d, []byte(body)) })
	}
}

// TestDepthLimit checks the limit is where the SDK's is, so that the edge cases above are at
// the edge.
func TestDepthLimit(t *testing.T) {
	body := func(n int) []byte {
		return []byte(`{"X":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}`)
	}
	if _, err := sdkDecode(body(MaxDepth)); err != nil {
		t.Fatalf("SDK rejects depth %d: %v", MaxDepth, err)
	}
	if _, err := sdkDecode(body(MaxDepth + 1)); err == nil {
		t.Fatalf("SDK accepts depth %d", MaxDepth+1)
	}
	d := &GetRecordsDecoder{}
	var out kinesis.GetRecordsOutput
	if err := d.Decode(body(MaxDepth), &out); err != nil {
		t.Fatal(err)
	}
	err := d.Decode(body(MaxDepth+1), &out)
	var se *SyntaxError
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "depth") {
		t.Fatalf("depth %d: %v, want a SyntaxError about depth", MaxDepth+1, err)
	}
}

// TestNaNTimestamp documents the one difference: the SDK panics on a "NaN" timestamp, the
// decoder returns an error.
func TestNaNTimestamp(t *testing.T) {
	body := []byte(`{"Records":[{"ApproximateArrivalTimestamp":"nan"}]}`)
	if _, err := sdkDecode(body); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("SDK: %v; expected it to panic (if it no longer does, the difference is gone)", err)
	}
	var out kinesis.GetRecordsOutput
	if err := (&GetRecordsDecoder{}).Decode(body, &out); !errors.Is(err, errNaNTime) {
		t.Fatalf("decoder: %v, want errNaNTime", err)
	}
}

// TestEpochSecondsTime compares the conversion with smithy-go's on values where rounding,
// truncation, range and overflow all come into play.
func TestEpochSecondsTime(t *testing.T) {
	vals := []float64{0, math.Copysign(0, -1), 1, -1, 0.0005, 0.0009999, -0.0005, 1.0005, 1607466963.419,
		1607466963.4199999, 1.607466963419e9, 9.223372036854775e15, 9.223372036854776e15, -9.223372036854776e15,
		9.3e15, -9.3e15, 9.2e18, 1e300, -1e300, math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64,
		math.Inf(1), math.Inf(-1), 0x1p63 / 1000, -0x1p63 / 1000, math.Nextafter(0x1p63/1000, 0), math.Nextafter(-0x1p63/1000, 0)}
	r := rand.New(rand.NewPCG(5, 6))
	for range 200_000 {
		var f float64
		switch r.IntN(4) {
		case 0:
			f = math.Float64frombits(r.Uint64())
		case 1:
			f = r.Float64() * 2e9
		case 2:
			f = float64(r.Int64N(2e12)) / 1000
		default:
			f = r.NormFloat64() * math.Pow(10, float64(r.IntN(40)-20))
		}
		if !math.IsNaN(f) {
			vals = append(vals, f)
		}
	}
	for _, f := range vals {
		if got, want := epochSecondsTime(f), smithytime.ParseEpochSeconds(f); got != want {
			t.Fatalf("%v (%b): %v, SDK %v", f, f, got, want)
		}
	}
}

// TestFloat64MatchesParseFloat checks the exact fast path against strconv on decimal forms.
func TestFloat64MatchesParseFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var s Scanner
	for range 200_000 {
		var tok string
		switch r.IntN(5) {
		case 3:
			tok = strconv.FormatFloat(1.6e9+r.Float64()*1e8, 'E', -1, 64)
		case 4:
			tok = fmt.Sprintf("%d.%dE%+d", r.IntN(10), r.Int64N(1e14), r.IntN(60)-30)
		case 0:
			tok = fmt.Sprintf("%d.%0*d", r.Int64N(1e10), 1+r.IntN(8), r.Int64N(1e8))
		case 1:
			tok = fmt.Sprintf("-%d.%d", r.Int64N(1e15), r.Int64N(1000))
		default:
			tok = fmt.Sprintf("0.%0*d", r.IntN(22), r.Int64N(1e6))
		}
		s.Reset([]byte(tok))
		got, err := s.Float64()
		want, werr := strconv.ParseFloat(tok, 64) // what the SDK's readFloat calls
		if err != nil || werr != nil || math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%s: %v (%v), want %v (%v)", tok, got, err, want, werr)
		}
	}
}

// TestErrorAnswersGoToTheSDK checks that error answers still become the service's typed
// errors with the option, and that other operations are not touched.
func TestErrorAnswersGoToTheSDK(t *testing.T) {
	srv := newCannedServer(t)
	client := srv.client()
	d := &GetRecordsDecoder{}
	ctx := context.Background()
	srv.answer(400, []byte(`{"__type":"ExpiredIteratorException","message":"Iterator expired"}`), nil)
	_, err := client.GetRecords(ctx, getRecordsIn(), d.Option())
	var expired *types.ExpiredIteratorException
	if !errors.As(err, &expired) || expired.ErrorMessage() != "Iterator expired" {
		t.Fatalf("error %v, want an ExpiredIteratorException", err)
	}
	srv.answer(400, []byte(`{"__type":"ProvisionedThroughputExceededException","message":"slow down"}`), nil)
	_, err = client.GetRecords(ctx, getRecordsIn(), d.Option())
	var pte *types.ProvisionedThroughputExceededException
	if !errors.As(err, &pte) {
		t.Fatalf("error %v, want a ProvisionedThroughputExceededException", err)
	}
	srv.answer(500, nil, nil)
	_, err = client.GetRecords(ctx, getRecordsIn(), d.Option())
	var re interface{ HTTPStatusCode() int }
	if !errors.As(err, &re) || re.HTTPStatusCode() != 500 {
		t.Fatalf("error %v, want an HTTP 500", err)
	}
	// Another operation with the option: decoded by the SDK.
	srv.answer(200, []byte(`{"Shards":[{"ShardId":"shardId-000000000000","HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"1"},"SequenceNumberRange":{"StartingSequenceNumber":"1"}}]}`), nil)
	ls, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")}, func(o *kinesis.Options) { d.Option()(o) })
	if err != nil || len(ls.Shards) != 1 || aws.ToString(ls.Shards[0].ShardId) != "shardId-000000000000" {
		t.Fatalf("ListShards through the option: %+v, %v", ls, err)
	}
	// A malformed success answer is a deserialization error, as with the SDK.
	srv.answer(200, []byte(`{"Records":[{"Data":"!!"}]}`), nil)
	_, err = client.GetRecords(ctx, getRecordsIn(), d.Option())
	var de *smithy.DeserializationError
	if !errors.As(err, &de) {
		t.Fatalf("error %v, want a DeserializationError", err)
	}
	// And the decoder still works after all that.
	srv.answer(200, []byte(`{"Records":[{"Data":"AQID","SequenceNumber":"1"}],"NextShardIterator":"next"}`), nil)
	out, err := client.GetRecords(ctx, getRecordsIn(), d.Option())
	if err != nil || len(out.Records) != 1 || string(out.Records[0].Data) != "\x01\x02\x03" || !inData(d, out.Records[0].Data) {
		t.Fatalf("after errors: %+v, %v", out, err)
	}
}

// TestOnlyAWSJSON11 checks the option leaves a client speaking another protocol alone.
func TestOnlyAWSJSON11(t *testing.T) {
	d := &GetRecordsDecoder{}
	cbor := rpcv2.NewCBOR(schemas.Kinesis_20131202)
	o := kinesis.Options{Protocol: cbor}
	d.Option()(&o)
	if o.Protocol != cbor {
		t.Fatalf("protocol %T replaced", o.Protocol)
	}
	o = kinesis.Options{Protocol: sdkProtocol}
	d.Option()(&o)
	first := o.Protocol
	o = kinesis.Options{Protocol: sdkProtocol}
	d.Option()(&o)
	if _, ok := o.Protocol.(*standIn); !ok || o.Protocol != first {
		t.Fatalf("protocol %T, want the same stand-in for the same client protocol", o.Protocol)
	}
}

// TestOwnership checks the documented rule: Data and the records are reused by the next
// decode; strings, the iterator and child shards are not.
func TestOwnership(t *testing.T) {
	d := &GetRecordsDecoder{}
	var a, b kinesis.GetRecordsOutput
	first := []byte(`{"Records":[{"Data":"AQID","SequenceNumber":"111","PartitionKey":"pk1","ApproximateArrivalTimestamp":1.5}],"NextShardIterator":"it1","MillisBehindLatest":1,"ChildShards":[{"ShardId":"c1","ParentShards":["p1"]}]}`)
	second := []byte(`{"Records":[{"Data":"BAUG","SequenceNumber":"222","PartitionKey":"pk2","ApproximateArrivalTimestamp":2.5}],"NextShardIterator":"it2","MillisBehindLatest":2}`)
	if err := d.Decode(first, &a); err != nil {
		t.Fatal(err)
	}
	seq, key, it, behind, child := *a.Records[0].SequenceNumber, *a.Records[0].PartitionKey, a.NextShardIterator, a.MillisBehindLatest, a.ChildShards
	data := a.Records[0].Data
	if err := d.Decode(second, &b); err != nil {
		t.Fatal(err)
	}
	if seq != "111" || key != "pk1" || *it != "it1" || *behind != 1 || *child[0].ShardId != "c1" || child[0].ParentShards[0] != "p1" {
		t.Fatalf("kept values changed: %q %q %q %d %+v", seq, key, *it, *behind, child)
	}
	if string(data) != "\x04\x05\x06" || *a.Records[0].SequenceNumber != "222" {
		t.Fatalf("Data %x, sequence number %q: the records were not reused", data, *a.Records[0].SequenceNumber)
	}
	if cap(b.Records[0].Data) != 3 {
		t.Fatalf("Data capacity %d: an append would run into the next record", cap(b.Records[0].Data))
	}
}

// TestBusyFallsBackToSDK checks that a decode overlapping another leaves the decoder's
// memory alone.
func TestBusyFallsBackToSDK(t *testing.T) {
	d := &GetRecordsDecoder{}
	body := []byte(`{"Records":[{"Data":"AQID"}]}`)
	out, err := fastDecode(d, body)
	if err != nil || !inData(d, out.Records[0].Data) {
		t.Fatalf("%v, %v: not decoded by the decoder", out, err)
	}
	d.busy.Store(true)
	out2, err := fastDecode(d, body)
	d.busy.Store(false)
	if err != nil || inData(d, out2.Records[0].Data) || string(out2.Records[0].Data) != "\x01\x02\x03" {
		t.Fatalf("%v, %v: a busy decoder decoded", out2, err)
	}
	if string(out.Records[0].Data) != "\x01\x02\x03" {
		t.Fatal("the first answer's Data was overwritten")
	}
}

// TestBuffersShrink checks a decoder lets its large buffers go after a run of small answers.
func TestBuffersShrink(t *testing.T) {
	d := &GetRecordsDecoder{}
	var out kinesis.GetRecordsOutput
	big := []byte(`{"Records":[{"Data":"` + strings.Repeat("QUFB", 1<<20) + `"}]}`)
	if err := d.Decode(big, &out); err != nil {
		t.Fatal(err)
	}
	if cap(d.data) < 3<<20 {
		t.Fatalf("Data buffer %d bytes", cap(d.data))
	}
	small := []byte(`{"Records":[{"Data":"QUFB"}]}`)
	for range shrinkAfter {
		if err := d.Decode(small, &out); err != nil {
			t.Fatal(err)
		}
	}
	if cap(d.data) > retainedSmall {
		t.Fatalf("Data buffer still %d bytes after %d small answers", cap(d.data), shrinkAfter)
	}
}

// TestStandInDecodesUnderClient proves the option is what decodes, through a real client:
// the records' Data lies in the decoder's buffer.
func TestStandInDecodesUnderClient(t *testing.T) {
	srv := newCannedServer(t)
	client := srv.client()
	d := &GetRecordsDecoder{}
	srv.answer(200, []byte(`{"Records":[{"Data":"AQID"}]}`), http.Header{})
	out, err := client.GetRecords(context.Background(), getRecordsIn(), d.Option())
	if err != nil || !inData(d, out.Records[0].Data) {
		t.Fatalf("%+v, %v: not decoded by the decoder", out, err)
	}
	out, err = client.GetRecords(context.Background(), getRecordsIn())
	if err != nil || inData(d, out.Records[0].Data) {
		t.Fatalf("%+v, %v: decoded by the decoder without its option", out, err)
	}
}

// TestEscapedBase64 pins down what the edge cases rely on: the SDK decodes a Data string's
// escapes before its base64, which skips line breaks, so these are valid answers, and the
// decoder takes its careful path for them.
func TestEscapedBase64(t *testing.T) {
	d := &GetRecordsDecoder{}
	for body, want := range map[string]string{
		`{"Records":[{"Data":"A\nA=="}]}`:                   "\x00",
		`{"Records":[{"Data":"\r\nAA\n=\n="}]}`:             "\x00",
		`{"Records":[{"Data":"\u0041\u0041\u003d\u003d"}]}`: "\x00",
		`{"Records":[{"Data":"AQI\/"}]}`:                    "\x01\x02\x3f",
		`{"Records":[{"Data":"` + strings.Repeat("AQID", 20) + `\n` + strings.Repeat("AQID", 20) + `"}]}`: strings.Repeat("\x01\x02\x03", 40),
	} {
		sdk, err := sdkDecode([]byte(body))
		if err != nil || string(sdk.Records[0].Data) != want {
			t.Fatalf("SDK on %s: %v, %v", body, sdk, err)
		}
		got, err := fastDecode(d, []byte(body))
		if err != nil || string(got.Records[0].Data) != want || !inData(d, got.Records[0].Data) {
			t.Fatalf("decoder on %s: %v, %v", body, got, err)
		}
	}
}

// TestFreshDataIsNeverOverwritten checks FreshData's rule: the Data of an answer stays as
// decoded through later answers, each answer gets a buffer of its own, and the records and
// what their pointers point to are still reused.
func TestFreshDataIsNeverOverwritten(t *testing.T) {
	d := &GetRecordsDecoder{FreshData: true}
	var a, b kinesis.GetRecordsOutput
	if err := d.Decode([]byte(`{"Records":[{"Data":"AQID","SequenceNumber":"1"},{"Data":"BwgJ","SequenceNumber":"2"}]}`), &a); err != nil {
		t.Fatal(err)
	}
	first, second := a.Records[0].Data, a.Records[1].Data
	if !inData(d, first) {
		t.Fatal("Data not decoded by the decoder")
	}
	for i := range 3 {
		body := fmt.Appendf(nil, `{"Records":[{"Data":"BAUG","SequenceNumber":"%d"},{"Data":"//79","SequenceNumber":"x"}]}`, i+3)
		if err := d.Decode(body, &b); err != nil {
			t.Fatal(err)
		}
		if inData(d, first) {
			t.Fatalf("answer %d decoded into the first answer's buffer", i+2)
		}
	}
	if string(first) != "\x01\x02\x03" || string(second) != "\x07\x08\x09" {
		t.Fatalf("first answer's Data %x %x, want 010203 070809", first, second)
	}
	if &a.Records[0] != &b.Records[0] {
		t.Fatal("the Records slice was not reused")
	}
}

// TestErrorAnswersMatchSDK sends each error answer a GetRecords call can get to a client
// with the decoder's option and to one without, and checks both calls fail alike: the same
// typed error (errors.As finds the service's type, which the consumer relies on), code,
// message and status. The codes are GetRecords' errors in the Kinesis API reference
// (https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html).
func TestErrorAnswersMatchSDK(t *testing.T) {
	srv := newCannedServer(t)
	client := srv.client()
	d := &GetRecordsDecoder{FreshData: true}
	ctx := context.Background()
	cases := []struct {
		code   string
		status int
		target func(error) bool
	}{
		{"ExpiredIteratorException", 400, func(err error) bool { var e *types.ExpiredIteratorException; return errors.As(err, &e) }},
		{"ProvisionedThroughputExceededException", 400, func(err error) bool {
			var e *types.ProvisionedThroughputExceededException
			return errors.As(err, &e)
		}},
		{"ResourceNotFoundException", 400, func(err error) bool { var e *types.ResourceNotFoundException; return errors.As(err, &e) }},
		{"InvalidArgumentException", 400, func(err error) bool { var e *types.InvalidArgumentException; return errors.As(err, &e) }},
		{"AccessDeniedException", 400, func(err error) bool { var e *types.AccessDeniedException; return errors.As(err, &e) }},
		{"KMSAccessDeniedException", 400, func(err error) bool { var e *types.KMSAccessDeniedException; return errors.As(err, &e) }},
		{"KMSDisabledException", 400, func(err error) bool { var e *types.KMSDisabledException; return errors.As(err, &e) }},
		{"KMSInvalidStateException", 400, func(err error) bool { var e *types.KMSInvalidStateException; return errors.As(err, &e) }},
		{"KMSNotFoundException", 400, func(err error) bool { var e *types.KMSNotFoundException; return errors.As(err, &e) }},
		{"KMSOptInRequired", 400, func(err error) bool { var e *types.KMSOptInRequired; return errors.As(err, &e) }},
		{"KMSThrottlingException", 400, func(err error) bool { var e *types.KMSThrottlingException; return errors.As(err, &e) }},
		{"InternalFailure", 500, func(err error) bool { var e smithy.APIError; return errors.As(err, &e) }},
	}
	describe := func(err error) string {
		var ae smithy.APIError
		var se interface{ HTTPStatusCode() int }
		s := fmt.Sprintf("%T", errors.Unwrap(err))
		if errors.As(err, &ae) {
			s += fmt.Sprintf(" code=%q message=%q fault=%v", ae.ErrorCode(), ae.ErrorMessage(), ae.ErrorFault())
		}
		if errors.As(err, &se) {
			s += fmt.Sprintf(" status=%d", se.HTTPStatusCode())
		}
		return s
	}
	for _, tc := range cases {
		for _, body := range []string{
			`{"__type":"` + tc.code + `","message":"the message"}`,
			`{"__type":"com.amazonaws.kinesis.v20131202#` + tc.code + `","Message":"other"}`,
		} {
			srv.answer(tc.status, []byte(body), http.Header{"X-Amzn-Errortype": {tc.code + ":http://internal.amazon.com/coral/com.amazonaws.kinesis/"}})
			_, fast := client.GetRecords(ctx, getRecordsIn(), d.Option())
			_, plain := client.GetRecords(ctx, getRecordsIn())
			if fast == nil || !tc.target(fast) {
				t.Errorf("%s: error %v with the decoder, want the service's type", tc.code, fast)
			}
			if f, p := describe(fast), describe(plain); f != p {
				t.Errorf("%s: with the decoder %s, without %s", tc.code, f, p)
			}
		}
	}
}

// TestChildShardsAndLagMatchSDK compares the end of a shard, with ChildShards, no
// NextShardIterator and MillisBehindLatest, null and absent members, through a client.
func TestChildShardsAndLagMatchSDK(t *testing.T) {
	for _, body := range []string{
		`{"Records":[],"MillisBehindLatest":0,"ChildShards":[{"ShardId":"shardId-000000000002","ParentShards":["shardId-000000000000","shardId-000000000001"],"HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"340282366920938463463374607431768211455"}}]}`,
		`{"Records":[{"Data":"AQID","SequenceNumber":"49590338271490256608559692538361571095921575989136588898","PartitionKey":"k","ApproximateArrivalTimestamp":1733280000.123}],"NextShardIterator":null,"MillisBehindLatest":12345,"ChildShards":[{"ShardId":"c","ParentShards":null,"HashKeyRange":null},null]}`,
		`{"Records":null,"NextShardIterator":"it","MillisBehindLatest":null,"ChildShards":null}`,
		`{"NextShardIterator":"it"}`,
		`{}`,
	} {
		checkSame(t, &GetRecordsDecoder{FreshData: true}, []byte(body))
	}
}
