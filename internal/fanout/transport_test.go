package fanout_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/eventstream"
	"github.com/shardline/shardline/internal/fanout"
	"github.com/shardline/shardline/internal/testenv"
)

// message encodes one event stream message, CRCs included.
func message(t *testing.T, headers map[string]string, payload string) []byte {
	t.Helper()
	var msg eventstream.Message
	for _, name := range []string{":message-type", ":event-type", ":exception-type", ":content-type"} {
		if v, ok := headers[name]; ok {
			msg.Headers.Set(name, eventstream.StringValue(v))
		}
	}
	msg.Payload = []byte(payload)
	var buf bytes.Buffer
	if err := eventstream.NewEncoder().Encode(&buf, msg); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func initialResponse(t *testing.T) []byte {
	return message(t, map[string]string{":message-type": "event", ":event-type": "initial-response"}, "{}")
}

// shardEvent is a SubscribeToShardEvent carrying one record with the given sequence number.
func shardEvent(t *testing.T, seq string) []byte {
	payload := fmt.Sprintf(`{"Records":[{"Data":"aGk=","PartitionKey":"k","SequenceNumber":%q}],"ContinuationSequenceNumber":%q,"MillisBehindLatest":0}`, seq, seq)
	return message(t, map[string]string{":message-type": "event", ":event-type": "SubscribeToShardEvent", ":content-type": "application/json"}, payload)
}

// streamServer answers SubscribeToShard with the given messages, flushing after each, and then
// holds the stream open until release is closed or the client goes away, as Kinesis keeps a
// subscription open. protoSeen receives the HTTP version of each request.
type streamServer struct {
	messages  [][]byte
	release   chan struct{} // nil: end the body after the messages
	protoSeen chan string
	// gate, when set, is waited for before the message at index gateAt.
	gate   chan struct{}
	gateAt int
}

func (s *streamServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case s.protoSeen <- r.Proto:
	default:
	}
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	w.WriteHeader(http.StatusOK)
	flusher := w.(http.Flusher)
	flusher.Flush()
	for i, m := range s.messages {
		if s.gate != nil && i == s.gateAt {
			select {
			case <-s.gate:
			case <-r.Context().Done():
				return
			}
		}
		if _, err := w.Write(m); err != nil {
			return
		}
		flusher.Flush()
	}
	if s.release != nil {
		select {
		case <-s.release:
		case <-r.Context().Done():
		}
	}
}

func fakeKinesis(t *testing.T, url string, rt http.RoundTripper) *kinesis.Client {
	t.Helper()
	return kinesis.NewFromConfig(testenv.Config(testenv.HTTPClient(rt)), func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(url)
	})
}

func subscribeInput() *kinesis.SubscribeToShardInput {
	return &kinesis.SubscribeToShardInput{
		ConsumerARN:      aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c:1"),
		ShardId:          aws.String("shardId-000000000000"),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon},
	}
}

