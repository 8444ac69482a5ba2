package kinesistest

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/smithy-go/encoding/cbor"
	"github.com/aws/smithy-go/transport/http/protocol/rpcv2"
)

type wireRecorder struct {
	rt              http.RoundTripper
	reqType, path   string
	respType, proto string
}

func (w *wireRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	w.reqType, w.path = r.Header.Get("Content-Type"), r.URL.Path
	resp, err := w.rt.RoundTrip(r)
	if resp != nil {
		w.respType, w.proto = resp.Header.Get("Content-Type"), resp.Header.Get("Smithy-Protocol")
	}
	return resp, err
}

// TestConformanceCBOR is only meaningful if the client really speaks CBOR; this checks the
// wire.
func TestCBORClientSpeaksCBOR(t *testing.T) {
	srv := NewServer(Options{})
	t.Cleanup(srv.Close)
	rec := &wireRecorder{rt: http.DefaultTransport}
	client := srv.Client(func(o *kinesis.Options) {
		o.Protocol = rpcv2.NewCBOR(schemas.Kinesis_20131202)
		o.HTTPClient = &http.Client{Transport: rec}
	})
	ctx := context.Background()
	if _, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	out, err := client.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte{0, 1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if rec.reqType != "application/cbor" || rec.path != cborPathPrefix+"PutRecord" || rec.respType != "application/cbor" || rec.proto != "rpc-v2-cbor" {
		t.Fatalf("wire: request %s %s, answer %s (%s)", rec.reqType, rec.path, rec.respType, rec.proto)
	}
	if aws.ToString(out.ShardId) != "shardId-000000000000" {
		t.Fatalf("ShardId %q", aws.ToString(out.ShardId))
	}
}

// The CBOR bridge decodes what clients send; it must not panic, and what it accepts must
// become valid JSON.
func FuzzCBORToJSON(f *testing.F) {
	f.Add(cbor.Encode(cbor.Map{"StreamName": cbor.String("s"), "Data": cbor.Slice{1, 2}, "Timestamp": &cbor.Tag{ID: 1, Value: cbor.Float64(1.5)}, "Limit": cbor.Uint(5), "X": cbor.NegInt(3)}))
	f.Add([]byte{0xbf, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := cborToJSON(body)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("CBOR %x became invalid JSON %s", body, out)
		}
	})
}
