package kinesisjson

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/segmentio/asm/base64"
)

// GetRecordsDecoder decodes GetRecords answers of one shard reader into memory it keeps from
// one answer to the next. Install it on a call with Option:
//
//	out, err := client.GetRecords(ctx, in, dec.Option())
//
// # Ownership
//
// The Records slice of an output it decoded, each record's Data, and the variables a
// record's SequenceNumber, PartitionKey and ApproximateArrivalTimestamp point to belong to
// the decoder: its next decode may overwrite them. A caller that keeps a record past the next
// GetRecords call with the same decoder copies what it keeps. Strings are never
// overwritten: the value *r.SequenceNumber (or *r.PartitionKey) may be kept as long as
// wanted. NextShardIterator, MillisBehindLatest and ChildShards are allocated afresh for each
// answer and may be kept too.
//
// A reader that wants a batch to outlive the next call, a prefetching one say, alternates two
// decoders, or sets FreshData.
//
// With FreshData set, Data is exempt from that rule: each answer's Data is decoded into one
// buffer allocated for that answer, which the decoder never writes again once it has
// handed it out, so a record's Data may be kept as long as wanted, as the SDK's. That costs
// one allocation per answer (about three quarters of the answer's size, zeroed), and a
// record kept alive keeps its whole answer's Data alive. The Records slice and what the
// records' pointers point to are still reused.
//
// A decoder serves one call at a time. If a second call through the same decoder overlaps one
// in progress, that second answer is decoded by the SDK instead, which is correct but slower;
// the first answer's records still follow the ownership rule above.
//
// The zero GetRecordsDecoder is ready to use.
type GetRecordsDecoder struct {
	// FreshData makes the decoder decode each answer's Data into memory of its own, never
	// reused: see Ownership. Set it before the first decode and leave it.
	FreshData bool

	busy      busyFlag
	optOnce   sync.Once
	opt       func(*kinesis.Options)
	standIn   standInCache
	scanner   Scanner
	body      []byte         // the answer as read
	data      []byte         // decoded Data of every record of the last answer
	dataOff   int            // used part of data
	records   []types.Record // reused records
	slots     []recordSlot   // what records' pointers point to, one per record
	strs      stringArena    // strings of the answers
	scratch   []byte         // an escaped string's value
	smallRuns int            // answers in a row far smaller than the buffers
}

// recordSlot holds the values a record's pointer members point to.
type recordSlot struct {
	seq, key string
	arrived  time.Time
}

// retainedSmall is the buffer size below which the decoder never gives buffers back.
const retainedSmall = 1 << 20

// shrinkAfter is how many answers in a row must need less than a quarter of the buffers
// before the decoder lets them go, so that a reader that once caught up with a backlog of
// 10 MiB answers does not keep their buffers while it reads a trickle.
const shrinkAfter = 32

// Decode fills out from a GetRecords answer in AWS JSON 1.1, exactly as the SDK's own
// decoder fills a new output from the same bytes (see the package documentation for the
// few bodies the two treat differently). out is reset first; its ResultMetadata is kept. body
// is not retained. An error names the member where decoding stopped and wraps what was wrong
// there: a *SyntaxError (errors.As) for JSON that cannot be read or a value of the wrong
// type, an encoding/base64 CorruptInputError for a record's Data that is not base64.
//
// What out refers to follows the ownership rule of GetRecordsDecoder.
func (d *GetRecordsDecoder) Decode(body []byte, out *kinesis.GetRecordsOutput) error {
	*out = kinesis.GetRecordsOutput{ResultMetadata: out.ResultMetadata}
	if len(body) == 0 {
		return nil // the SDK's protocol leaves the output empty too
	}
	d.prepare(len(body))
	s := &d.scanner
	s.Reset(body)
	err := d.decodeOutput(s, out)
	s.Reset(nil)
	if err != nil {
		return fmt.Errorf("kinesisjson: GetRecords answer: %w", err)
	}
	return nil
}

