// Package requestbody keeps an SDK client's early Close of a request body from breaking
// the connection the answer is still being read from.
//
// smithy-go's ClientHandler closes the request body as soon as http.Client.Do returns,
// that is once the answer's headers have arrived (transport/http/client.go: "HTTP
// RoundTripper *should* close the request body. But this may not happen in a timely
// manner"). The body it hands net/http is a safeReadCloser, which net/http does not know
// to be in memory, so the transport flushes the headers first and then copies the body.
// A server that answers before it has read the whole body (an error answer, a throttle, a
// test double that ignores the body) races that copy: the closed body reads as io.EOF
// before Content-Length bytes, the transport's write loop fails with "ContentLength=N
// with Body length M" and closes the connection, and the client's read of the answer
// fails with "use of closed network connection". This is aws-sdk-go-v2 issues #1825 and
// #2737; since PR #2949 the SDK retries net.ErrClosed, which hides it behind a retry but
// costs the call, and a client with retries off (as tests use) sees the error.
//
// Guard reads the body into memory inside the round trip, before the SDK can close it,
// and gives the transport an in-memory reader: the headers and body are then written
// together and the copy no longer depends on the SDK's reader.
package requestbody

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
)

// MaxBuffered is the largest request body Guard reads into memory: the largest Kinesis
// request (PutRecords, 10 MiB of data and keys, base64-encoded, with JSON framing) with
// room to spare. A larger or unknown-length body (a streaming upload) is passed through
// as it is.
const MaxBuffered = 16 << 20

// Guard returns a round tripper that sends each request with a known length of at most
// MaxBuffered bytes from an in-memory copy of its body, through base (http.DefaultTransport
// when nil).
func Guard(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return guard{base: base}
}

type guard struct{ base http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (g guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Body == http.NoBody || req.ContentLength <= 0 || req.ContentLength > MaxBuffered {
		return g.base.RoundTrip(req)
	}
	buf := make([]byte, req.ContentLength)
	n, err := io.ReadFull(req.Body, buf)
	_ = req.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("requestbody: read %d of the request's %d bytes: %w", n, req.ContentLength, err)
	}
	// A RoundTripper must not change the caller's request; send a shallow copy.
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(buf))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return g.base.RoundTrip(out)
}

// Client returns an HTTP client whose transport is Guard(base).
func Client(base http.RoundTripper) *http.Client {
	return &http.Client{Transport: Guard(base)}
}
