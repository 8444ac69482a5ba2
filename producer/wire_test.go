package producer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
	"github.com/aws/smithy-go/transport/http/protocol/rpcv2"
)

var putRecordsSchema = smithy.NewOperationSchema(schemas.PutRecords, schemas.PutRecordsInput, schemas.PutRecordsOutput)

// trickyKeys are partition keys (and strings in general) that JSON must escape, or that
// look as if it had to.
var trickyKeys = []string{
	"plain-key",
	`quote"inside`,
	`back\slash`,
	`\"`,
	"nul\x00ctl\x01\x1f",
	"del\x7f",
	"nl\ncr\rtab\t",
	"</script>&<>'",
	"héllo wörld",
	"日本語のキー",
	"emoji 😀🚀",
	"line\u2028para\u2029sep",
	"invalid\xff\xfeutf8",
	"truncated\xe6\x97",
	"\xc0\xaf overlong",
	strings.Repeat("k", 256),
	strings.Repeat("é", 256),
}

// sdkBody serializes in with the SDK's own AWS JSON 1.1 protocol.
func sdkBody(t testing.TB, in *kinesis.PutRecordsInput) (*smithyhttp.Request, []byte) {
	t.Helper()
	req := smithyhttp.NewStackRequest().(*smithyhttp.Request)
	if err := awsjson.New11(schemas.Kinesis_20131202).SerializeRequest(context.Background(), putRecordsSchema, in, req); err != nil {
		t.Fatal(err)
	}
	return req, readStream(t, req)
}

// fastBody serializes in with the producer's stand-in.
func fastBody(t testing.TB, in *kinesis.PutRecordsInput, w *putRecordsBody) (*smithyhttp.Request, []byte) {
	t.Helper()
	o := kinesis.Options{Protocol: awsjson.New11(schemas.Kinesis_20131202)}
	w.in = in
	w.useFastBody(&o)
	if o.Protocol != smithyhttp.ClientProtocol(w) {
		t.Fatal("the stand-in was not installed for the AWS JSON 1.1 protocol")
	}
	req := smithyhttp.NewStackRequest().(*smithyhttp.Request)
	if err := o.Protocol.SerializeRequest(context.Background(), putRecordsSchema, in, req); err != nil {
		t.Fatal(err)
	}
	return req, readStream(t, req)
}

func readStream(t testing.TB, req *smithyhttp.Request) []byte {
	t.Helper()
	if req.GetStream() == nil {
		return nil
	}
	b, err := io.ReadAll(req.GetStream())
	if err != nil {
		t.Fatal(err)
	}
	if err := req.RewindStream(); err != nil {
		t.Fatal(err)
	}
	return b
}

// checkSameBody compares the producer's body for in with the SDK's: same bytes, same decoded
// JSON, same headers and length.
func checkSameBody(t testing.TB, in *kinesis.PutRecordsInput, w *putRecordsBody) {
	t.Helper()
	sreq, want := sdkBody(t, in)
	freq, got := fastBody(t, in, w)
	if !bytes.Equal(got, want) {
		t.Fatalf("body differs from the SDK's\n got: %q\nwant: %q", got, want)
	}
	if n := putRecordsJSONLen(in); n != len(got) {
		t.Fatalf("computed length %d, body %d bytes", n, len(got))
	}
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("body is not JSON: %v\n%q", err, got)
	}
	if err := json.Unmarshal(want, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("decoded bodies differ:\n got: %v\nwant: %v", a, b)
	}
	if freq.ContentLength != int64(len(got)) || !freq.IsStreamSeekable() {
		t.Fatalf("Content-Length %d for a body of %d bytes (seekable %v)", freq.ContentLength, len(got), freq.IsStreamSeekable())
	}
	if !reflect.DeepEqual(freq.Header, sreq.Header) || freq.Method != sreq.Method || freq.URL.Path != sreq.URL.Path {
		t.Fatalf("request differs: %s %s %v, SDK %s %s %v", freq.Method, freq.URL.Path, freq.Header, sreq.Method, sreq.URL.Path, sreq.Header)
	}
}