// prepare sizes the Data buffer for an answer of n bytes: the decoded Data of all its records
// is at most three quarters of it, as base64 carries three bytes in four characters.
func (d *GetRecordsDecoder) prepare(n int) {
	need := n/4*3 + 8
	if held := max(cap(d.data), cap(d.body)); held > retainedSmall && held > 4*need {
		d.smallRuns++
		if d.smallRuns >= shrinkAfter {
			d.data, d.body, d.records, d.slots, d.smallRuns = nil, nil, nil, nil, 0
		}
	} else {
		d.smallRuns = 0
	}
	switch {
	case d.FreshData:
		// The last answer's buffer belongs to its records now.
		d.data = make([]byte, need)
	case cap(d.data) < need:
		d.data = make([]byte, need+need/8)
	}
	d.data = d.data[:cap(d.data)]
	d.dataOff = 0
	if d.records == nil {
		d.records = make([]types.Record, 0, 16)
	}
}

// member wraps an error with the member it was found in.
func member(name string, err error) error {
	return fmt.Errorf("%s: %w", name, err)
}

func (d *GetRecordsDecoder) decodeOutput(s *Scanner, out *kinesis.GetRecordsOutput) error {
	if err := s.BeginObject(); err != nil {
		return err
	}
	for first := true; ; first = false {
		more, err := s.More('}', first)
		if err != nil || !more {
			return err // what follows the answer's object is not read, as by the SDK
		}
		key, err := s.Key()
		if err != nil {
			return err
		}
		if s.Null() {
			continue // a null member is an absent one
		}
		switch string(key) {
		case "Records":
			if err := d.decodeRecords(s); err != nil {
				return member("Records", err)
			}
			out.Records = d.records
		case "NextShardIterator":
			v, err := d.string(s)
			if err != nil {
				return member("NextShardIterator", err)
			}
			out.NextShardIterator = &v
		case "MillisBehindLatest":
			n, err := s.Int64()
			if err != nil {
				return member("MillisBehindLatest", err)
			}
			out.MillisBehindLatest = &n
		case "ChildShards":
			cs, err := d.decodeChildShards(s)
			if err != nil {
				return member("ChildShards", err)
			}
			out.ChildShards = cs
		default:
			if err := s.Skip(); err != nil {
				return err
			}
		}
	}
}

// decodeRecords reads the Records array into d.records. A repeated Records member replaces
// the list, as with the SDK.
func (d *GetRecordsDecoder) decodeRecords(s *Scanner) error {
	if err := s.BeginArray(); err != nil {
		return err
	}
	old := len(d.records)
	d.records = d.records[:0]
	defer func() {
		// Records and slots past the end of this list must not keep the last answer's
		// memory alive.
		if n := len(d.records); n < old {
			clear(d.records[n:old])
			clear(d.slots[n:old])
		}
	}()
	for first := true; ; first = false {
		more, err := s.More(']', first)
		if err != nil || !more {
			return err
		}
		i := len(d.records)
		d.records = append(d.records, types.Record{})
		if i < len(d.slots) {
			d.slots[i] = recordSlot{}
		} else {
			d.slots = append(d.slots, recordSlot{})
		}
		if s.Null() {
			continue // a null element is an empty record
		}
		if err := d.decodeRecord(s, &d.records[i], &d.slots[i]); err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
	}
}

// The members of a record.
const (
	otherMember = iota
	dataMember
	sequenceNumberMember
	partitionKeyMember
	arrivalMember
	encryptionTypeMember
)

