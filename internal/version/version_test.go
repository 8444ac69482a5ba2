package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersionFallbacks checks the order in which the version is taken: the stamp, the module
// version, the VCS revision, and "devel" when there is nothing else.
func TestVersionFallbacks(t *testing.T) {
	orig := readBuildInfo
	t.Cleanup(func() { readBuildInfo, stamp = orig, "" })
	info := func(bi *debug.BuildInfo, ok bool) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) { return bi, ok }
	}
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}
	cases := []struct {
		name  string
		stamp string
		info  func() (*debug.BuildInfo, bool)
		want  string
	}{
		{"stamped", "v1.2.3-4-gabcdef0", info(&debug.BuildInfo{Main: debug.Module{Version: "v9.9.9"}}, true), "v1.2.3-4-gabcdef0"},
		{"go install at a version", "", info(&debug.BuildInfo{Main: debug.Module{Version: "v0.5.0"}}, true), "v0.5.0"},
		{"checkout with VCS information", "", info(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs}, true), "devel+0123456789ab-dirty"},
		{"clean checkout", "", info(&debug.BuildInfo{Settings: vcs[:1]}, true), "devel+0123456789ab"},
		{"nothing recorded", "", info(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true), "devel"},
		{"no build information", "", info(nil, false), "devel"},
	}
	for _, c := range cases {
		stamp, readBuildInfo = c.stamp, c.info
		if got := Version(); got != c.want {
			t.Errorf("%s: Version() = %q, want %q", c.name, got, c.want)
		}
	}
	stamp = "v1.0.0"
	want := "shardline v1.0.0 (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")"
	if got := Line("shardline"); got != want || strings.Count(got, "v1.0.0") != 1 {
		t.Errorf("Line = %q, want %q", got, want)
	}
}
