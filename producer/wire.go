package producer

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
	"github.com/segmentio/asm/base64"
)

// The SDK serializes a PutRecords request through a generic shape serializer that grows its
// buffer while it base64-encodes each blob, and then copies the result: for a request of
// aggregates that is most of the client's CPU and allocation per record. The producer builds
// the body itself instead, sized exactly up front and encoded straight into a buffer kept
// for the next request, with a vectorized base64 encoder (AVX2 on amd64, NEON on arm64; on
// amd64 it encodes about twelve times as fast as the standard library) whose output is the
// standard encoding's.
//
// It does so by standing in, for its own PutRecords calls only, for the client's protocol:
// the kinesis client serializes through Options.Protocol, which a per-call option may
// replace. The stand-in lets the client's protocol set the method, path and headers, then
// replaces only the body with a seekable reader of the same bytes; everything after the
// serialize step (content length, the SigV4 payload hash, retries rewinding the stream)
// reads the body from there, exactly as it would the SDK's own. Successful answers are
// decoded by the stand-in too (see decodedOutput); error answers and any other operation go
// to the client's protocol untouched. Only the AWS JSON 1.1 protocol the client uses by
// default is stood in for; a client configured with another one (RPC v2 CBOR, which sends
// blobs raw) is left alone.

var awsJSON11 = smithy.ShapeID{Namespace: "aws.protocols", Name: "awsJson1_1"}

// putRecordsBody is the stand-in protocol of one batch.
type putRecordsBody struct {
	smithyhttp.ClientProtocol // the client's own protocol, for everything but the body

	in   *kinesis.PutRecordsInput // the batch's request: only this input is serialized here
	bufs *bodyBufs                // lends buf for the call; nil: buf stays with the batch
	buf  []byte
	body bytes.Reader
	out  decodedOutput
	// serialized runs once the body is built, when the entries' data is no longer read.
	serialized func()
}

// bodyBufs keeps the bodies of finished calls for the next ones. Bodies are lent per call
// rather than kept per batch, so that only as many exist as calls were ever in flight at
// once: batches also exist while they are built and settled, and a body is megabytes.
// It is a free list, not a sync.Pool, because a pool empties at every garbage collection,
// and a fresh body costs a page fault every few kilobytes written to it; what it keeps is
// bounded by the most bodies in flight at once, whose records the buffer bounds.
type bodyBufs struct {
	mu   sync.Mutex
	free [][]byte
}

func (b *bodyBufs) get() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.free)
	if n == 0 {
		return nil
	}
	buf := b.free[n-1]
	b.free[n-1] = nil
	b.free = b.free[:n-1]
	return buf
}

func (b *bodyBufs) put(buf []byte) {
	b.mu.Lock()
	b.free = append(b.free, buf[:0])
	b.mu.Unlock()
}

// release gives the body back once the call has returned. By then the SDK has closed the
// request body it handed the HTTP client (smithyhttp.ClientHandler closes it after the round
// trip, and its wrapper lets no read through after that), so nothing reads buf any more.
func (w *putRecordsBody) release() {
	w.body.Reset(nil)
	if w.bufs != nil && w.buf != nil {
		w.bufs.put(w.buf)
		w.buf = nil
	}
}

// emptyPutRecords serializes to "{}": the client's protocol sets the request up with it.
var emptyPutRecords = &kinesis.PutRecordsInput{}

// useFastBody is the per-call option that installs the stand-in when the client speaks AWS
// JSON 1.1.
func (w *putRecordsBody) useFastBody(o *kinesis.Options) {
	if pr, ok := o.Protocol.(*awsjson.Protocol); ok && pr.ID() == awsJSON11 {
		w.ClientProtocol = pr
		o.Protocol = w
	}
}

// SerializeRequest implements smithyhttp.ClientProtocol.
func (w *putRecordsBody) SerializeRequest(ctx context.Context, schema *smithy.OperationSchema, in smithy.Serializable, req *smithyhttp.Request) error {
	if in != smithy.Serializable(w.in) || schema.ID().Name != "PutRecords" || w.in.DryRun != nil || w.in.StreamId != nil {
		return w.ClientProtocol.SerializeRequest(ctx, schema, in, req)
	}
	if err := w.ClientProtocol.SerializeRequest(ctx, schema, emptyPutRecords, req); err != nil {
		return err
	}
	if w.buf == nil && w.bufs != nil {
		w.buf = w.bufs.get()
	}
	w.buf = appendPutRecordsJSON(w.buf[:0], w.in)
	if w.serialized != nil {
		// Retries resend this body (the SDK retries after the serialize step), so nothing
		// reads the entries again.
		w.serialized()
	}
	w.body.Reset(w.buf)
	sreq, err := req.SetStream(&w.body)
	if err != nil {
		return fmt.Errorf("producer: set PutRecords body: %w", err)
	}
	*req = *sreq
	return nil
}

