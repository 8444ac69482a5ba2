package consumer

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/checkpoint"
)

// answersTransport answers GetShardIterator with an iterator and each GetRecords with the
// next of its answers, in process.
type answersTransport struct {
	answers [][]byte
	next    int
}

func (t *answersTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, r.Body)
	_ = r.Body.Close()
	body := []byte(`{"ShardIterator":"it"}`)
	if r.Header.Get("X-Amz-Target") == "Kinesis_20131202.GetRecords" {
		if t.next >= len(t.answers) {
			return nil, fmt.Errorf("no answer %d", t.next)
		}
		body = t.answers[t.next]
		t.next++
	}
	return &http.Response{
		StatusCode: 200, Status: "200 OK", Request: r, ContentLength: int64(len(body)),
		Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}},
		Body:   io.NopCloser(bytes.NewReader(body)),
	}, nil
}

// recordsAnswer is a GetRecords answer of two plain records, each of 100 bytes of fill.
func recordsAnswer(fill byte, seq int) []byte {
	data := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, 100))
	return fmt.Appendf(nil, `{"Records":[{"Data":"%s","SequenceNumber":"%d","PartitionKey":"a","ApproximateArrivalTimestamp":1733280000.5},{"Data":"%s","SequenceNumber":"%d","PartitionKey":"b","ApproximateArrivalTimestamp":1733280000.5}],"NextShardIterator":"it","MillisBehindLatest":7}`, data, seq, data, seq+1)
}

// TestPolledDataOutlivesTheBatch reads two answers through the SDK's client, as a worker
// polls, and checks that the records of the first batch, kept past it as Record allows, still
// hold their Data after the second was read and decoded; and that the answers went through
// the consumer's own decoder (each answer's Data in one buffer, the records' side by side),
// not the SDK's (one allocation per record).
func TestPolledDataOutlivesTheBatch(t *testing.T) {
	tr := &answersTransport{answers: [][]byte{recordsAnswer('x', 100), recordsAnswer('y', 200)}}
	client := kinesis.New(kinesis.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("http://kinesis.invalid"),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:  &http.Client{Transport: tr}, RetryMaxAttempts: 1,
	})
	f := &pollingFactory{client: client, stream: streamRef{name: "s"}, limit: 10000, minSpace: -1, callLimit: 5 * time.Second,
		hooks: retrievalHooks{log: slog.New(slog.DiscardHandler)}}
	ctx := context.Background()
	src, err := f.open(ctx, "shardId-000000000000", startPosition{kind: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	dec := newRecordDecoder(nil, checkpoint.TrimHorizon)
	res, err := src.next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kept := append([]Record(nil), dec.decode(res.records)...)
	if len(kept) != 2 || res.millisBehindLatest != 7 {
		t.Fatalf("first batch: %d records, %d ms behind", len(kept), res.millisBehindLatest)
	}
	if a, b := kept[0].Data, kept[1].Data; unsafe.Pointer(unsafe.SliceData(b)) != unsafe.Add(unsafe.Pointer(unsafe.SliceData(a)), len(a)) {
		t.Fatal("the records' Data are not side by side: the answer was decoded by the SDK")
	}
	res, err = src.next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second := dec.decode(res.records)
	if len(second) != 2 || second[0].Data[0] != 'y' {
		t.Fatalf("second batch: %+v", second)
	}
	for i, r := range kept {
		if !bytes.Equal(r.Data, bytes.Repeat([]byte{'x'}, 100)) || r.SequenceNumber != fmt.Sprint(100+i) || r.PartitionKey != string(rune('a'+i)) {
			t.Errorf("kept record %d changed by the next batch: %q %s %s", i, r.Data, r.SequenceNumber, r.PartitionKey)
		}
	}
}
