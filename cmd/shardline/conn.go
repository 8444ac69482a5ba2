package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// maxConnFailures is how many requests in a row may fail to reach the endpoint, with no
// answer between them, before put gives up on it. The SDK tries each call three times and the
// producer retries each record until its TTL, so against an endpoint that went away put would
// otherwise keep reading and expiring records for the whole TTL. Ten attempts span a few
// seconds of the SDK's and the producer's backoff: enough to ride out one dropped connection,
// not a dead endpoint.
const maxConnFailures = 10

// wrappedError says msg and keeps err for errors.Is and errors.As.
type wrappedError struct {
	msg string
	err error
}

func (e *wrappedError) Error() string { return e.msg }
func (e *wrappedError) Unwrap() error { return e.err }

// unreachableError is the error put returns when it gave up on the endpoint; it wraps the
// last connection failure.
type unreachableError struct {
	host     string
	attempts int
	last     error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach the Kinesis endpoint %s: %s (%d attempts in a row failed)", e.host, connectionLabel(e.last), e.attempts)
}

func (e *unreachableError) Unwrap() error { return e.last }

// connWatch is the Kinesis client's HTTP client, counting requests that failed before any
// answer came back. Any answer, even an error status, shows the endpoint is there and resets
// the count.
type connWatch struct {
	next aws.HTTPClient

	mu     sync.Mutex
	run    int
	last   error
	onDown func(error) // called once, when run reaches maxConnFailures
	fired  bool
}

// Do implements aws.HTTPClient.
func (w *connWatch) Do(req *http.Request) (*http.Response, error) {
	resp, err := w.next.Do(req)
	if err != nil && req.Context().Err() == nil && connectionFailure(err) {
		w.failed(req, err)
	} else if err == nil {
		w.mu.Lock()
		w.run, w.last = 0, nil
		w.mu.Unlock()
	}
	return resp, err
}

func (w *connWatch) failed(req *http.Request, err error) {
	w.mu.Lock()
	w.run++
	w.last = err
	var notify func(error)
	if w.run >= maxConnFailures && !w.fired && w.onDown != nil {
		w.fired = true
		notify = w.onDown
	}
	n := w.run
	w.mu.Unlock()
	if notify != nil {
		notify(&unreachableError{host: req.URL.Host, attempts: n, last: err})
	}
}

// watchDown sets the function called when the endpoint is found unreachable.
func (w *connWatch) watchDown(f func(error)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.onDown = f
}

// connectionFailure reports whether err means the request got no answer from the endpoint:
// it could not connect, the name did not resolve, or the connection broke.
func connectionFailure(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &op) || errors.As(err, &dns) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// connectionLabel names a connection failure in the words a user searches for; refused
// means nothing listens at the address, which is worth telling apart from a reset.
func connectionLabel(err error) string {
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by peer"
	case errors.As(err, &dns):
		return "cannot resolve host " + dns.Name
	case errors.As(err, &ne) && ne.Timeout():
		return "connection timed out"
	}
	return "connection failed"
}
