package producer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// The SDK decodes a PutRecords answer into two new strings and two new pointers per entry,
// and a fresh slice: a few allocations per Kinesis record, which for records of a kilobyte
// or so are most of what the producer allocates. The stand-in decodes successful answers
// itself into memory its batch keeps: entries and their pointers are reused, shard IDs and
// error codes are interned, and the sequence numbers of an answer share one string. Error
// answers (any status but 2xx) go to the client's protocol, which maps them to the
// service's error types.

// decodedOutput is the memory a batch keeps for decoding answers.
type decodedOutput struct {
	raw     bytes.Buffer
	results []types.PutRecordsResultEntry
	seqs    []string // SequenceNumber targets, one per entry
	spans   []seqSpan
	seqBuf  []byte
	failed  int32
	names   map[string]*string // interned shard IDs and error codes
}

// seqSpan locates an entry's unescaped sequence number in the answer.
type seqSpan struct{ entry, start, end int }

// maxInterned bounds the interned names; a stream has at most thousands of shards.
const maxInterned = 4096

// DeserializeResponse implements smithyhttp.ClientProtocol.
func (w *putRecordsBody) DeserializeResponse(ctx context.Context, schema *smithy.OperationSchema, reg *smithy.TypeRegistry, resp *smithyhttp.Response, out smithy.Deserializable) error {
	o, ok := out.(*kinesis.PutRecordsOutput)
	if !ok || schema.ID().Name != "PutRecords" || resp.StatusCode < 200 || resp.StatusCode >= 300 || schema.IsOutputEventStream() {
		return w.ClientProtocol.DeserializeResponse(ctx, schema, reg, resp, out)
	}
	d := &w.out
	d.raw.Reset()
	if resp.Body != nil {
		if _, err := d.raw.ReadFrom(resp.Body); err != nil {
			return &smithy.DeserializationError{Err: err}
		}
	}
	if d.raw.Len() == 0 {
		return nil
	}
	if err := d.decode(d.raw.Bytes(), o); err != nil {
		return &smithy.DeserializationError{Err: fmt.Errorf("PutRecords answer: %w", err)}
	}
	return nil
}

// decode fills o from a PutRecords answer in AWS JSON.
func (d *decodedOutput) decode(b []byte, o *kinesis.PutRecordsOutput) error {
	s := jsonScanner{b: b}
	s.ws()
	if err := s.expect('{'); err != nil {
		return err
	}
	for first := true; ; first = false {
		s.ws()
		if s.peek() == '}' {
			s.i++
			break
		}
		if !first {
			if err := s.expect(','); err != nil {
				return err
			}
			s.ws()
		}
		key, err := s.key()
		if err != nil {
			return err
		}
		if s.null() {
			continue
		}
		switch key {
		case "FailedRecordCount":
			n, err := s.int32()
			if err != nil {
				return err
			}
			d.failed = n
			o.FailedRecordCount = &d.failed
		case "EncryptionType":
			v, err := s.stringValue()
			if err != nil {
				return err
			}
			switch string(v) {
			case string(types.EncryptionTypeNone):
				o.EncryptionType = types.EncryptionTypeNone
			case string(types.EncryptionTypeKms):
				o.EncryptionType = types.EncryptionTypeKms
			default:
				o.EncryptionType = types.EncryptionType(string(v))
			}
		case "Records":
			if err := d.records(&s); err != nil {
				return err
			}
			o.Records = d.results
		default:
			if err := s.skip(0); err != nil {
				return err
			}
		}
	}
	return s.end()
}

// records decodes the Records array.
func (d *decodedOutput) records(s *jsonScanner) error {
	clear(d.results)
	d.results, d.spans = d.results[:0], d.spans[:0]
	if err := s.expect('['); err != nil {
		return err
	}
	for first := true; ; first = false {
		s.ws()
		if s.peek() == ']' {
			s.i++
			break
		}
		if !first {
			if err := s.expect(','); err != nil {
				return err
			}
			s.ws()
		}
		d.results = append(d.results, types.PutRecordsResultEntry{})
		if s.null() {
			continue
		}
		if err := d.entry(s, len(d.results)-1); err != nil {
			return err
		}
	}
	// The sequence numbers of the answer share one string: a caller that keeps a result
	// keeps a few bytes per entry alive, not the answer.
	if cap(d.seqs) < len(d.results) {
		d.seqs = make([]string, len(d.results))
	}
	d.seqs = d.seqs[:len(d.results)]
	d.seqBuf = d.seqBuf[:0]
	for _, sp := range d.spans {
		d.seqBuf = append(d.seqBuf, s.b[sp.start:sp.end]...)
	}
	all := string(d.seqBuf)
	off := 0
	for _, sp := range d.spans {
		n := sp.end - sp.start
		d.seqs[sp.entry] = all[off : off+n]
		d.results[sp.entry].SequenceNumber = &d.seqs[sp.entry]
		off += n
	}
	return nil
}

