package kinesisjson

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
	"github.com/shardline/shardline/internal/requestbody"
)

var getRecordsSchema = smithy.NewOperationSchema(schemas.GetRecords, schemas.GetRecordsInput, schemas.GetRecordsOutput)

// sdkProtocol is the protocol a kinesis client speaks by default.
var sdkProtocol = awsjson.New11(schemas.Kinesis_20131202)

func okResponse(body []byte) *smithyhttp.Response {
	return &smithyhttp.Response{Response: &http.Response{
		StatusCode:    200,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Header:        http.Header{},
	}}
}

// sdkDecode decodes body with the SDK's own protocol, as a client does. A panic in the SDK
// is reported as an error.
func sdkDecode(body []byte) (out *kinesis.GetRecordsOutput, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("SDK panicked: %v", r)
		}
	}()
	out = &kinesis.GetRecordsOutput{}
	if err := sdkProtocol.DeserializeResponse(context.Background(), getRecordsSchema, kinesis.TypeRegistry, okResponse(body), out); err != nil {
		return nil, err
	}
	return out, nil
}

// fastDecode decodes body through the stand-in protocol, as a call with d's option does.
func fastDecode(d *GetRecordsDecoder, body []byte) (*kinesis.GetRecordsOutput, error) {
	o := kinesis.Options{Protocol: sdkProtocol}
	d.Option()(&o)
	if _, ok := o.Protocol.(*standIn); !ok {
		panic("the stand-in was not installed")
	}
	out := &kinesis.GetRecordsOutput{}
	if err := o.Protocol.DeserializeResponse(context.Background(), getRecordsSchema, kinesis.TypeRegistry, okResponse(body), out); err != nil {
		return nil, err
	}
	return out, nil
}

// sameOutput reports how a and b differ, ignoring the call's metadata, or "".
func sameOutput(a, b *kinesis.GetRecordsOutput) string {
	x, y := *a, *b
	x.ResultMetadata, y.ResultMetadata = middleware.Metadata{}, middleware.Metadata{}
	if reflect.DeepEqual(x, y) {
		return ""
	}
	if len(x.Records) != len(y.Records) {
		return fmt.Sprintf("%d records, want %d", len(x.Records), len(y.Records))
	}
	for i := range x.Records {
		if !reflect.DeepEqual(x.Records[i], y.Records[i]) {
			return fmt.Sprintf("record %d:\n got %s\nwant %s", i, describeRecord(x.Records[i]), describeRecord(y.Records[i]))
		}
	}
	return fmt.Sprintf("\n got %+v\nwant %+v", x, y)
}

func describeRecord(r any) string {
	v := reflect.ValueOf(r)
	var b strings.Builder
	for i := range v.NumField() {
		f := v.Field(i)
		if !v.Type().Field(i).IsExported() {
			continue
		}
		if f.Kind() == reflect.Pointer && !f.IsNil() {
			f = f.Elem()
		}
		fmt.Fprintf(&b, "%s=%#v ", v.Type().Field(i).Name, f.Interface())
	}
	return b.String()
}

// cannedServer answers every request with the body and status set last, and counts the
// GetRecords calls.
type cannedServer struct {
	*httptest.Server
	mu     sync.Mutex
	body   []byte
	status int
	header http.Header
}

func newCannedServer(t testing.TB) *cannedServer {
	c := &cannedServer{status: 200}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		c.mu.Lock()
		body, status, header := c.body, c.status, c.header
		c.mu.Unlock()
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *cannedServer) answer(status int, body []byte, header http.Header) {
	c.mu.Lock()
	c.body, c.status, c.header = body, status, header
	c.mu.Unlock()
}

// client is a real kinesis client of the canned server, without retries. The canned server
// answers without reading the request body; requestbody.Guard keeps the SDK's early close
// of that body from breaking the connection the answer is read from.
func (c *cannedServer) client() *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(c.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:       requestbody.Client(c.Client().Transport),
		RetryMaxAttempts: 1,
	})
}

func getRecordsIn() *kinesis.GetRecordsInput {
	return &kinesis.GetRecordsInput{ShardIterator: aws.String("iterator"), Limit: aws.Int32(10000)}
}

// ---- Generated answers ----

// gen writes GetRecords answers as a service (or a careless one) might: members in any
// order, optional ones missing or null, unknown members, escapes anywhere, white space.
type gen struct {
	r *rand.Rand
	b []byte
}

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

func (g *gen) ws() {
	if g.chance(0.1) {
		g.b = append(g.b, " \n\t\r"[:1+g.r.IntN(4)]...)
	}
}

// key writes a member name, sometimes with some of its letters escaped.
func (g *gen) key(name string) {
	g.ws()
	if g.chance(0.1) {
		g.b = append(g.b, '"')
		for _, c := range []byte(name) {
			if g.chance(0.3) {
				g.b = fmt.Appendf(g.b, `\u%04x`, c)
			} else {
				g.b = append(g.b, c)
			}
		}
		g.b = append(g.b, '"')
	} else {
		g.str(name)
	}
	g.ws()
	g.b = append(g.b, ':')
	g.ws()
}