// recordMember reads a record member's name and says which member it is. The names Kinesis
// writes are matched whole where they stand; any other spelling goes through Key.
func recordMember(s *Scanner) (int, error) {
	s.ws()
	if s.i+1 < len(s.b) && s.b[s.i] == '"' {
		switch s.b[s.i+1] {
		case 'D':
			if s.KnownKey(`"Data"`) {
				return dataMember, nil
			}
		case 'S':
			if s.KnownKey(`"SequenceNumber"`) {
				return sequenceNumberMember, nil
			}
		case 'P':
			if s.KnownKey(`"PartitionKey"`) {
				return partitionKeyMember, nil
			}
		case 'A':
			if s.KnownKey(`"ApproximateArrivalTimestamp"`) {
				return arrivalMember, nil
			}
		case 'E':
			if s.KnownKey(`"EncryptionType"`) {
				return encryptionTypeMember, nil
			}
		}
	}
	key, err := s.Key()
	if err != nil {
		return 0, err
	}
	switch string(key) {
	case "Data":
		return dataMember, nil
	case "SequenceNumber":
		return sequenceNumberMember, nil
	case "PartitionKey":
		return partitionKeyMember, nil
	case "ApproximateArrivalTimestamp":
		return arrivalMember, nil
	case "EncryptionType":
		return encryptionTypeMember, nil
	}
	return otherMember, nil
}

func (d *GetRecordsDecoder) decodeRecord(s *Scanner, r *types.Record, sl *recordSlot) error {
	if err := s.BeginObject(); err != nil {
		return err
	}
	for first := true; ; first = false {
		more, err := s.More('}', first)
		if err != nil || !more {
			return err
		}
		m, err := recordMember(s)
		if err != nil {
			return err
		}
		if s.Null() {
			continue
		}
		switch m {
		case dataMember:
			if r.Data, err = d.blob(s); err != nil {
				return member("Data", err)
			}
		case sequenceNumberMember:
			if sl.seq, err = d.string(s); err != nil {
				return member("SequenceNumber", err)
			}
			r.SequenceNumber = &sl.seq
		case partitionKeyMember:
			if sl.key, err = d.string(s); err != nil {
				return member("PartitionKey", err)
			}
			r.PartitionKey = &sl.key
		case arrivalMember:
			f, err := s.Float64()
			if err != nil {
				return member("ApproximateArrivalTimestamp", err)
			}
			if math.IsNaN(f) {
				return member("ApproximateArrivalTimestamp", errNaNTime)
			}
			sl.arrived = epochSecondsTime(f)
			r.ApproximateArrivalTimestamp = &sl.arrived
		case encryptionTypeMember:
			v, err := d.encryptionType(s)
			if err != nil {
				return member("EncryptionType", err)
			}
			r.EncryptionType = v
		default:
			if err := s.Skip(); err != nil {
				return err
			}
		}
	}
}

// errNaNTime rejects a timestamp of "NaN", which has no time. The SDK panics on it.
var errNaNTime = errors.New("timestamp is NaN")

// epochSecondsTime converts epoch seconds to a time as smithy-go's ParseEpochSeconds does:
// the seconds times 1000 rounded to 53 bits (big.Float's product at the float64's precision
// is the IEEE product, and where that overflows both end at the int64 limit), truncated
// towards zero to whole milliseconds within the int64 range, then scaled to nanoseconds with
// int64 arithmetic (which wraps for times beyond year 2262, as the SDK's does).
func epochSecondsTime(sec float64) time.Time {
	ms := sec * 1e3
	var i int64
	switch {
	case ms >= 0x1p63:
		i = math.MaxInt64
	case ms < -0x1p63:
		i = math.MinInt64
	default:
		i = int64(ms)
	}
	return time.Unix(0, i*1e6).UTC()
}

// encryptionType reads an EncryptionType, without a new string for the known values.
func (d *GetRecordsDecoder) encryptionType(s *Scanner) (types.EncryptionType, error) {
	raw, escaped, err := s.String()
	if err != nil {
		return "", err
	}
	if !escaped {
		switch string(raw) {
		case string(types.EncryptionTypeNone):
			return types.EncryptionTypeNone, nil
		case string(types.EncryptionTypeKms):
			return types.EncryptionTypeKms, nil
		}
		return types.EncryptionType(d.strs.add(raw)), nil
	}
	d.scratch = AppendUnescaped(d.scratch[:0], raw)
	return types.EncryptionType(d.strs.add(d.scratch)), nil
}