func binaryData() []byte {
	b := make([]byte, 256*3+1)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestFastBodyMatchesSDK(t *testing.T) {
	var entries []types.PutRecordsRequestEntry
	for i, k := range trickyKeys {
		e := types.PutRecordsRequestEntry{PartitionKey: aws.String(k), Data: []byte(k)}
		switch i % 4 {
		case 1:
			e.Data = []byte{}
		case 2:
			e.Data = binaryData()[:i*7]
			e.ExplicitHashKey = aws.String("340282366920938463463374607431768211455")
		case 3:
			e.ExplicitHashKey = aws.String(k) // escaping, not validity, is under test
		}
		entries = append(entries, e)
	}
	w := &putRecordsBody{}
	cases := map[string]*kinesis.PutRecordsInput{
		"tricky":      {StreamName: aws.String("stream"), Records: entries},
		"arn":         {StreamARN: aws.String("arn:aws:kinesis:us-east-1:123456789012:stream/s"), Records: entries[:3]},
		"both":        {StreamName: aws.String(`odd"name`), StreamARN: aws.String("arn:aws:kinesis:eu-west-1:1:stream/é"), Records: entries[5:9]},
		"binary":      {StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: binaryData()}}},
		"empty data":  {StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: []byte{}}}},
		"nil data":    {StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k")}}},
		"nil key":     {StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{Data: []byte("x")}}},
		"no records":  {StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{}},
		"nil records": {StreamName: aws.String("s")},
		"nothing":     {},
		"records only": {Records: []types.PutRecordsRequestEntry{
			{PartitionKey: aws.String("a"), Data: []byte("1")}, {PartitionKey: aws.String("b"), Data: []byte("22")}, {PartitionKey: aws.String("c"), Data: []byte("333")},
		}},
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) { checkSameBody(t, in, w) })
	}
	// The buffer is reused: a smaller body after a larger one is still exact.
	checkSameBody(t, cases["tricky"], w)
	checkSameBody(t, cases["nil key"], w)
}

// TestFastBodyEveryCharacter escapes each ASCII byte, and each byte that cannot start
// UTF-8, alone and amid other text.
func TestFastBodyEveryCharacter(t *testing.T) {
	w := &putRecordsBody{}
	var recs []types.PutRecordsRequestEntry
	for c := range 256 {
		k := string([]byte{byte(c)})
		recs = append(recs, types.PutRecordsRequestEntry{PartitionKey: aws.String(k), Data: []byte{byte(c)}},
			types.PutRecordsRequestEntry{PartitionKey: aws.String("a" + k + "é" + k + "z"), Data: []byte(k)})
	}
	checkSameBody(t, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: recs}, w)
}

// TestFastBodyEveryLength base64-encodes data of every length up to a few vector widths,
// at every offset in the body, since the vectorized encoder takes different paths by
// length and leaves the tail to scalar code.
func TestFastBodyEveryLength(t *testing.T) {
	w := &putRecordsBody{}
	data := binaryData()
	var recs []types.PutRecordsRequestEntry
	for n := range 200 {
		recs = append(recs, types.PutRecordsRequestEntry{PartitionKey: aws.String(strings.Repeat("k", 1+n%7)), Data: data[n : n+n]})
	}
	checkSameBody(t, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: recs}, w)
	big := make([]byte, 1<<20+5)
	for i := range big {
		big[i] = byte(i * 131)
	}
	checkSameBody(t, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: big}}}, w)
}

func FuzzFastBody(f *testing.F) {
	for _, k := range trickyKeys {
		f.Add(k, []byte(k), "")
	}
	f.Add("k", []byte{}, "0")
	f.Add("", []byte(nil), "\x00")
	w := &putRecordsBody{}
	f.Fuzz(func(t *testing.T, pk string, data []byte, ehk string) {
		e := types.PutRecordsRequestEntry{PartitionKey: aws.String(pk), Data: data}
		if ehk != "" {
			e.ExplicitHashKey = aws.String(ehk)
		}
		in := &kinesis.PutRecordsInput{StreamName: aws.String(pk), Records: []types.PutRecordsRequestEntry{e, e}}
		checkSameBody(t, in, w)
	})
}