// putRecordsJSONLen is the exact length of appendPutRecordsJSON's output.
func putRecordsJSONLen(in *kinesis.PutRecordsInput) int {
	n := len(`{}`)
	if in.Records != nil {
		n += len(`"Records":[]`)
		for i := range in.Records {
			e := &in.Records[i]
			if i > 0 {
				n++
			}
			n += len(`{}`)
			fields := 0
			if e.Data != nil {
				n += len(`"Data":""`) + base64.StdEncoding.EncodedLen(len(e.Data))
				fields++
			}
			if e.ExplicitHashKey != nil {
				n += len(`"ExplicitHashKey":`) + jsonStringLen(*e.ExplicitHashKey)
				fields++
			}
			if e.PartitionKey != nil {
				n += len(`"PartitionKey":`) + jsonStringLen(*e.PartitionKey)
				fields++
			}
			if fields > 1 {
				n += fields - 1
			}
		}
	}
	if in.StreamARN != nil {
		n += len(`,"StreamARN":`) + jsonStringLen(*in.StreamARN)
	}
	if in.StreamName != nil {
		n += len(`,"StreamName":`) + jsonStringLen(*in.StreamName)
	}
	if in.Records == nil && (in.StreamARN != nil || in.StreamName != nil) {
		n-- // no member before the first one's comma
	}
	return n
}

// appendPutRecordsJSON appends the AWS JSON body of a PutRecordsInput without DryRun or
// StreamId: the bytes the SDK's serializer writes (members in the same order, strings
// escaped the same way), so a service sees no difference.
func appendPutRecordsJSON(dst []byte, in *kinesis.PutRecordsInput) []byte {
	if need := putRecordsJSONLen(in); cap(dst)-len(dst) < need {
		// Headroom, so that a body slightly larger than the last one does not allocate
		// again.
		grown := make([]byte, len(dst), len(dst)+need+need/8)
		copy(grown, dst)
		dst = grown
	}
	dst = append(dst, '{')
	comma := false
	if in.Records != nil {
		dst = append(dst, `"Records":[`...)
		for i := range in.Records {
			e := &in.Records[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '{')
			sep := false
			if e.Data != nil {
				dst = append(dst, `"Data":"`...)
				n := base64.StdEncoding.EncodedLen(len(e.Data))
				base64.StdEncoding.Encode(dst[len(dst):len(dst)+n], e.Data)
				dst = append(dst[:len(dst)+n], '"')
				sep = true
			}
			if e.ExplicitHashKey != nil {
				if sep {
					dst = append(dst, ',')
				}
				dst = append(dst, `"ExplicitHashKey":`...)
				dst = appendJSONString(dst, *e.ExplicitHashKey)
				sep = true
			}
			if e.PartitionKey != nil {
				if sep {
					dst = append(dst, ',')
				}
				dst = append(dst, `"PartitionKey":`...)
				dst = appendJSONString(dst, *e.PartitionKey)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
		comma = true
	}
	if in.StreamARN != nil {
		if comma {
			dst = append(dst, ',')
		}
		dst = append(dst, `"StreamARN":`...)
		dst = appendJSONString(dst, *in.StreamARN)
		comma = true
	}
	if in.StreamName != nil {
		if comma {
			dst = append(dst, ',')
		}
		dst = append(dst, `"StreamName":`...)
		dst = appendJSONString(dst, *in.StreamName)
	}
	return append(dst, '}')
}

// jsonSafe marks the ASCII bytes that stand for themselves in a JSON string.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf-1; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// jsonStringLen is the length of appendJSONString's output.
func jsonStringLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case jsonSafe[c]:
				n++
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
				n += 2
			default:
				n += 6
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			n += 3 // U+FFFD
		case r == '\u2028' || r == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n
}

// appendJSONString appends s as a JSON string the way the SDK's serializer does: quotes,
// backslashes and control characters escaped (\n, \r and \t by name, the rest as \u00XX,
// DEL included), U+2028 and U+2029 escaped for JavaScript's sake, invalid UTF-8 replaced by
// U+FFFD, everything else as is.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			start = i + size
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			start = i + size
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