// str writes s as a JSON string, escaping some characters that need no escape, and passing
// invalid UTF-8 through raw or escaped.
func (g *gen) str(s string) {
	g.b = append(g.b, '"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			g.b = append(g.b, '\\', c)
		case c < 0x20:
			switch {
			case c == '\n' && g.chance(0.5):
				g.b = append(g.b, `\n`...)
			case c == '\t' && g.chance(0.5):
				g.b = append(g.b, `\t`...)
			case c == '\b':
				g.b = append(g.b, `\b`...)
			default:
				g.b = fmt.Appendf(g.b, `\u%04X`, c)
			}
		case c == '/' && g.chance(0.3):
			g.b = append(g.b, `\/`...)
		case r == utf8.RuneError && size == 1:
			g.b = append(g.b, c) // raw invalid UTF-8
		case g.chance(0.05):
			if r > 0xFFFF {
				r1, r2 := utf16Pair(r)
				g.b = fmt.Appendf(g.b, `\u%04x\u%04x`, r1, r2)
			} else {
				g.b = fmt.Appendf(g.b, `\u%04x`, r)
			}
		default:
			g.b = append(g.b, s[i:i+size]...)
		}
		i += size
	}
	if g.chance(0.02) {
		g.b = append(g.b, `\ud800`...) // an unpaired surrogate
	}
	g.b = append(g.b, '"')
}

func utf16Pair(r rune) (rune, rune) {
	r -= 0x10000
	return 0xD800 + (r>>10)&0x3FF, 0xDC00 + r&0x3FF
}

var keyPieces = []string{"k", "user-", "é", "日本", "😀", "\"", "\\", "\n", "\x00", "\x7f", "\u2028", "\xff", "/", " ", "</script>"}

func (g *gen) text(maxPieces int) string {
	var b strings.Builder
	for range g.r.IntN(maxPieces + 1) {
		b.WriteString(keyPieces[g.r.IntN(len(keyPieces))])
	}
	return b.String()
}

func (g *gen) seq() string {
	var b [56]byte
	b[0] = '4' + byte(g.r.IntN(6))
	for i := 1; i < len(b); i++ {
		b[i] = '0' + byte(g.r.IntN(10))
	}
	return string(b[:])
}

// data writes a record's Data: base64, sometimes with escaped characters or escaped line
// breaks, which the SDK's decoder accepts.
func (g *gen) data() {
	var n int
	switch x := g.r.IntN(20); {
	case x == 0:
		n = 0
	case x == 1:
		n = 100_000 + g.r.IntN(200_000)
	case x < 5:
		n = 1 + g.r.IntN(3)
	default:
		n = g.r.IntN(1500)
	}
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(g.r.Uint32())
	}
	enc := base64.StdEncoding.EncodeToString(data)
	if !g.chance(0.1) {
		g.b = append(g.b, '"')
		g.b = append(g.b, enc...)
		g.b = append(g.b, '"')
		return
	}
	g.b = append(g.b, '"')
	for i := 0; i < len(enc); i++ {
		switch c := enc[i]; {
		case c == '/' && g.chance(0.5):
			g.b = append(g.b, `\/`...)
		case g.chance(0.02):
			g.b = fmt.Appendf(g.b, `\u%04x`, c)
		case g.chance(0.02):
			g.b = append(g.b, `\n`...)
			g.b = append(g.b, c)
		case g.chance(0.01):
			g.b = append(g.b, `\r\n`...)
			g.b = append(g.b, c)
		default:
			g.b = append(g.b, c)
		}
	}
	g.b = append(g.b, '"')
}

// timestamp writes epoch seconds in one of the forms a JSON encoder may choose.
func (g *gen) timestamp() {
	base := 1.6e9 + g.r.Float64()*2e8
	switch g.r.IntN(10) {
	case 0:
		g.b = strconv.AppendInt(g.b, int64(base), 10)
	case 1:
		g.b = strconv.AppendFloat(g.b, base, 'E', -1, 64) // 1.6074669634191234E+09
	case 2:
		g.b = strconv.AppendFloat(g.b, base, 'e', 12, 64)
	case 3:
		g.b = strconv.AppendFloat(g.b, base, 'f', -1, 64)
	case 4:
		g.b = strconv.AppendFloat(g.b, g.r.NormFloat64()*1e12, 'g', -1, 64)
	case 5:
		g.b = append(g.b, []string{`"Infinity"`, `"-infinity"`, `-0`, `0.0005`, `-0.0015`, `1e308`, `9.3e15`, `-9.3e15`, `1.7976931348623157e308`, `5e-324`}[g.r.IntN(10)]...)
	default:
		g.b = strconv.AppendFloat(g.b, float64(int64(base*1000))/1000, 'f', 3, 64)
	}
}

