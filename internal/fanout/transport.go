package fanout

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/aws/smithy-go/eventstream"
)

// EmulatorTransport wraps base (nil: http.DefaultTransport) so that the SDK accepts the
// SubscribeToShard event streams of emulators such as kinesis-mock.
//
// Kinesis begins every SubscribeToShard event stream with an "initial-response" event, and the
// SDK reads that event before anything else, failing with "expected initial-response" when the
// first message is something else. kinesis-mock starts directly with SubscribeToShardEvent (or
// with an exception message). For a successful SubscribeToShard response whose first message is
// not an initial-response, the returned transport emits an empty initial-response first and then
// the response body unchanged. Every other response, including every SubscribeToShard response
// from Kinesis itself, passes through byte for byte.
//
// The body is inspected lazily, on the first Read, and only the first message's prelude and
// headers are held: the rest streams through as it arrives, so the endless event stream is never
// buffered and RoundTrip returns as soon as the response headers do. It works with any base
// transport (HTTP/1.1, h2c, HTTP/2 over TLS) because it only looks at the body.
//
// Against Kinesis it changes nothing, so a client configured for an emulator can keep it when
// pointed at Kinesis; it is only needed for the emulator.
func EmulatorTransport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &emulatorTransport{base: base}
}

type emulatorTransport struct {
	base http.RoundTripper
}

func (t *emulatorTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp == nil || !strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".SubscribeToShard") {
		return resp, err
	}
	if resp.StatusCode != http.StatusOK || resp.Body == nil || resp.Body == http.NoBody {
		return resp, nil
	}
	// Errors before the stream starts come as JSON documents: leave those alone.
	if ct := resp.Header.Get("Content-Type"); ct != "" && !strings.Contains(ct, "eventstream") {
		return resp, nil
	}
	resp.Body = &initialResponseBody{body: resp.Body}
	return resp, nil
}

// initialResponseEvent is the message inserted ahead of an emulator's stream. The SDK checks
// only :event-type; the payload is an empty JSON object (the SubscribeToShard output has no
// members) so that decoders which always parse the payload are satisfied too.
var initialResponseEvent = func() []byte {
	var msg eventstream.Message
	msg.Headers.Set(eventstream.MessageTypeHeader, eventstream.StringValue(eventstream.EventMessageType))
	msg.Headers.Set(eventstream.EventTypeHeader, eventstream.StringValue("initial-response"))
	msg.Headers.Set(eventstream.ContentTypeHeader, eventstream.StringValue("application/json"))
	msg.Payload = []byte("{}")
	var buf bytes.Buffer
	if err := eventstream.NewEncoder().Encode(&buf, msg); err != nil {
		panic("fanout: encode initial-response: " + err.Error())
	}
	return buf.Bytes()
}()

const (
	preludeLen = 12 // total length, headers length, prelude CRC: 4 bytes each
	// maxInspectedHeaders bounds what is held to look at the first message, whose headers are
	// a few short strings. A longer header block is passed through uninspected.
	maxInspectedHeaders = 1 << 20
)

// initialResponseBody yields, on its first reads, the bytes that decide the first message's
// kind (possibly preceded by an inserted initial-response), then the rest of the body.
type initialResponseBody struct {
	body io.ReadCloser

	once    sync.Once
	pending []byte // bytes to serve before reading body again
	err     error  // error met while inspecting, returned once pending is drained
}

func (b *initialResponseBody) Read(p []byte) (int, error) {
	b.once.Do(b.inspect)
	if len(b.pending) > 0 {
		n := copy(p, b.pending)
		b.pending = b.pending[n:]
		return n, nil
	}
	if b.err != nil {
		err := b.err
		b.err = nil
		return 0, err
	}
	return b.body.Read(p)
}

// Close may run concurrently with a Read blocked in inspect: it only closes the underlying body,
// which ends that Read.
func (b *initialResponseBody) Close() error { return b.body.Close() }

func (b *initialResponseBody) inspect() {
	prelude := make([]byte, preludeLen)
	n, err := io.ReadFull(b.body, prelude)
	if err != nil {
		// Too short to be a message: hand over what came and the error.
		b.pending, b.err = prelude[:n], err
		return
	}
	held := prelude
	totalLen := binary.BigEndian.Uint32(prelude[0:4])
	headersLen := binary.BigEndian.Uint32(prelude[4:8])
	if crc32.ChecksumIEEE(prelude[:8]) != binary.BigEndian.Uint32(prelude[8:12]) ||
		headersLen > maxInspectedHeaders || uint64(headersLen)+preludeLen+4 > uint64(totalLen) {
		// Not a well-formed event stream message: the SDK reports it better than a guess.
		b.pending = held
		return
	}
	headers := make([]byte, headersLen)
	n, err = io.ReadFull(b.body, headers)
	held = append(held, headers[:n]...)
	if err != nil {
		b.pending, b.err = held, err
		return
	}
	eventType, ok := headerString(headers, eventstream.EventTypeHeader)
	if ok && eventType == "initial-response" {
		b.pending = held
		return
	}
	b.pending = append(append(make([]byte, 0, len(initialResponseEvent)+len(held)), initialResponseEvent...), held...)
}

var errBadHeader = errors.New("malformed event stream header")

// headerString finds the string header name in an event stream header block. ok is false when
// the header is absent, not a string, or the block cannot be parsed.
func headerString(block []byte, name string) (value string, ok bool) {
	for len(block) > 0 {
		nameLen := int(block[0])
		if len(block) < 1+nameLen+1 {
			return "", false
		}
		hname := string(block[1 : 1+nameLen])
		typ := block[1+nameLen]
		block = block[1+nameLen+1:]
		size, err := headerValueSize(typ, block)
		if err != nil {
			return "", false
		}
		if hname == name {
			if typ != headerTypeString {
				return "", false
			}
			return string(block[2:size]), true
		}
		block = block[size:]
	}
	return "", false
}

// Header value types of the event stream encoding.
const (
	headerTypeBoolTrue  = 0
	headerTypeBoolFalse = 1
	headerTypeByte      = 2
	headerTypeInt16     = 3
	headerTypeInt32     = 4
	headerTypeInt64     = 5
	headerTypeBytes     = 6
	headerTypeString    = 7
	headerTypeTimestamp = 8
	headerTypeUUID      = 9
)

// headerValueSize returns how many bytes of block the value of type typ occupies.
func headerValueSize(typ byte, block []byte) (int, error) {
	var size int
	switch typ {
	case headerTypeBoolTrue, headerTypeBoolFalse:
		size = 0
	case headerTypeByte:
		size = 1
	case headerTypeInt16:
		size = 2
	case headerTypeInt32:
		size = 4
	case headerTypeInt64, headerTypeTimestamp:
		size = 8
	case headerTypeUUID:
		size = 16
	case headerTypeBytes, headerTypeString:
		if len(block) < 2 {
			return 0, errBadHeader
		}
		size = 2 + int(binary.BigEndian.Uint16(block[:2]))
	default:
		return 0, errBadHeader
	}
	if size > len(block) {
		return 0, errBadHeader
	}
	return size, nil
}