// string reads a string into the string arena.
func (d *GetRecordsDecoder) string(s *Scanner) (string, error) {
	raw, escaped, err := s.String()
	if err != nil {
		return "", err
	}
	if !escaped {
		return d.strs.add(raw), nil
	}
	d.scratch = AppendUnescaped(d.scratch[:0], raw)
	return d.strs.add(d.scratch), nil
}

// emptyData is the Data of an empty string: empty, not nil, as the SDK's.
var emptyData = []byte{}

// blob reads a base64 string into the Data buffer. The common case, a string without escapes,
// is found with one vectorized search for its closing quote and decoded in place with the
// vectorized decoder; anything else takes the careful path.
func (d *GetRecordsDecoder) blob(s *Scanner) ([]byte, error) {
	s.ws()
	b := s.b
	if i := s.i; i < len(b) && b[i] == '"' {
		if end := bytes.IndexByte(b[i+1:], '"'); end >= 0 {
			src := b[i+1 : i+1+end]
			if v, ok := d.decodePlain(src); ok {
				s.i = i + end + 2
				return v, nil
			}
		}
	}
	// Escapes, an invalid string, or invalid base64: read the string properly to tell.
	raw, escaped, err := s.String()
	if err != nil {
		return nil, err
	}
	src := raw
	if escaped {
		// The SDK decodes the string's escapes first, then the base64 of the value, which
		// skips line breaks (an escaped \n or \r is one): so does this decoder, whose
		// vectorized part stops at the first and leaves the rest to the standard library's.
		d.scratch = AppendUnescaped(d.scratch[:0], raw)
		src = d.scratch
	}
	dst := d.data[d.dataOff : d.dataOff+base64.StdEncoding.DecodedLen(len(src))]
	n, err := base64.StdEncoding.Decode(dst, src)
	if err != nil {
		return nil, fmt.Errorf("decode base64 blob: %w", err)
	}
	return d.take(n), nil
}

// decodePlain decodes src, a string's raw contents, if it is plain padded base64 (no line
// breaks, which a string without escapes can only hold as raw control characters that JSON
// forbids).
func (d *GetRecordsDecoder) decodePlain(src []byte) ([]byte, bool) {
	if len(src)%4 != 0 {
		return nil, false
	}
	full := len(src) / 4 * 3
	dst := d.data[d.dataOff : d.dataOff+full]
	n, err := base64.StdEncoding.Decode(dst, src)
	if err != nil {
		return nil, false
	}
	// The decoder skips line breaks: only if none were skipped does the length tell.
	pad := 0
	if len(src) > 0 && src[len(src)-1] == '=' {
		pad++
		if src[len(src)-2] == '=' {
			pad++
		}
	}
	if n != full-pad {
		return nil, false
	}
	return d.take(n), true
}

// take hands out the next n decoded bytes of the Data buffer, capped so that an append to
// them cannot run into the next record's.
func (d *GetRecordsDecoder) take(n int) []byte {
	if n == 0 {
		return emptyData
	}
	off := d.dataOff
	d.dataOff += n
	return d.data[off:d.dataOff:d.dataOff]
}

// decodeChildShards reads the ChildShards array into new memory: it comes once per shard, at
// its end, and readers keep it.
func (d *GetRecordsDecoder) decodeChildShards(s *Scanner) ([]types.ChildShard, error) {
	if err := s.BeginArray(); err != nil {
		return nil, err
	}
	list := make([]types.ChildShard, 0)
	for first := true; ; first = false {
		more, err := s.More(']', first)
		if err != nil || !more {
			return list, err
		}
		list = append(list, types.ChildShard{})
		if s.Null() {
			continue
		}
		if err := d.decodeChildShard(s, &list[len(list)-1]); err != nil {
			return nil, fmt.Errorf("child shard %d: %w", len(list)-1, err)
		}
	}
}

