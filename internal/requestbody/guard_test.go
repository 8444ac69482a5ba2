package requestbody

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// earlyAnswerServer answers every call at once with a large GetRecords-shaped body and
// never reads the request, as a server refusing a call (or a test double) may.
func earlyAnswerServer(t *testing.T) *httptest.Server {
	body := `{"Records":[],"MillisBehindLatest":0,"NextShardIterator":"` + strings.Repeat("x", 400<<10) + `"}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func kinesisClient(url string, hc *http.Client) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(url),
		Credentials:      credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:       hc,
		RetryMaxAttempts: 1,
	})
}

// closedConnections makes up to n PutRecords calls with a body of some hundred kilobytes
// and returns how many failed on a closed connection, stopping at the first when
// stopAtFirst is set.
func closedConnections(t *testing.T, c *kinesis.Client, n int, stopAtFirst bool) int {
	t.Helper()
	recs := make([]types.PutRecordsRequestEntry, 100)
	for i := range recs {
		recs[i] = types.PutRecordsRequestEntry{Data: make([]byte, 3000), PartitionKey: aws.String("k")}
	}
	closed := 0
	for i := 0; i < n; i++ {
		_, err := c.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: recs})
		if err == nil {
			continue
		}
		if !strings.Contains(err.Error(), "use of closed network connection") && !errors.Is(err, http.ErrBodyReadAfterClose) {
			// The answer is not a PutRecords answer; a decoding complaint is expected
			// and is not what this test is about.
			continue
		}
		closed++
		if stopAtFirst {
			break
		}
	}
	return closed
}

// TestSDKClosesRequestBodyEarly shows the race Guard removes: with the SDK's body passed
// straight to the transport, a server that answers before reading the body breaks
// connections; through Guard none break.
func TestSDKClosesRequestBodyEarly(t *testing.T) {
	srv := earlyAnswerServer(t)
	// About one call in ten loses its connection without Guard on a loopback server.
	const calls = 300
	if closedConnections(t, kinesisClient(srv.URL, &http.Client{Transport: srv.Client().Transport}), calls, true) == 0 {
		t.Fatalf("no call of %d without Guard lost its connection; the race this package exists for did not show", calls)
	}
	if n := closedConnections(t, kinesisClient(srv.URL, Client(srv.Client().Transport)), calls, false); n != 0 {
		t.Fatalf("%d of %d calls through Guard lost their connection", n, calls)
	}
}

// TestGuardSendsTheBodyUnchanged checks that what the server receives through Guard is
// the body the client built, with its length.
func TestGuardSendsTheBodyUnchanged(t *testing.T) {
	var got []byte
	var gotLen int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotLen = r.ContentLength
		b := new(strings.Builder)
		_, _ = io.Copy(b, r.Body)
		got = []byte(b.String())
	}))
	defer srv.Close()
	want := strings.Repeat("abc", 10000)
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(want))
	resp, err := Client(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if string(got) != want || gotLen != int64(len(want)) {
		t.Fatalf("server got %d bytes (Content-Length %d), want %d", len(got), gotLen, len(want))
	}
}