// TestFastBodyLeavesOthersAlone checks that the stand-in is installed only over the AWS JSON
// 1.1 protocol and serializes only its own PutRecords input.
func TestFastBodyLeavesOthersAlone(t *testing.T) {
	w := &putRecordsBody{in: &kinesis.PutRecordsInput{}}
	cbor := rpcv2.NewCBOR(schemas.Kinesis_20131202)
	o := kinesis.Options{Protocol: cbor}
	w.useFastBody(&o)
	if o.Protocol != smithyhttp.ClientProtocol(cbor) {
		t.Fatal("the stand-in replaced the RPC v2 CBOR protocol")
	}
	json10 := awsjson.New10(schemas.Kinesis_20131202)
	o.Protocol = json10
	w.useFastBody(&o)
	if o.Protocol != smithyhttp.ClientProtocol(json10) {
		t.Fatal("the stand-in replaced the AWS JSON 1.0 protocol")
	}

	// Another input (here another PutRecordsInput, with DryRun) goes to the SDK.
	o.Protocol = awsjson.New11(schemas.Kinesis_20131202)
	w.useFastBody(&o)
	other := &kinesis.PutRecordsInput{StreamName: aws.String("s"), DryRun: aws.Bool(true)}
	for _, in := range []*kinesis.PutRecordsInput{other, {StreamName: aws.String("s"), StreamId: aws.String("id")}} {
		if in.DryRun == nil {
			w.in = in // its own input, but with a member the stand-in does not write
		}
		req := smithyhttp.NewStackRequest().(*smithyhttp.Request)
		if err := o.Protocol.SerializeRequest(context.Background(), putRecordsSchema, in, req); err != nil {
			t.Fatal(err)
		}
		_, want := sdkBody(t, in)
		if got := readStream(t, req); !bytes.Equal(got, want) {
			t.Fatalf("got %s, want the SDK's %s", got, want)
		}
	}
}

