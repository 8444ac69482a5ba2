package agent

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func runProcessor(t *testing.T, opts []ProcessingOption, line string) (string, bool) {
	t.Helper()
	(&Flow{DataProcessingOptions: opts}).applyDefaults()
	for i := range opts {
		if opts[i].JSONFormat == "" {
			opts[i].JSONFormat = "COMPACT"
		}
	}
	p, err := newProcessor(opts)
	if err != nil {
		t.Fatal(err)
	}
	out, ok := p.run([]byte(line))
	return string(out), ok
}

func decodeJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	if !strings.HasSuffix(s, "\n") {
		t.Errorf("record %q does not end in a newline", s)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not JSON: %q: %v", s, err)
	}
	return m
}

func TestLogFormats(t *testing.T) {
	cases := []struct {
		format string
		line   string
		want   map[string]any
	}{
		{"COMMONAPACHELOG", `127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326`,
			map[string]any{"host": "127.0.0.1", "ident": nil, "authuser": "frank", "datetime": "10/Oct/2000:13:55:36 -0700",
				"request": "GET /apache_pb.gif HTTP/1.0", "response": "200", "bytes": "2326"}},
		{"COMBINEDAPACHELOG", `192.168.1.20 - - [28/Jul/2006:10:27:10 -0300] "GET /cgi-bin/try/ HTTP/1.0" 200 3395 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"`,
			map[string]any{"host": "192.168.1.20", "ident": nil, "authuser": nil, "datetime": "28/Jul/2006:10:27:10 -0300",
				"request": "GET /cgi-bin/try/ HTTP/1.0", "response": "200", "bytes": "3395",
				"referer": "http://www.example.com/start.html", "agent": "Mozilla/4.08 [en] (Win98; I ;Nav)"}},
		{"COMBINEDAPACHELOG", `2001:db8::1 - - [01/Feb/2024:00:00:01 +0000] "GET /q?x=\"y\" HTTP/1.1" 404 - "-" "curl/8.0"`,
			map[string]any{"host": "2001:db8::1", "ident": nil, "authuser": nil, "datetime": "01/Feb/2024:00:00:01 +0000",
				"request": `GET /q?x=\"y\" HTTP/1.1`, "response": "404", "bytes": nil, "referer": nil, "agent": "curl/8.0"}},
		{"APACHEERRORLOG", `[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187] File does not exist: /usr/local/apache2/htdocs/favicon.ico`,
			map[string]any{"timestamp": "Fri Sep 09 10:42:29.902022 2011", "module": "core", "severity": "error", "processid": "35708",
				"threadid": "4328636416", "client": "72.15.99.187", "message": "File does not exist: /usr/local/apache2/htdocs/favicon.ico"}},
		{"APACHEERRORLOG", `[Wed Oct 11 14:32:52 2000] [error] [pid 123] AH00094: Command line: '/usr/sbin/httpd'`,
			map[string]any{"timestamp": "Wed Oct 11 14:32:52 2000", "module": nil, "severity": "error", "processid": "123",
				"threadid": nil, "client": nil, "message": "AH00094: Command line: '/usr/sbin/httpd'"}},
		{"SYSLOG", `Mar 12 12:00:08 server2 rcd[308]: Loaded 12 packages in 'ximian-red-carpet|351' (0.01878 seconds)`,
			map[string]any{"timestamp": "Mar 12 12:00:08", "hostname": "server2", "program": "rcd", "processid": "308",
				"message": "Loaded 12 packages in 'ximian-red-carpet|351' (0.01878 seconds)"}},
		{"SYSLOG", `<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8`,
			map[string]any{"timestamp": "Oct 11 22:14:15", "hostname": "mymachine", "program": "su", "processid": nil,
				"message": "'su root' failed for lonvick on /dev/pts/8"}},
		{"RFC3339SYSLOG", `2024-03-12T12:00:08.123456+01:00 web-1 sshd[4242]: Accepted publickey for deploy`,
			map[string]any{"timestamp": "2024-03-12T12:00:08.123456+01:00", "hostname": "web-1", "program": "sshd", "processid": "4242",
				"message": "Accepted publickey for deploy"}},
		{"RFC5424SYSLOG", `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event log entry...`,
			map[string]any{"priority": "165", "version": "1", "timestamp": "2003-10-11T22:14:15.003Z", "hostname": "mymachine.example.com",
				"appname": "evntslog", "procid": nil, "msgid": "ID47",
				"structureddata": `[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]`, "message": "An application event log entry..."}},
		{"RFC5424SYSLOG", "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xef\xbb\xbf'su root' failed for lonvick on /dev/pts/8",
			map[string]any{"priority": "34", "version": "1", "timestamp": "2003-10-11T22:14:15.003Z", "hostname": "mymachine.example.com",
				"appname": "su", "procid": nil, "msgid": "ID47", "structureddata": nil, "message": "'su root' failed for lonvick on /dev/pts/8"}},
		{"RFC5424SYSLOG", `<13>1 - - - - - -`,
			map[string]any{"priority": "13", "version": "1", "timestamp": nil, "hostname": nil, "appname": nil, "procid": nil,
				"msgid": nil, "structureddata": nil, "message": nil}},
	}
	for _, c := range cases {
		out, ok := runProcessor(t, []ProcessingOption{{OptionName: "LOGTOJSON", LogFormat: c.format}}, c.line+"\n")
		if !ok {
			t.Errorf("%s rejected %q", c.format, c.line)
			continue
		}
		if got := decodeJSON(t, out); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s %q\n got %v\nwant %v", c.format, c.line, got, c.want)
		}
	}
}