// unknown writes a value of a member the decoder does not know.
func (g *gen) unknown(depth int) {
	switch x := g.r.IntN(8); {
	case x == 0 && depth < 4:
		g.b = append(g.b, '{')
		for i := range g.r.IntN(3) {
			if i > 0 {
				g.b = append(g.b, ',')
			}
			g.key(g.text(3))
			g.unknown(depth + 1)
		}
		g.b = append(g.b, '}')
	case x == 1 && depth < 4:
		g.b = append(g.b, '[')
		for i := range g.r.IntN(4) {
			if i > 0 {
				g.b = append(g.b, ',')
				g.ws()
			}
			g.unknown(depth + 1)
		}
		g.b = append(g.b, ']')
	case x == 2:
		g.str(g.text(5))
	case x == 3:
		g.b = strconv.AppendFloat(g.b, g.r.NormFloat64()*1e6, 'g', -1, 64)
	case x == 4:
		g.b = append(g.b, []string{"true", "false", "null", "-0", "0", "12e-3"}[g.r.IntN(6)]...)
	default:
		g.b = strconv.AppendInt(g.b, g.r.Int64()>>g.r.IntN(64), 10)
	}
}

// members writes an object's members in a random order; each writer returns false to leave
// its member out.
func (g *gen) members(ws ...func() bool) {
	g.b = append(g.b, '{')
	g.r.Shuffle(len(ws), func(i, j int) { ws[i], ws[j] = ws[j], ws[i] })
	first := true
	for _, w := range ws {
		mark := len(g.b)
		if !first {
			g.b = append(g.b, ',')
		}
		if w() {
			first = false
		} else {
			g.b = g.b[:mark]
		}
	}
	g.ws()
	g.b = append(g.b, '}')
}

// optional writes member name with value, or null, or leaves it out.
func (g *gen) optional(name string, value func()) func() bool {
	return func() bool {
		switch x := g.r.Float64(); {
		case x < 0.1:
			return false
		case x < 0.15:
			g.key(name)
			g.b = append(g.b, "null"...)
		default:
			g.key(name)
			value()
		}
		return true
	}
}

func (g *gen) unknownMember() func() bool {
	return func() bool {
		if !g.chance(0.1) {
			return false
		}
		g.key([]string{"Extra", "records", "data", "SequenceNumberX", "\u00c9"}[g.r.IntN(5)])
		g.unknown(0)
		return true
	}
}

func (g *gen) record() {
	if g.chance(0.01) {
		g.b = append(g.b, "null"...)
		return
	}
	g.members(
		g.optional("SequenceNumber", func() { g.str(g.seq()) }),
		g.optional("ApproximateArrivalTimestamp", g.timestamp),
		g.optional("Data", g.data),
		g.optional("PartitionKey", func() { g.str(g.text(8)) }),
		g.optional("EncryptionType", func() {
			g.str([]string{"NONE", "KMS", "KMS", "NONE", "SOMETHING-NEW", ""}[g.r.IntN(6)])
		}),
		g.unknownMember(),
	)
}

func (g *gen) hashKey() string {
	return strconv.FormatUint(g.r.Uint64(), 10) + strconv.FormatUint(g.r.Uint64()%1e18, 10)
}

func (g *gen) childShard() {
	if g.chance(0.05) {
		g.b = append(g.b, "null"...)
		return
	}
	g.members(
		g.optional("ShardId", func() { g.str(fmt.Sprintf("shardId-%012d", g.r.IntN(1000))) }),
		g.optional("ParentShards", func() {
			g.b = append(g.b, '[')
			for i := range g.r.IntN(3) {
				if i > 0 {
					g.b = append(g.b, ',')
				}
				if g.chance(0.1) {
					g.b = append(g.b, "null"...)
				} else {
					g.str(fmt.Sprintf("shardId-%012d", g.r.IntN(1000)))
				}
			}
			g.b = append(g.b, ']')
		}),
		g.optional("HashKeyRange", func() {
			g.members(
				g.optional("StartingHashKey", func() { g.str(g.hashKey()) }),
				g.optional("EndingHashKey", func() { g.str(g.hashKey()) }),
				g.unknownMember(),
			)
		}),
		g.unknownMember(),
	)
}

func (g *gen) list(n int, elem func()) {
	g.b = append(g.b, '[')
	for i := range n {
		if i > 0 {
			g.b = append(g.b, ',')
		}
		g.ws()
		elem()
	}
	g.ws()
	g.b = append(g.b, ']')
}

// answer generates one GetRecords answer.
func (g *gen) answer() []byte {
	g.b = g.b[:0]
	g.ws()
	n := g.r.IntN(40)
	if g.chance(0.1) {
		n = 0
	}
	g.members(
		g.optional("Records", func() { g.list(n, g.record) }),
		g.optional("NextShardIterator", func() { g.str("AAAAAAAAAAH" + g.text(4) + strings.Repeat("x", g.r.IntN(300))) }),
		g.optional("MillisBehindLatest", func() { g.b = strconv.AppendInt(g.b, g.r.Int64N(1<<40)-10, 10) }),
		func() bool {
			if !g.chance(0.2) {
				return false
			}
			g.key("ChildShards")
			g.list(g.r.IntN(3), g.childShard)
			return true
		},
		g.unknownMember(),
		g.unknownMember(),
	)
	g.ws()
	return bytes.Clone(g.b)
}
