package agent

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// processor runs a flow's dataProcessingOptions over one record. Every step receives the
// record ending in a newline and returns one ending in a newline, as in the Amazon Kinesis
// Agent, so steps chain in any order. A processor is used by one reader at a time: it keeps
// scratch space.
type processor struct {
	steps  []step
	fields []field // fields of the last parsing step, for partitionKeyField
}

type step interface {
	// apply transforms in; ok=false drops the record (a line the log format rejects).
	apply(in []byte, p *processor) (out []byte, ok bool)
}

func newProcessor(opts []ProcessingOption) (*processor, error) {
	return newProcessorWith(opts, nil)
}

// newProcessorWith is newProcessor with the agent's instance metadata for ADDEC2METADATA; with
// nil, that step passes records unchanged.
func newProcessorWith(opts []ProcessingOption, ec2 *instanceMetadata) (*processor, error) {
	p := &processor{}
	for i := range opts {
		o := &opts[i]
		pretty := o.JSONFormat == "PRETTYPRINT"
		switch o.OptionName {
		case "SINGLELINE":
			p.steps = append(p.steps, singleLine{
				noTrim: slices.Contains(o.ParseOptions, "NO_TRIM"),
				escape: slices.Contains(o.ParseOptions, "ESCAPE_NEW_LINE"),
			})
		case "CSVTOJSON":
			d, err := compileDelimiter(o.Delimiter)
			if err != nil {
				return nil, err
			}
			p.steps = append(p.steps, &csvToJSON{names: o.CustomFieldNames, delim: d, pretty: pretty})
		case "LOGTOJSON":
			lp, err := newLogParser(o)
			if err != nil {
				return nil, err
			}
			p.steps = append(p.steps, &logToJSON{parser: lp, pretty: pretty})
		case "ADDEC2METADATA":
			p.steps = append(p.steps, &addEC2Metadata{meta: ec2, ttl: o.MetadataTTL, pretty: pretty})
		case "ADDMETADATA":
			meta := o.MetadataFields
			if len(meta) == 0 {
				meta = json.RawMessage("null")
			}
			if pretty {
				var buf bytes.Buffer
				if err := json.Indent(&buf, meta, "  ", "  "); err == nil {
					meta = buf.Bytes()
				}
			}
			p.steps = append(p.steps, &addMetadata{meta: meta, pretty: pretty, ts: o.Timestamp, now: time.Now})
		}
	}
	return p, nil
}

// run applies every step; ok=false means the record is dropped.
func (p *processor) run(data []byte) ([]byte, bool) {
	p.fields = p.fields[:0]
	for _, s := range p.steps {
		var ok bool
		data, ok = s.apply(data, p)
		if !ok {
			return nil, false
		}
	}
	return data, true
}

func stripNewline(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		return b[:n-1]
	}
	return b
}

// singleLine joins the lines of a multi-line record as SINGLELINE does in the Amazon Kinesis
// Agent (SingleLineDataConverter): the record is split at each newline, trailing empty lines
// dropped as Java's String.split drops them, each line trimmed unless noTrim, and the lines
// joined with nothing in between, or with the characters \\n with escape (its delimiter is
// the Java literal "\\\\n"), and one newline at the end.
type singleLine struct {
	noTrim, escape bool
}

func (s singleLine) apply(in []byte, _ *processor) ([]byte, bool) {
	end := len(in)
	for end > 0 && in[end-1] == '\n' {
		end--
	}
	out := make([]byte, 0, end+1)
	rest := in[:end]
	for first := true; ; first = false {
		line := rest
		i := bytes.IndexByte(rest, '\n')
		if i >= 0 {
			line = rest[:i]
		}
		if !first && s.escape {
			out = append(out, `\\n`...)
		}
		if !s.noTrim {
			line = javaTrim(line)
		}
		out = append(out, line...)
		if i < 0 {
			break
		}
		rest = rest[i+1:]
	}
	return append(out, '\n'), true
}

// javaTrim removes leading and trailing bytes up to and including space, as Java's
// String.trim does; that takes carriage returns and tabs too.
func javaTrim(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && b[i] <= ' ' {
		i++
	}
	for j > i && b[j-1] <= ' ' {
		j--
	}
	return b[i:j]
}

// delimiter splits CSV lines. The Amazon Kinesis Agent passes its delimiter to Java's
// String.split, a regular expression; a delimiter without special characters skips the
// regular expression engine.
type delimiter struct {
	lit []byte
	re  *regexp.Regexp
}

func compileDelimiter(d string) (*delimiter, error) {
	if d == "" {
		d = ","
	}
	if regexp.QuoteMeta(d) == d {
		return &delimiter{lit: []byte(d)}, nil
	}
	re, err := regexp.Compile(d)
	if err != nil {
		return nil, err
	}
	if lit, complete := re.LiteralPrefix(); complete && lit != "" {
		return &delimiter{lit: []byte(lit)}, nil
	}
	return &delimiter{re: re}, nil
}

// split follows Java's String.split: trailing empty fields are dropped.
func (d *delimiter) split(s []byte) [][]byte {
	var cols [][]byte
	if d.lit != nil {
		cols = bytes.Split(s, d.lit)
	} else {
		idx := d.re.FindAllIndex(s, -1)
		prev := 0
		for _, m := range idx {
			if m[1] == 0 { // Java skips a zero-width match at the very start
				continue
			}
			cols = append(cols, s[prev:m[0]])
			prev = m[1]
		}
		cols = append(cols, s[prev:])
	}
	for len(cols) > 0 && len(cols[len(cols)-1]) == 0 {
		cols = cols[:len(cols)-1]
	}
	if len(cols) == 0 && len(s) == 0 {
		cols = [][]byte{s} // "".split(x) is [""] in Java
	}
	return cols
}

