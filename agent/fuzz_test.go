package agent

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseConfig feeds arbitrary agent.json files to the parser: it must not panic, and
// every problem it reports must name where it is.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(kinesisAgentJSON))
	f.Add([]byte(`{"flows": [{"filePattern": "/a/*.log", "kinesisStream": "s"}]}`))
	f.Add([]byte(`{"flows": [{"filePattern": "", "skipHeaderLines": "x", "dataProcessingOptions": [{"optionName": "LOGTOJSON", "matchPattern": "(a"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.Contains(line, ": ") {
					t.Fatalf("problem without a location: %q", line)
				}
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("parsed configuration does not validate: %v", err)
		}
		for _, fl := range cfg.Flows {
			if _, err := newProcessor(fl.DataProcessingOptions); err != nil {
				t.Fatalf("validated options do not build: %v", err)
			}
		}
	})
}

// fuzzLogFormat checks one log format on arbitrary lines: no panic, and a line it accepts
// becomes one valid JSON object with the format's fields, ending in a newline.
func fuzzLogFormat(f *testing.F, format string, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	p, err := newProcessor([]ProcessingOption{{OptionName: "LOGTOJSON", LogFormat: format, JSONFormat: "COMPACT"}})
	if err != nil {
		f.Fatal(err)
	}
	want := len(logFormats[format].fields)
	f.Fuzz(func(t *testing.T, line []byte) {
		out, ok := p.run(line)
		if !ok {
			return
		}
		if !bytes.HasSuffix(out, []byte("\n")) || !json.Valid(out) {
			t.Fatalf("invalid output %q for %q", out, line)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil || len(m) != want {
			t.Fatalf("%d fields, want %d: %q", len(m), want, out)
		}
	})
}

func FuzzCommonApacheLog(f *testing.F) {
	fuzzLogFormat(f, "COMMONAPACHELOG", `127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326`)
}

func FuzzCombinedApacheLog(f *testing.F) {
	fuzzLogFormat(f, "COMBINEDAPACHELOG", `192.168.1.20 - - [28/Jul/2006:10:27:10 -0300] "GET /cgi-bin/try/ HTTP/1.0" 200 3395 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"`)
}

func FuzzApacheErrorLog(f *testing.F) {
	fuzzLogFormat(f, "APACHEERRORLOG", `[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187] File does not exist: /usr/local/apache2/htdocs/favicon.ico`)
}

func FuzzSyslog(f *testing.F) {
	fuzzLogFormat(f, "SYSLOG", `Mar 12 12:00:08 server2 rcd[308]: Loaded 12 packages`, `<34>Oct 11 22:14:15 mymachine su: 'su root' failed`)
}

func FuzzRFC3339Syslog(f *testing.F) {
	fuzzLogFormat(f, "RFC3339SYSLOG", `2024-03-12T12:00:08.123456+01:00 web-1 sshd[4242]: Accepted publickey for deploy`)
}

func FuzzRFC5424Syslog(f *testing.F) {
	fuzzLogFormat(f, "RFC5424SYSLOG", `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event log entry...`)
}

// FuzzCSVToJSON checks CSVTOJSON with a regular-expression delimiter on arbitrary lines.
func FuzzCSVToJSON(f *testing.F) {
	f.Add([]byte("a,b,,c\n"))
	f.Add([]byte("x\xff\t\"y\"\n"))
	p, err := newProcessor([]ProcessingOption{{OptionName: "CSVTOJSON", Delimiter: `[,\t]`, CustomFieldNames: []string{"a", "b", "c"}, JSONFormat: "COMPACT"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		out, ok := p.run(line)
		if !ok || !json.Valid(out) {
			t.Fatalf("invalid output %q for %q", out, line)
		}
	})
}

// FuzzGlob: any pattern either fails to compile or matches without panicking, and a pattern
// with no wildcard matches exactly its own path.
func FuzzGlob(f *testing.F) {
	for _, s := range []string{"/var/log/{access,error}.log*", "/a/**/b/[!x]?.log", `/a/\{b\}`, "/a/{b,c", "/a/[", "/a/{,}"} {
		f.Add(s, "/var/log/access.log")
	}
	f.Fuzz(func(t *testing.T, pattern, path string) {
		g, err := compileGlob(pattern)
		if err != nil {
			return
		}
		g.match(filepath.Clean("/" + path))
		if !strings.ContainsAny(pattern, globMeta) && filepath.Clean(pattern) == pattern && !g.match(pattern) {
			t.Errorf("%q does not match itself", pattern)
		}
	})
}
