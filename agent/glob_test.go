package agent

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		pattern, path string
		want          bool
	}{
		{"/var/log/app.log*", "/var/log/app.log", true},
		{"/var/log/app.log*", "/var/log/app.log.1", true},
		{"/var/log/app.log*", "/var/log/other.log", false},
		{"/var/log/?.log", "/var/log/a.log", true},
		{"/var/log/?.log", "/var/log/ab.log", false},
		{"/var/log/[ab].log", "/var/log/b.log", true},
		{"/var/log/[!ab].log", "/var/log/b.log", false},
		{"/var/log/[!ab].log", "/var/log/c.log", true},
		{"/var/log/*/app.log", "/var/log/x/app.log", true},
		{"/var/log/*/app.log", "/var/log/x/y/app.log", false},
		{"/var/log/**/app.log", "/var/log/app.log", true},
		{"/var/log/**/app.log", "/var/log/x/y/app.log", true},
		{"/var/log/**", "/var/log/x/y/z.log", true},
		{"/var/log/*.log", "/var/log/sub/a.log", false},
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
	for _, bad := range []string{"relative/*.log", "/var/log/[", "/var/a**b/x", "/**"} {
		if _, err := compileGlob(bad); err == nil {
			t.Errorf("%s compiled", bad)
		}
	}
}

func TestGlobWalk(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a.log", "b.txt", "x/c.log", "x/y/d.log", "z/e.log"} {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, nil, 0o644)
	}
	os.Mkdir(filepath.Join(dir, "dir.log"), 0o755)
	walk := func(pattern string) []string {
		g, err := compileGlob(filepath.Join(dir, pattern))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		if _, err := g.walk(func(p string) { got = append(got, p[len(dir)+1:]) }); err != nil {
			t.Fatal(err)
		}
		sort.Strings(got)
		return got
	}
	cases := map[string][]string{
		"*.log":         {"a.log", "dir.log"}, // the directory is matched; the scanner reports and skips it
		"**/*.log":      {"a.log", "dir.log", "x/c.log", "x/y/d.log", "z/e.log"},
		"*/*.log":       {"x/c.log", "z/e.log"},
		"x/**":          {"x/c.log", "x/y/d.log"},
		"missing/*.log": nil,
	}
	for pattern, want := range cases {
		if got := walk(pattern); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", pattern, got, want)
		}
	}
}