// entry decodes one entry of the Records array into d.results[i].
func (d *decodedOutput) entry(s *jsonScanner, i int) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	for first := true; ; first = false {
		s.ws()
		if s.peek() == '}' {
			s.i++
			return nil
		}
		if !first {
			if err := s.expect(','); err != nil {
				return err
			}
			s.ws()
		}
		key, err := s.key()
		if err != nil {
			return err
		}
		if s.null() {
			continue
		}
		e := &d.results[i]
		switch key {
		case "SequenceNumber":
			start := s.i + 1
			raw, escaped, err := s.str()
			if err != nil {
				return err
			}
			if escaped {
				v, err := unescape(raw)
				if err != nil {
					return err
				}
				e.SequenceNumber = &v
			} else {
				d.spans = append(d.spans, seqSpan{i, start, start + len(raw)})
			}
		case "ShardId", "ErrorCode":
			v, err := s.stringValue()
			if err != nil {
				return err
			}
			p := d.intern(v)
			if key == "ShardId" {
				e.ShardId = p
			} else {
				e.ErrorCode = p
			}
		case "ErrorMessage":
			v, err := s.stringValue()
			if err != nil {
				return err
			}
			m := string(v)
			e.ErrorMessage = &m
		default:
			if err := s.skip(0); err != nil {
				return err
			}
		}
	}
}

// intern returns a pointer to a string equal to v, allocating it only the first time.
func (d *decodedOutput) intern(v []byte) *string {
	if p, ok := d.names[string(v)]; ok {
		return p
	}
	if d.names == nil || len(d.names) >= maxInterned {
		d.names = make(map[string]*string)
	}
	str := string(v)
	d.names[str] = &str
	return &str
}

// jsonScanner reads JSON from b. It decodes the few shapes a PutRecords answer has and
// skips any other value, checking its syntax.
type jsonScanner struct {
	b []byte
	i int
}

// memberNames are the names the decoder looks for; other members are skipped.
var memberNames = [...]string{"FailedRecordCount", "EncryptionType", "Records", "SequenceNumber", "ShardId", "ErrorCode", "ErrorMessage"}

// maxDepth bounds the nesting of skipped values.
const maxDepth = 64

func (s *jsonScanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: "+format, append([]any{s.i}, args...)...)
}

func (s *jsonScanner) expect(c byte) error {
	if s.peek() != c {
		return s.errorf("expected %q", c)
	}
	s.i++
	return nil
}

// end checks that only white space follows.
func (s *jsonScanner) end() error {
	s.ws()
	if s.i != len(s.b) {
		return s.errorf("unexpected data after the answer")
	}
	return nil
}

// null consumes a null value, if one comes next, and white space after it.
func (s *jsonScanner) null() bool {
	if len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
		s.i += 4
		s.ws()
		return true
	}
	return false
}

// key reads an object member's name and the colon after it.
func (s *jsonScanner) key() (string, error) {
	raw, escaped, err := s.str()
	if err != nil {
		return "", err
	}
	var k string
	if escaped {
		if k, err = unescape(raw); err != nil {
			return "", err
		}
	} else {
		for _, name := range memberNames {
			if string(raw) == name {
				k = name // the constant: converting raw would allocate
				break
			}
		}
	}
	s.ws()
	if err := s.expect(':'); err != nil {
		return "", err
	}
	s.ws()
	return k, nil
}

// str reads a string and returns its raw contents, without the quotes, and whether it has
// escapes.
func (s *jsonScanner) str() (raw []byte, escaped bool, err error) {
	if err := s.expect('"'); err != nil {
		return nil, false, err
	}
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, escaped, nil
		case c == '\\':
			escaped = true
			s.i += 2
		case c < 0x20:
			return nil, false, s.errorf("control character in string")
		default:
			s.i++
		}
	}
	return nil, false, s.errorf("unterminated string")
}

// stringValue reads a string's value. Without escapes it is the answer's own bytes.
func (s *jsonScanner) stringValue() ([]byte, error) {
	raw, escaped, err := s.str()
	if err != nil || !escaped {
		return raw, err
	}
	v, err := unescape(raw)
	return []byte(v), err
}

// unescape decodes a string's raw contents that hold escapes.
func unescape(raw []byte) (string, error) {
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	var v string
	if err := json.Unmarshal(q, &v); err != nil {
		return "", err
	}
	return v, nil
}

// int32 reads an integer.
func (s *jsonScanner) int32() (int32, error) {
	neg := s.peek() == '-'
	if neg {
		s.i++
	}
	start := s.i
	var n int64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		n = n*10 + int64(s.b[s.i]-'0')
		if n > 1<<31 {
			return 0, s.errorf("integer out of range")
		}
		s.i++
	}
	if s.i == start {
		return 0, s.errorf("expected an integer")
	}
	if neg {
		n = -n
	}
	if n > 1<<31-1 || n < -1<<31 {
		return 0, s.errorf("integer out of range")
	}
	return int32(n), nil
}

// skip reads any value.
func (s *jsonScanner) skip(depth int) error {
	if depth > maxDepth {
		return s.errorf("values nested too deep")
	}
	switch c := s.peek(); {
	case c == '"':
		_, _, err := s.str()
		return err
	case c == '{' || c == '[':
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		s.i++
		for first := true; ; first = false {
			s.ws()
			if s.peek() == closing {
				s.i++
				return nil
			}
			if !first {
				if err := s.expect(','); err != nil {
					return err
				}
				s.ws()
			}
			if c == '{' {
				if _, _, err := s.str(); err != nil {
					return err
				}
				s.ws()
				if err := s.expect(':'); err != nil {
					return err
				}
				s.ws()
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
		}
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
				s.i += len(lit)
				return nil
			}
		}
		return s.errorf("invalid literal")
	case c == '-' || c >= '0' && c <= '9':
		start := s.i
		for s.i < len(s.b) && (s.b[s.i] >= '0' && s.b[s.i] <= '9' || s.b[s.i] == '-' || s.b[s.i] == '+' || s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E') {
			s.i++
		}
		if !json.Valid(s.b[start:s.i]) {
			return s.errorf("invalid number")
		}
		return nil
	default:
		return s.errorf("expected a value")
	}
}
