package agent

import (
	"bytes"
	"fmt"
	"regexp"
)

// Building blocks of the log formats. They follow the Amazon Kinesis Agent's patterns, so its
// users get the same fields from the same lines, with a few widenings that only make more
// lines parse: IPv6 hosts, escaped quotes inside Apache's quoted fields, an optional [client]
// in Apache error logs and an optional <PRI> before a BSD syslog line.
const (
	reInt       = `(?:[+-]?(?:[0-9]+))`
	rePosInt    = `(?:[1-9][0-9]*)`
	reNonNegInt = `(?:[0-9]+)`
	reWord      = `\w+`
	reIP        = `(?:[0-9.]+|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)`
	reHostname  = `(?:[\w\-]+)(?:\.(?:[\w\-]+))*(?:\.?|\b)`
	reIPOrHost  = `(?:` + reIP + `|` + reHostname + `)`
	reURIHost   = `(?:` + reIPOrHost + `(?::` + rePosInt + `)?|\[[0-9A-Fa-f:.]+\](?::` + rePosInt + `)?)`
	reUser      = `(?:[a-zA-Z0-9._@-]+)`
	reMonthDay  = `(?:(?:0[1-9])|(?:[12][0-9])|(?:3[01])|[1-9])`
	reDay       = `(?:Mon(?:day)?|Tue(?:sday)?|Wed(?:nesday)?|Thu(?:rsday)?|Fri(?:day)?|Sat(?:urday)?|Sun(?:day)?)`
	reMonth     = `\b(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|Jun(?:e)?|Jul(?:y)?|Aug(?:ust)?|Sep(?:tember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\b`
	reYear      = `(?:[1-9]\d*)`
	reHour      = `(?:2[0123]|[01]?[0-9])`
	reMinute    = `(?:[0-5][0-9])`
	reSecond    = `(?:(?:[0-5]?[0-9]|60)(?:[:.,][0-9]+)?)`
	reTime      = `(?:` + reHour + `:` + reMinute + `:` + reSecond + `)`
	reHTTPDate  = `(?:` + reMonthDay + `/` + reMonth + `/` + reYear + `:` + reTime + `\s` + reInt + `)`
	reErrorTime = `(?:` + reDay + `\s+` + reMonth + `\s+` + reMonthDay + `\s+` + reTime + `\s+` + reYear + `)`
	reSyslogTS  = `(?:` + reMonth + `\s+` + reMonthDay + `\s+` + reTime + `)`
	reRFC3339   = `(?:\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?)(?:[Zz]|(?:[-+]\d{2}:\d{2}))`
	reFacility  = `<` + reNonNegInt + `.` + reNonNegInt + `>`
	reProg      = `([\w._/%-]+)`
	reQuoted    = `((?:[^"\\]|\\.)*)`

	reCommonApache = `(` + reIPOrHost + `) (` + reUser + `) (` + reUser + `) \[(` + reHTTPDate + `)\] "` + reQuoted + `" (` + reInt + `|-) (` + reInt + `|-)`
	reCombined     = reCommonApache + ` "` + reQuoted + `" "` + reQuoted + `"`
	reApacheError  = `\[(` + reErrorTime + `)\] \[(?:(` + reWord + `):)?(` + reWord + `)\] \[pid (` + reNonNegInt + `)(?::tid (` + reNonNegInt + `))?\] (?:\[client (` + reURIHost + `)\] )?(.*)`
	reSyslog       = `(?:<\d{1,3}>)?(` + reSyslogTS + `) (?:` + reFacility + ` )?(` + reUser + `) ` + reProg + `(?:\[(` + rePosInt + `)\])?: (.*)`
	reRFC3339Sys   = `(?:<\d{1,3}>)?(` + reRFC3339 + `) (?:` + reFacility + ` )?(` + reUser + `) ` + reProg + `(?:\[(` + rePosInt + `)\])?: (.*)`
	// RFC 5424: <PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]
	reRFC5424 = `<(\d{1,3})>(\d{1,2}) (\S+) (\S+) (\S+) (\S+) (\S+) (-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (.*))?`
)

type logFormat struct {
	pattern string
	fields  []string
	// dashIsNull turns "-" into null in every field, as Apache logs and RFC 5424's NILVALUE
	// mean "no value" by it.
	dashIsNull bool
	// lastVerbatim keeps the last field (the message) as it is even when it is "-".
	lastVerbatim bool
	// stripBOM drops a byte order mark before the message, which RFC 5424 allows.
	stripBOM bool
}