func TestLogFormatRejectsOtherLines(t *testing.T) {
	for _, f := range []string{"COMMONAPACHELOG", "COMBINEDAPACHELOG", "APACHEERRORLOG", "SYSLOG", "RFC3339SYSLOG", "RFC5424SYSLOG"} {
		if out, ok := runProcessor(t, []ProcessingOption{{OptionName: "LOGTOJSON", LogFormat: f}}, "not a log line at all\n"); ok {
			t.Errorf("%s accepted a random line: %q", f, out)
		}
	}
}

func TestLogFormatCustomPatternAndNames(t *testing.T) {
	out, ok := runProcessor(t, []ProcessingOption{{OptionName: "LOGTOJSON", LogFormat: "COMMONAPACHELOG",
		MatchPattern: `^([\w.]+) (\d+)ms$`, CustomFieldNames: []string{"op", "millis"}}}, "db.query 42ms\n")
	if !ok || !reflect.DeepEqual(decodeJSON(t, out), map[string]any{"op": "db.query", "millis": "42"}) {
		t.Errorf("custom pattern: %q %v", out, ok)
	}
	out, ok = runProcessor(t, []ProcessingOption{{OptionName: "LOGTOJSON", LogFormat: "SYSLOG",
		CustomFieldNames: []string{"ts", "host", "prog", "pid", "msg"}}}, "Mar  2 01:02:03 h p: m\n")
	if !ok || !reflect.DeepEqual(decodeJSON(t, out), map[string]any{"ts": "Mar  2 01:02:03", "host": "h", "prog": "p", "pid": nil, "msg": "m"}) {
		t.Errorf("renamed fields: %q %v", out, ok)
	}
}

func TestCSVToJSON(t *testing.T) {
	cases := []struct {
		delim, line string
		want        map[string]any
	}{
		{",", "a,b,c\n", map[string]any{"x": "a", "y": "b", "z": "c"}},
		{",", "a,b\n", map[string]any{"x": "a", "y": "b", "z": nil}},
		{",", "a,,c,d\n", map[string]any{"x": "a", "y": "", "z": "c"}},
		{",", "a,b,,\n", map[string]any{"x": "a", "y": "b", "z": nil}}, // Java's split drops trailing empties
		{`\t`, "1\t2\t3\n", map[string]any{"x": "1", "y": "2", "z": "3"}},
		{`\|`, "p|q|r\n", map[string]any{"x": "p", "y": "q", "z": "r"}},
		{`\s*;\s*`, "p ; q;r\n", map[string]any{"x": "p", "y": "q", "z": "r"}},
	}
	for _, c := range cases {
		out, ok := runProcessor(t, []ProcessingOption{{OptionName: "CSVTOJSON", Delimiter: c.delim, CustomFieldNames: []string{"x", "y", "z"}}}, c.line)
		if !ok || !reflect.DeepEqual(decodeJSON(t, out), c.want) {
			t.Errorf("delimiter %q line %q: %q", c.delim, c.line, out)
		}
	}
	out, _ := runProcessor(t, []ProcessingOption{{OptionName: "CSVTOJSON", CustomFieldNames: []string{"a", "b"}}}, "1,2\n")
	if out != `{"a":"1","b":"2"}`+"\n" {
		t.Errorf("compact output keeps field order: %q", out)
	}
	out, _ = runProcessor(t, []ProcessingOption{{OptionName: "CSVTOJSON", CustomFieldNames: []string{"a", "b"}, JSONFormat: "PRETTYPRINT"}}, "1,2\n")
	if out != "{\n  \"a\" : \"1\",\n  \"b\" : \"2\"\n}\n" {
		t.Errorf("pretty output: %q", out)
	}
}