// TestFastBodySigned sends PutRecords through a real kinesis client to a local server, with
// and without the stand-in, and checks that the server receives the SDK's bytes with the
// right Content-Length, and that the SigV4 signature is the one of the body received.
func TestFastBodySigned(t *testing.T) {
	type seen struct {
		header http.Header
		body   []byte
		method string
		path   string
	}
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.ContentLength != int64(len(body)) {
			t.Errorf("Content-Length %d, body %d bytes", r.ContentLength, len(body))
		}
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		mu.Lock()
		got = append(got, seen{h, body, r.Method, r.URL.Path})
		mu.Unlock()
		var in struct{ Records []json.RawMessage }
		if err := json.Unmarshal(body, &in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		var b strings.Builder
		b.WriteString(`{"FailedRecordCount":0,"Records":[`)
		for i := range in.Records {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"SequenceNumber":"1","ShardId":"shardId-000000000000"}`)
		}
		b.WriteString(`]}`)
		_, _ = io.WriteString(w, b.String())
	}))
	defer srv.Close()

	creds := aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "SECRET"}
	kc := kinesis.New(kinesis.Options{
		Region:       "us-east-1",
		Credentials:  credentials.StaticCredentialsProvider{Value: creds},
		BaseEndpoint: aws.String(srv.URL),
		HTTPClient:   srv.Client(),
	})
	var entries []types.PutRecordsRequestEntry
	for i, k := range trickyKeys {
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(k), Data: binaryData()[:i*40]})
	}
	in := &kinesis.PutRecordsInput{StreamName: aws.String("stream"), Records: entries}
	w := &putRecordsBody{in: in}
	for _, opts := range [][]func(*kinesis.Options){nil, {w.useFastBody}} {
		out, err := kc.PutRecords(context.Background(), in, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Records) != len(entries) || aws.ToString(out.Records[0].ShardId) != "shardId-000000000000" {
			t.Fatalf("output %+v", out)
		}
	}
	if len(got) != 2 {
		t.Fatalf("%d requests", len(got))
	}
	if !bytes.Equal(w.buf, got[1].body) {
		t.Fatal("the stand-in did not build the body of the call it was given to")
	}
	sdk, fast := got[0], got[1]
	if !bytes.Equal(fast.body, sdk.body) {
		t.Fatalf("server received\n%q\nfrom the stand-in, and\n%q\nfrom the SDK", fast.body, sdk.body)
	}
	for _, s := range []seen{sdk, fast} {
		auth := s.header.Get("Authorization")
		i := strings.Index(auth, "SignedHeaders=")
		if i < 0 {
			t.Fatalf("Authorization %q", auth)
		}
		signed := strings.Split(strings.SplitN(auth[i+len("SignedHeaders="):], ",", 2)[0], ";")
		req, _ := http.NewRequest(s.method, srv.URL+s.path, bytes.NewReader(s.body))
		for _, h := range signed {
			if h == "host" || h == "x-amz-date" {
				continue
			}
			req.Header[http.CanonicalHeaderKey(h)] = s.header.Values(h)
		}
		at, err := time.Parse("20060102T150405Z", s.header.Get("X-Amz-Date"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(s.body)
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "kinesis", "us-east-1", at); err != nil {
			t.Fatal(err)
		}
		if want := req.Header.Get("Authorization"); want != auth {
			t.Fatalf("signature does not cover the body sent:\n got %s\nwant %s", auth, want)
		}
	}
}

// decodeWith decodes a 200 answer to PutRecords with the given protocol.
func decodeWith(proto smithyhttp.ClientProtocol, body []byte) (*kinesis.PutRecordsOutput, error) {
	out := &kinesis.PutRecordsOutput{}
	resp := &smithyhttp.Response{Response: &http.Response{StatusCode: 200, Header: http.Header{},
		Body: io.NopCloser(bytes.NewReader(body))}}
	err := proto.DeserializeResponse(context.Background(), putRecordsSchema, kinesis.TypeRegistry, resp, out)
	return out, err
}

// outputView is a PutRecordsOutput with pointers followed, for comparing decodings.
type outputView struct {
	Failed     *int32
	Encryption types.EncryptionType
	Records    []entryView
}

type entryView struct{ Seq, Shard, Code, Message string }

func viewOf(o *kinesis.PutRecordsOutput) outputView {
	v := outputView{Failed: o.FailedRecordCount, Encryption: o.EncryptionType}
	for _, e := range o.Records {
		v.Records = append(v.Records, entryView{aws.ToString(e.SequenceNumber), aws.ToString(e.ShardId),
			aws.ToString(e.ErrorCode), aws.ToString(e.ErrorMessage)})
	}
	return v
}

var answers = []string{
	`{"FailedRecordCount":0,"Records":[{"SequenceNumber":"49590338271490256608559692538361571095921575989136588898","ShardId":"shardId-000000000000"},{"SequenceNumber":"2","ShardId":"shardId-000000000001"}]}`,
	`{"EncryptionType":"KMS","FailedRecordCount":2,"Records":[{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded for shard shardId-000000000001 in stream s under account 123."},{"SequenceNumber":"7","ShardId":"shardId-000000000001"},{"ErrorCode":"InternalFailure","ErrorMessage":"Internal service failure."}]}`,
	` { "Records" : [ { "ShardId" : "shardId-2" , "SequenceNumber" : "5" } ] , "FailedRecordCount" : 0 , "EncryptionType" : "NONE" } `,
	"{\n\t\"Records\": [\r\n{\"SequenceNumber\": \"1\", \"ShardId\": \"s\"}\n]}\n",
	`{"Records":[{"SequenceNumber":"1","ShardId":"a","Extra":{"x":[1,2,{"y":null}],"z":"\"}"},"More":-1.5e3},null,{}],"Unknown":[true,false,null,"s",{}],"FailedRecordCount":0}`,
	`{"Records":[{"SequenceNumber":"1\u0032","ShardId":"shard\u002dId","ErrorMessage":"quote \" back \\ nl \n uni \u00e9 \ud83d\ude00"}]}`,
	`{"Records":[{"SequenceNumber":null,"ShardId":null,"ErrorCode":null,"ErrorMessage":null}],"FailedRecordCount":null,"EncryptionType":null}`,
	`{"Records":[],"FailedRecordCount":0}`,
	`{"Records":null}`,
	`{}`,
	`{"\u0052ecords":[{"SequenceNumber":"9","ShardId":"x"}]}`,
	`{"EncryptionType":"SOMETHING_NEW","FailedRecordCount":-3,"Records":[{"SequenceNumber":"1","ShardId":"s"}]}`,
	`{"FailedRecordCount":2147483647,"Records":[{"ErrorCode":"KMSThrottlingException","ErrorMessage":"é😀"}]}`,
}

// TestFastAnswerMatchesSDK decodes answers with the stand-in and with the SDK and compares.
func TestFastAnswerMatchesSDK(t *testing.T) {
	w := &putRecordsBody{ClientProtocol: awsjson.New11(schemas.Kinesis_20131202)}
	for _, a := range answers {
		want, err := decodeWith(w.ClientProtocol, []byte(a))
		if err != nil {
			t.Fatalf("SDK: %v\n%s", err, a)
		}
		got, err := decodeWith(w, []byte(a))
		if err != nil {
			t.Fatalf("stand-in: %v\n%s", err, a)
		}
		if g, w := viewOf(got), viewOf(want); !reflect.DeepEqual(g, w) {
			t.Fatalf("answer %s\n got %+v\nwant %+v", a, g, w)
		}
	}
	// Sequence numbers survive the batch's next answer: results keep them.
	first, _ := decodeWith(w, []byte(answers[0]))
	seq := aws.ToString(first.Records[0].SequenceNumber)
	_, _ = decodeWith(w, []byte(answers[1]))
	if seq != "49590338271490256608559692538361571095921575989136588898" {
		t.Fatalf("sequence number became %q", seq)
	}
}

// TestFastAnswerRejectsMalformed checks that broken answers are errors, not partial results.
func TestFastAnswerRejectsMalformed(t *testing.T) {
	w := &putRecordsBody{ClientProtocol: awsjson.New11(schemas.Kinesis_20131202)}
	for _, a := range []string{
		`{"Records":[{"SequenceNumber":"1"}]`,
		`{"Records":[{"SequenceNumber":"1"]}`,
		`{"Records":[{"SequenceNumber":1}]}`,
		`{"FailedRecordCount":"0"}`,
		`{"FailedRecordCount":99999999999}`,
		`{"Records":{}}`,
		`{"Records":[{"ShardId":"a\x01b"}]}`,
		`{"Records":[{"SequenceNumber":"1"}]} trailing`,
		`{"Records":[{"SequenceNumber":"\q"}]}`,
		`{"Unknown":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
		`{"Unknown":tru}`,
		`{"Unknown":01x}`,
		`[1]`,
		`"Records"`,
		`null`,
	} {
		if _, err := decodeWith(w, []byte(a)); err == nil {
			t.Errorf("answer %s decoded without error", a)
		}
	}
}

// TestFastAnswerErrorsToSDK checks that error answers are decoded by the SDK into the
// service's error types.
func TestFastAnswerErrorsToSDK(t *testing.T) {
	w := &putRecordsBody{ClientProtocol: awsjson.New11(schemas.Kinesis_20131202)}
	resp := &smithyhttp.Response{Response: &http.Response{StatusCode: 400, Header: http.Header{},
		Body: io.NopCloser(strings.NewReader(`{"__type":"ResourceNotFoundException","message":"Stream s not found"}`))}}
	err := w.DeserializeResponse(context.Background(), putRecordsSchema, kinesis.TypeRegistry, resp, &kinesis.PutRecordsOutput{})
	var rnf *types.ResourceNotFoundException
	if !errors.As(err, &rnf) {
		t.Fatalf("error %T %v, want *types.ResourceNotFoundException", err, err)
	}
}

func FuzzFastAnswer(f *testing.F) {
	for _, a := range answers {
		f.Add([]byte(a))
	}
	sdk := awsjson.New11(schemas.Kinesis_20131202)
	w := &putRecordsBody{ClientProtocol: sdk}
	f.Fuzz(func(t *testing.T, a []byte) {
		want, werr := decodeWith(sdk, a)
		got, gerr := decodeWith(w, a)
		if werr == nil && gerr == nil {
			if g, w := viewOf(got), viewOf(want); !reflect.DeepEqual(g, w) {
				t.Fatalf("answer %q\n got %+v\nwant %+v", a, g, w)
			}
		}
		if gerr == nil && werr != nil && json.Valid(a) {
			t.Fatalf("answer %q: stand-in accepted what the SDK refused (%v)", a, werr)
		}
		// The SDK tolerates some malformed answers (data after the object, for one), which
		// the stand-in refuses; on JSON they must agree.
		if werr == nil && gerr != nil && json.Valid(a) {
			t.Fatalf("answer %q: stand-in refused what the SDK accepted (%v)", a, gerr)
		}
	})
}

// TestFastAnswerAllocations checks that decoding an answer of many entries allocates a
// handful of times, not per entry.
func TestFastAnswerAllocations(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"FailedRecordCount":0,"Records":[`)
	for i := range 500 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"SequenceNumber":"4959033827149025660855969253836157109592157598913658%04d","ShardId":"shardId-%012d"}`, i, i%4)
	}
	b.WriteString(`]}`)
	body := []byte(b.String())
	w := &putRecordsBody{ClientProtocol: awsjson.New11(schemas.Kinesis_20131202)}
	out := &kinesis.PutRecordsOutput{}
	resp := &smithyhttp.Response{Response: &http.Response{StatusCode: 200, Header: http.Header{}}}
	rd := bytes.NewReader(body)
	resp.Body = io.NopCloser(rd)
	allocs := testing.AllocsPerRun(50, func() {
		rd.Reset(body)
		*out = kinesis.PutRecordsOutput{}
		if err := w.DeserializeResponse(context.Background(), putRecordsSchema, kinesis.TypeRegistry, resp, out); err != nil {
			t.Fatal(err)
		}
	})
	if len(out.Records) != 500 || aws.ToString(out.Records[499].ShardId) != "shardId-000000000003" {
		t.Fatalf("decoded %d entries", len(out.Records))
	}
	if allocs > 2 {
		t.Fatalf("%.0f allocations to decode 500 entries", allocs)
	}
}