var logFormats = map[string]logFormat{
	"COMMONAPACHELOG":   {reCommonApache + `.*`, []string{"host", "ident", "authuser", "datetime", "request", "response", "bytes"}, true, false, false},
	"COMBINEDAPACHELOG": {reCombined + `.*`, []string{"host", "ident", "authuser", "datetime", "request", "response", "bytes", "referer", "agent"}, true, false, false},
	"APACHEERRORLOG":    {reApacheError, []string{"timestamp", "module", "severity", "processid", "threadid", "client", "message"}, true, true, false},
	"SYSLOG":            {reSyslog, []string{"timestamp", "hostname", "program", "processid", "message"}, false, false, false},
	"RFC3339SYSLOG":     {reRFC3339Sys, []string{"timestamp", "hostname", "program", "processid", "message"}, false, false, false},
	"RFC5424SYSLOG":     {reRFC5424, []string{"priority", "version", "timestamp", "hostname", "appname", "procid", "msgid", "structureddata", "message"}, true, true, true},
}

// logParser turns one line into named fields with a regular expression that must match the
// whole line, as the Amazon Kinesis Agent's matcher.matches() does.
type logParser struct {
	re           *regexp.Regexp
	names        []string
	dashIsNull   bool
	lastVerbatim bool
	stripBOM     bool
}

func newLogParser(o *ProcessingOption) (*logParser, error) {
	if o.MatchPattern != "" {
		if o.CustomFieldNames == nil {
			return nil, &ConfigError{Path: "customFieldNames", Problem: "must name the capture groups when matchPattern is set"}
		}
		re, err := regexp.Compile(`^(?:` + o.MatchPattern + `)$`)
		if err != nil {
			return nil, &ConfigError{Path: "matchPattern", Problem: fmt.Sprintf("invalid regular expression: %v", err)}
		}
		if re.NumSubexp() != len(o.CustomFieldNames) {
			return nil, &ConfigError{Path: "customFieldNames", Problem: fmt.Sprintf("names %d fields but matchPattern has %d capture groups", len(o.CustomFieldNames), re.NumSubexp())}
		}
		lf, known := logFormats[o.LogFormat]
		return &logParser{re: re, names: o.CustomFieldNames, dashIsNull: known && lf.dashIsNull}, nil
	}
	lf, ok := logFormats[o.LogFormat]
	if !ok {
		if o.LogFormat == "" {
			return nil, &ConfigError{Path: "logFormat", Problem: "must be set for LOGTOJSON"}
		}
		return nil, &ConfigError{Path: "logFormat", Problem: fmt.Sprintf("must be COMMONAPACHELOG, COMBINEDAPACHELOG, APACHEERRORLOG, SYSLOG, RFC3339SYSLOG or RFC5424SYSLOG, got %q", o.LogFormat)}
	}
	names := lf.fields
	if o.CustomFieldNames != nil {
		if len(o.CustomFieldNames) != len(lf.fields) {
			return nil, &ConfigError{Path: "customFieldNames", Problem: fmt.Sprintf("%s has %d fields, customFieldNames names %d; set matchPattern to change the fields", o.LogFormat, len(lf.fields), len(o.CustomFieldNames))}
		}
		names = o.CustomFieldNames
	}
	re := regexp.MustCompile(`^(?:` + lf.pattern + `)$`)
	return &logParser{re: re, names: names, dashIsNull: lf.dashIsNull, lastVerbatim: lf.lastVerbatim, stripBOM: lf.stripBOM}, nil
}

var dash = []byte("-")

// parse returns the fields of line, or nil when the line does not have the format.
func (p *logParser) parse(line []byte, dst []field) []field {
	m := p.re.FindSubmatchIndex(line)
	if m == nil {
		return nil
	}
	dst = dst[:0]
	for i, name := range p.names {
		a, b := m[2*i+2], m[2*i+3]
		f := field{name: name}
		if a < 0 {
			f.null = true
		} else {
			f.val = line[a:b]
			if p.dashIsNull && bytes.Equal(f.val, dash) && !(p.lastVerbatim && i == len(p.names)-1) {
				f.null, f.val = true, nil
			}
		}
		dst = append(dst, f)
	}
	if p.stripBOM && len(dst) > 0 {
		last := &dst[len(dst)-1]
		last.val = bytes.TrimPrefix(last.val, []byte("\xef\xbb\xbf"))
	}
	return dst
}