// nextEvent waits for the next SubscribeToShardEvent of a stream.
func nextEvent(t *testing.T, stream *kinesis.SubscribeToShardEventStream) types.SubscribeToShardEvent {
	t.Helper()
	select {
	case ev, ok := <-stream.Events():
		if !ok {
			t.Fatalf("stream ended: %v", stream.Err())
		}
		e, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
		if !isEvent {
			t.Fatalf("unexpected event %T", ev)
		}
		return e.Value
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	return types.SubscribeToShardEvent{}
}

// TestEmulatorTransportAddsInitialResponse serves a stream the way kinesis-mock does, without an
// initial-response, over HTTP/1.1, h2c and HTTP/2 over TLS, and checks that the SDK refuses it
// alone and reads it through EmulatorTransport, event by event while the stream is still open.
func TestEmulatorTransportAddsInitialResponse(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{"HTTP/1.1", "h2c", "h2"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			srv := &streamServer{
				messages:  [][]byte{shardEvent(t, "1"), shardEvent(t, "2")},
				release:   make(chan struct{}),
				protoSeen: make(chan string, 4),
				gate:      make(chan struct{}),
				gateAt:    1,
			}
			defer close(srv.release)
			ts := httptest.NewUnstartedServer(srv)
			var base *http.Transport
			switch proto {
			case "HTTP/1.1":
				ts.Start()
				base = &http.Transport{}
			case "h2c":
				ts.Config.Protocols = new(http.Protocols)
				ts.Config.Protocols.SetUnencryptedHTTP2(true)
				ts.Start()
				base = &http.Transport{Protocols: new(http.Protocols)}
				base.Protocols.SetUnencryptedHTTP2(true)
			case "h2":
				ts.EnableHTTP2 = true
				ts.StartTLS()
				// The test server's client trusts its certificate and negotiates HTTP/2.
				base = ts.Client().Transport.(*http.Transport)
			}
			defer ts.Close()
			defer base.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			// The SDK alone refuses the stream.
			_, err := fakeKinesis(t, ts.URL, base).SubscribeToShard(ctx, subscribeInput())
			if err == nil || !strings.Contains(err.Error(), "expected initial-response") {
				t.Fatalf("SDK without EmulatorTransport: %v, want the initial-response error", err)
			}
			if got := <-srv.protoSeen; proto != "HTTP/1.1" && got != "HTTP/2.0" || proto == "HTTP/1.1" && got != "HTTP/1.1" {
				t.Fatalf("server saw %s, want %s", got, proto)
			}

			out, err := fakeKinesis(t, ts.URL, fanout.EmulatorTransport(base)).SubscribeToShard(ctx, subscribeInput())
			if err != nil {
				t.Fatal(err)
			}
			stream := out.GetStream()
			defer stream.Close()
			// The first event arrives while the server still holds the second back: nothing
			// waits for the body to end.
			if e := nextEvent(t, stream); aws.ToString(e.ContinuationSequenceNumber) != "1" || len(e.Records) != 1 {
				t.Fatalf("first event: %+v", e)
			}
			close(srv.gate)
			if e := nextEvent(t, stream); aws.ToString(e.ContinuationSequenceNumber) != "2" {
				t.Fatalf("second event: %+v", e)
			}
		})
	}
}

// TestEmulatorTransportPassesAWSStreamsThrough checks that a stream that begins with an
// initial-response, as every Kinesis stream does, reaches the client byte for byte, and so do
// other operations and error answers.
func TestEmulatorTransportPassesAWSStreamsThrough(t *testing.T) {
	t.Parallel()
	var sent []byte
	for _, m := range [][]byte{initialResponse(t), shardEvent(t, "1"), shardEvent(t, "2")} {
		sent = append(sent, m...)
	}
	srv := &streamServer{messages: [][]byte{initialResponse(t), shardEvent(t, "1"), shardEvent(t, "2")}, protoSeen: make(chan string, 4)}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	rt := fanout.EmulatorTransport(nil)

	req, _ := http.NewRequest(http.MethodPost, ts.URL, strings.NewReader("{}"))
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.SubscribeToShard")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, sent) {
		t.Fatalf("stream with initial-response changed: got %d bytes, sent %d", len(got), len(sent))
	}

	// The SDK reads it through the transport as it reads Kinesis.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := fakeKinesis(t, ts.URL, rt).SubscribeToShard(ctx, subscribeInput())
	if err != nil {
		t.Fatal(err)
	}
	stream := out.GetStream()
	defer stream.Close()
	if e := nextEvent(t, stream); aws.ToString(e.ContinuationSequenceNumber) != "1" {
		t.Fatalf("first event: %+v", e)
	}

	// Other operations and error answers are not touched at all.
	for _, tc := range []struct {
		target string
		status int
		ctype  string
	}{
		{"Kinesis_20131202.GetRecords", http.StatusOK, "application/x-amz-json-1.1"},
		{"Kinesis_20131202.SubscribeToShard", http.StatusBadRequest, "application/x-amz-json-1.1"},
		{"Kinesis_20131202.SubscribeToShard", http.StatusOK, "application/x-amz-json-1.1"},
	} {
		body := `{"__type":"ResourceInUseException"}`
		plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", tc.ctype)
			w.WriteHeader(tc.status)
			_, _ = io.WriteString(w, body)
		}))
		req, _ := http.NewRequest(http.MethodPost, plain.URL, strings.NewReader("{}"))
		req.Header.Set("X-Amz-Target", tc.target)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		plain.Close()
		if string(got) != body {
			t.Fatalf("%s answering %d: body %q, want it untouched", tc.target, tc.status, got)
		}
	}
}

