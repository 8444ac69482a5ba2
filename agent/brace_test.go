package agent

import (
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestBracePatterns: the Amazon Kinesis Agent matches filePattern with Java's "glob:" path
// matcher (SourceFile), where {a,b} matches either subpattern, so users write patterns such as
// /var/log/httpd/{access,error}.log*.
func TestBracePatterns(t *testing.T) {
	cases := []struct {
		pattern, path string
		want          bool
	}{
		{"/var/log/{access,error}.log*", "/var/log/access.log", true},
		{"/var/log/{access,error}.log*", "/var/log/error.log.1", true},
		{"/var/log/{access,error}.log*", "/var/log/other.log", false},
		{"/var/log/{app,web}/*.log", "/var/log/web/x.log", true},
		{"/var/log/{app,web}/*.log", "/var/log/db/x.log", false},
		{"/var/log/{a*,b?}.log", "/var/log/b1.log", true},
		{"/var/log/{a*,b?}.log", "/var/log/b12.log", false},
		{"/var/log/[!ab].log", "/var/log/c.log", true},
		{`/var/log/\{x\}.log`, "/var/log/{x}.log", true},
	}
	for _, c := range cases {
		g, err := compileGlob(c.pattern)
		if err != nil {
			t.Fatalf("%s: %v", c.pattern, err)
		}
		if got := g.match(c.path); got != c.want {
			t.Errorf("%s matching %s: %v", c.pattern, c.path, got)
		}
	}
	if _, err := compileGlob("/var/log/{a,b.log"); err == nil {
		t.Error("an unclosed brace compiled")
	}

	dir := t.TempDir()
	for _, n := range []string{"access.log", "access.log.1", "error.log", "debug.log"} {
		appendFile(t, filepath.Join(dir, n), strings.TrimSuffix(n, ".log")+" line\n")
	}
	cfg := testConfig(t, filepath.Join(dir, "{access,error}.log*"))
	sink := keepingSink()
	_, stop := running(t, cfg, sink)
	eventually(t, 5*time.Second, "the matched files", hasAll(sink, "access line\n", "access.log.1 line\n", "error line\n"))
	time.Sleep(2 * cfg.Flows[0].RescanInterval)
	stop()
	got := sink.data()
	sort.Strings(got)
	if len(got) != 3 {
		t.Errorf("records %q", got)
	}
}

// TestPatternMatchingNothingIsWarnedAbout: a flow whose pattern matches no file ships nothing;
// after a while a warning says so, once, and a note follows when files appear.
func TestPatternMatchingNothingIsWarnedAbout(t *testing.T) {
	defer func(d time.Duration) { noMatchWarning = d }(noMatchWarning)
	noMatchWarning = 300 * time.Millisecond
	dir := t.TempDir()
	cfg := testConfig(t, filepath.Join(dir, "{acces,eror}.log"))
	h := &recordingHandler{}
	cfg.Logger = slog.New(h)
	sink := keepingSink()
	_, stop := running(t, cfg, sink)
	eventually(t, 5*time.Second, "the warning", func() bool { return h.count("filePattern matches no file") > 0 })
	time.Sleep(5 * cfg.Flows[0].RescanInterval)
	if n := h.count("filePattern matches no file"); n != 1 {
		t.Errorf("warned %d times, want once", n)
	}
	appendFile(t, filepath.Join(dir, "acces.log"), "x\n")
	eventually(t, 5*time.Second, "the note", func() bool { return h.count("filePattern matches files again") == 1 })
	stop()
}