type csvToJSON struct {
	names  []string
	delim  *delimiter
	pretty bool
}

func (c *csvToJSON) apply(in []byte, p *processor) ([]byte, bool) {
	cols := c.delim.split(stripNewline(in))
	p.fields = p.fields[:0]
	for i, n := range c.names {
		f := field{name: n}
		if i < len(cols) {
			f.val = cols[i]
		} else {
			f.null = true
		}
		p.fields = append(p.fields, f)
	}
	out := appendJSONObject(make([]byte, 0, len(in)+16*len(c.names)), p.fields, c.pretty)
	return append(out, '\n'), true
}

type logToJSON struct {
	parser *logParser
	pretty bool
}

func (l *logToJSON) apply(in []byte, p *processor) ([]byte, bool) {
	fields := l.parser.parse(stripNewline(in), p.fields[:0])
	if fields == nil {
		return nil, false
	}
	p.fields = fields
	out := appendJSONObject(make([]byte, 0, len(in)+16*len(fields)), fields, l.pretty)
	return append(out, '\n'), true
}

// addMetadata wraps a record as the Amazon Kinesis Agent's AddMetadataConverter does:
// {"ts": ..., "metadata": ..., "data": the record without its newline}, ts only with the
// option's timestamp set.
type addMetadata struct {
	meta   json.RawMessage
	pretty bool
	ts     bool
	now    func() time.Time
}

// tsLayout is AddMetadataConverter's SimpleDateFormat "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'" in UTC.
const tsLayout = "2006-01-02T15:04:05.000Z"

func (a *addMetadata) apply(in []byte, _ *processor) ([]byte, bool) {
	out := make([]byte, 0, len(in)+len(a.meta)+64)
	if a.pretty {
		out = append(out, "{\n"...)
		if a.ts {
			out = append(out, "  \"ts\" : \""...)
			out = a.now().UTC().AppendFormat(out, tsLayout)
			out = append(out, "\",\n"...)
		}
		out = append(out, "  \"metadata\" : "...)
		out = append(out, a.meta...)
		out = append(out, ",\n  \"data\" : "...)
		out = appendJSONString(out, stripNewline(in))
		out = append(out, "\n}\n"...)
		return out, true
	}
	out = append(out, '{')
	if a.ts {
		out = append(out, `"ts":"`...)
		out = a.now().UTC().AppendFormat(out, tsLayout)
		out = append(out, `",`...)
	}
	out = append(out, `"metadata":`...)
	out = append(out, a.meta...)
	out = append(out, `,"data":`...)
	out = appendJSONString(out, stripNewline(in))
	return append(out, "}\n"...), true
}

// MaxPartitionKeyLength is Kinesis' limit on a partition key, in Unicode characters.
const MaxPartitionKeyLength = 256

// partitioner chooses partition keys for one flow.
type partitioner struct {
	opt   PartitionKeyOption
	field string
	// randKey is the current random key and randLeft how many more records take it.
	randKey  string
	randLeft int
}

// randomKeyRun is how many consecutive records of a file share one random partition key. A
// run of records with one key lands on one shard, as a run of unrelated keys would spread over
// several; over many runs the records spread evenly over any number of shards. Sharing saves
// a key's formatting and its MD5 (which the producer caches per key) on all but the first
// record of the run.
const randomKeyRun = 64

func (pt *partitioner) key(data []byte, fields []field) string {
	switch pt.opt {
	case PartitionKeyDeterministic:
		sum := md5.Sum(data)
		return hex.EncodeToString(sum[:])
	case PartitionKeyField:
		for _, f := range fields {
			if f.name == pt.field && !f.null && len(f.val) > 0 {
				return fieldKey(f.val)
			}
		}
		// A record without the field still has to go somewhere; a random key spreads such
		// records rather than piling them on one shard.
	}
	if pt.randLeft == 0 {
		pt.randKey, pt.randLeft = strconv.FormatUint(rand.Uint64(), 10), randomKeyRun
	}
	pt.randLeft--
	return pt.randKey
}

// fieldKey makes a field's value a valid partition key: valid UTF-8 of at most 256
// characters.
func fieldKey(v []byte) string {
	s := string(bytes.ToValidUTF8(v, []byte("\uFFFD")))
	if utf8.RuneCountInString(s) > MaxPartitionKeyLength {
		n := 0
		for i := range s {
			if n == MaxPartitionKeyLength {
				return s[:i]
			}
			n++
		}
	}
	return s
}

// truncateRecord cuts data to limit bytes ending with the terminator, as the Amazon Kinesis
// Agent does, but never inside a UTF-8 character: a cut character would turn the record's last
// text into an invalid sequence.
func truncateRecord(data []byte, limit int, terminator string) []byte {
	if len(data) <= limit {
		return data
	}
	cut := limit - len(terminator)
	if cut < 0 {
		cut = 0
	}
	// Step back over continuation bytes of a character that would be split.
	for back := 0; back < utf8.UTFMax && cut > 0 && cut < len(data) && !utf8.RuneStart(data[cut]); back++ {
		cut--
	}
	if cut > 0 && cut < len(data) && !utf8.RuneStart(data[cut]) {
		cut = limit - len(terminator) // not valid UTF-8 there anyway; keep every byte that fits
	}
	out := data[:cut:cut]
	if cap(data) >= cut+len(terminator) {
		out = data[:cut]
	}
	return append(out, terminator...)
}