func (d *GetRecordsDecoder) decodeChildShard(s *Scanner, c *types.ChildShard) error {
	if err := s.BeginObject(); err != nil {
		return err
	}
	for first := true; ; first = false {
		more, err := s.More('}', first)
		if err != nil || !more {
			return err
		}
		key, err := s.Key()
		if err != nil {
			return err
		}
		if s.Null() {
			continue
		}
		switch string(key) {
		case "ShardId":
			v, err := d.string(s)
			if err != nil {
				return member("ShardId", err)
			}
			c.ShardId = &v
		case "ParentShards":
			if c.ParentShards, err = d.decodeStrings(s); err != nil {
				return member("ParentShards", err)
			}
		case "HashKeyRange":
			c.HashKeyRange = &types.HashKeyRange{}
			if err := d.decodeHashKeyRange(s, c.HashKeyRange); err != nil {
				return member("HashKeyRange", err)
			}
		default:
			if err := s.Skip(); err != nil {
				return err
			}
		}
	}
}

// decodeStrings reads an array of strings; a null element is an empty string, as with the SDK.
func (d *GetRecordsDecoder) decodeStrings(s *Scanner) ([]string, error) {
	if err := s.BeginArray(); err != nil {
		return nil, err
	}
	list := make([]string, 0)
	for first := true; ; first = false {
		more, err := s.More(']', first)
		if err != nil || !more {
			return list, err
		}
		if s.Null() {
			list = append(list, "")
			continue
		}
		v, err := d.string(s)
		if err != nil {
			return nil, err
		}
		list = append(list, v)
	}
}

func (d *GetRecordsDecoder) decodeHashKeyRange(s *Scanner, h *types.HashKeyRange) error {
	if err := s.BeginObject(); err != nil {
		return err
	}
	for first := true; ; first = false {
		more, err := s.More('}', first)
		if err != nil || !more {
			return err
		}
		key, err := s.Key()
		if err != nil {
			return err
		}
		if s.Null() {
			continue
		}
		switch string(key) {
		case "StartingHashKey", "EndingHashKey":
			starting := string(key) == "StartingHashKey"
			v, err := d.string(s)
			if err != nil {
				return member(string(key), err)
			}
			if starting {
				h.StartingHashKey = &v
			} else {
				h.EndingHashKey = &v
			}
		default:
			if err := s.Skip(); err != nil {
				return err
			}
		}
	}
}

// stringChunk is the size of the blocks strings are cut from. A string kept alive keeps its
// block alive: small enough that a kept sequence number holds little memory, large enough
// that a 10,000-record answer takes a few dozen allocations for all its strings.
const stringChunk = 16 << 10

// stringArena cuts strings from blocks it never writes again once they are handed out, so
// the strings are as immutable as any other.
type stringArena struct {
	buf []byte
}

func (a *stringArena) add(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > stringChunk/8 {
		return string(b) // a long string gets memory of its own
	}
	if cap(a.buf)-len(a.buf) < len(b) {
		a.buf = make([]byte, 0, stringChunk)
	}
	start := len(a.buf)
	a.buf = append(a.buf, b...)
	// The bytes from start on are never written again: a later add appends after them.
	return unsafe.String(&a.buf[start], len(b))
}

// readBody reads an answer into the decoder's body buffer. size is the Content-Length, or -1.
func (d *GetRecordsDecoder) readBody(r io.Reader, size int64) ([]byte, error) {
	b := d.body[:0]
	if size > 0 && size < 1<<30 && int64(cap(b)) < size+512 {
		// Room for the whole body and the read that reports its end.
		b = make([]byte, 0, size+512)
	}
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			d.body = b
			return b, nil
		}
		if err != nil {
			d.body = b
			return nil, err
		}
	}
}