// TestEmulatorTransportSurfacesExceptions serves a stream that begins with an exception, as
// kinesis-mock answers a duplicate subscription, and checks that the SDK reports the typed
// exception instead of a missing initial-response.
func TestEmulatorTransportSurfacesExceptions(t *testing.T) {
	t.Parallel()
	exception := message(t, map[string]string{":message-type": "exception", ":exception-type": "ResourceInUseException", ":content-type": "application/json"},
		`{"message":"Another active subscription exists"}`)
	ts := httptest.NewServer(&streamServer{messages: [][]byte{exception}, protoSeen: make(chan string, 4)})
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := fakeKinesis(t, ts.URL, fanout.EmulatorTransport(nil)).SubscribeToShard(ctx, subscribeInput())
	if err != nil {
		t.Fatal(err)
	}
	stream := out.GetStream()
	defer stream.Close()
	for range stream.Events() {
		t.Fatal("an event before the exception")
	}
	var inUse *types.ResourceInUseException
	if !errors.As(stream.Err(), &inUse) || !strings.Contains(inUse.ErrorMessage(), "Another active subscription") {
		t.Fatalf("stream error %v, want ResourceInUseException", stream.Err())
	}
}

// TestEmulatorTransportOddBodies feeds bodies that are not well-formed event streams and checks
// that they reach the client unchanged, with the error of the body, for the SDK to report.
func TestEmulatorTransportOddBodies(t *testing.T) {
	t.Parallel()
	full := shardEvent(t, "1")
	corrupt := append([]byte{}, full...)
	corrupt[9] ^= 0xff // prelude CRC
	for name, body := range map[string][]byte{
		"empty":            nil,
		"short prelude":    full[:5],
		"cut in headers":   full[:20],
		"corrupt prelude":  corrupt,
		"no :event-type":   message(t, map[string]string{":message-type": "event"}, "{}"),
		"initial-response": append(initialResponse(t), full...),
	} {
		t.Run(name, func(t *testing.T) {
			rt := fanout.EmulatorTransport(roundTripFunc(func(req *http.Request) (*http.Response, error) {
				return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(body)), Request: req}, nil
			}))
			req, _ := http.NewRequest(http.MethodPost, "http://example.invalid", nil)
			req.Header.Set("X-Amz-Target", "Kinesis_20131202.SubscribeToShard")
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatal(err)
			}
			if name == "no :event-type" {
				// A whole message that is not an initial-response gets one in front of it.
				r := bytes.NewReader(got)
				first, err := eventstream.NewDecoder().Decode(r, nil)
				if err != nil {
					t.Fatal(err)
				}
				if v := first.Headers.Get(":event-type"); v == nil || v.String() != "initial-response" {
					t.Fatalf("first message headers %v, want an initial-response", first.Headers)
				}
				got = got[len(got)-r.Len():]
			}
			if !bytes.Equal(got, body) {
				t.Fatalf("got %x, want %x", got, body)
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// TestEmulatorTransportAgainstKinesisMock subscribes to kinesis-mock over h2c as well as
// HTTP/1.1: its plain port serves both.
func TestEmulatorTransportAgainstKinesisMock(t *testing.T) {
	t.Parallel()
	h2c := func(http.RoundTripper) http.RoundTripper {
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		t.Cleanup(tr.CloseIdleConnections)
		return tr
	}
	f := setup(t, 1, h2c)
	shard := aws.ToString(f.shards(t)[0].ShardId)
	want := f.put(t, "h2c", 5)
	sub := f.subscribe(t, fanout.Config{ShardID: shard})
	var got received
	readRecords(t, sub, &got, len(want), 30*time.Second)
	sameStrings(t, "records over h2c", got.data, want)
}