func TestSingleLineAndChains(t *testing.T) {
	out, _ := runProcessor(t, []ProcessingOption{{OptionName: "SINGLELINE"}}, "Exception in main\n\tat a.b(C.java:1)\r\n  at d.e(F.java:2)\n")
	if out != "Exception in mainat a.b(C.java:1)at d.e(F.java:2)\n" {
		t.Errorf("SINGLELINE joins trimmed lines as the Amazon Kinesis Agent does: %q", out)
	}
	out, ok := runProcessor(t, []ProcessingOption{{OptionName: "SINGLELINE"}, {OptionName: "LOGTOJSON", LogFormat: "SYSLOG"}},
		"Mar 12 12:00:08 h prog[1]: first\n  second\n")
	if !ok || decodeJSON(t, out)["message"] != "firstsecond" {
		t.Errorf("chain: %q", out)
	}
	out, _ = runProcessor(t, []ProcessingOption{{OptionName: "ADDMETADATA", MetadataFields: json.RawMessage(`{"env":"prod","n":{"k":1}}`)}}, "hello \"world\"\n")
	if out != `{"metadata":{"env":"prod","n":{"k":1}},"data":"hello \"world\""}`+"\n" {
		t.Errorf("ADDMETADATA: %q", out)
	}
}

// TestInvalidUTF8 checks both halves of the choice: raw records keep every byte, and JSON
// records are valid JSON whose invalid bytes are \udcXX escapes.
func TestInvalidUTF8(t *testing.T) {
	line := "ok \xff\xfe caf\xc3\xa9 \xe2\x82 end\n"
	out, ok := runProcessor(t, []ProcessingOption{{OptionName: "CSVTOJSON", Delimiter: " ", CustomFieldNames: []string{"a", "b", "c", "d", "e"}}}, line)
	if !ok {
		t.Fatal("rejected")
	}
	if !json.Valid([]byte(out)) {
		t.Fatalf("not valid JSON: %q", out)
	}
	if !utf8.ValidString(out) {
		t.Errorf("JSON output is not valid UTF-8: %q", out)
	}
	want := `{"a":"ok","b":"\udcff\udcfe","c":"café","d":"\udce2\udc82","e":"end"}` + "\n"
	if out != want {
		t.Errorf("got  %q\nwant %q", out, want)
	}
	var js []byte
	js = appendJSONString(js, []byte("\x00\x1f\"\\\n\t\r\u2028"))
	if string(js) != `"\u0000\u001f\"\\\n\t\r`+"\u2028\"" {
		t.Errorf("escapes: %s", js)
	}
}

func TestTruncateRecord(t *testing.T) {
	data := []byte(strings.Repeat("a", 20) + "\n")
	got := truncateRecord(append([]byte(nil), data...), 10, "\n")
	if string(got) != "aaaaaaaaa\n" {
		t.Errorf("%q", got)
	}
	got = truncateRecord([]byte("aaaaaaa€€€\n"), 11, "<T>")
	if string(got) != "aaaaaaa<T>" || !utf8.Valid(got) {
		t.Errorf("a cut does not split a character: %q", got)
	}
	if got := truncateRecord([]byte("short\n"), 10, "\n"); string(got) != "short\n" {
		t.Errorf("short records are kept: %q", got)
	}
}

func TestPartitionKeys(t *testing.T) {
	data := []byte("the same line\n")
	// RANDOM: runs of randomKeyRun records share a random key; each run takes a new one.
	r := partitioner{opt: PartitionKeyRandom}
	seen := map[string]bool{}
	for run := range 1000 {
		first := r.key(data, nil)
		if first == "" || seen[first] {
			t.Fatalf("run %d: random key %q is empty or was used by an earlier run", run, first)
		}
		seen[first] = true
		for i := 1; i < randomKeyRun; i++ {
			if k := r.key(data, nil); k != first {
				t.Fatalf("run %d: record %d has key %q, want the run's key %q", run, i, k, first)
			}
		}
	}
	d := partitioner{opt: PartitionKeyDeterministic}
	sum := md5.Sum(data)
	if k := d.key(data, nil); k != hex.EncodeToString(sum[:]) || k != d.key(data, nil) {
		t.Errorf("deterministic key %q", k)
	}
	f := partitioner{opt: PartitionKeyField, field: "host"}
	fields := []field{{name: "ip", val: []byte("1")}, {name: "host", val: []byte("web-7")}}
	if k := f.key(data, fields); k != "web-7" {
		t.Errorf("field key %q", k)
	}
	if k := f.key(data, []field{{name: "host", null: true}}); k == "" {
		t.Error("a missing field falls back to a random key")
	}
	long := []byte(strings.Repeat("é", 300) + "\xff")
	if k := fieldKey(long); utf8.RuneCountInString(k) != MaxPartitionKeyLength || !utf8.ValidString(k) {
		t.Errorf("field keys are cut to Kinesis' limit: %d runes", utf8.RuneCountInString(k))
	}
}
