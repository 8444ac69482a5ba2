// Package version holds the one version string that every Shardline binary reports.
//
// Release builds stamp it at link time from `git describe --tags --always --dirty`; the
// Makefile's build, install and release targets do this:
//
//	go build -ldflags "-X github.com/shardline/shardline/internal/version.stamp=v0.4.0" ./cmd/...
//
// A build that was not stamped falls back to what the Go toolchain recorded in the binary: the
// module version for `go install github.com/shardline/shardline/cmd/shardline@v0.4.0`, or
// "devel" with the VCS revision for a plain `go build` in a checkout.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// stamp is set by the linker (-X); it stays empty in an unstamped build.
var stamp string

// readBuildInfo is debug.ReadBuildInfo, replaced in tests.
var readBuildInfo = debug.ReadBuildInfo

// Version returns the version of the running binary: the stamped one, else the module version
// from the build information, else "devel", followed by "+" and the first 12 digits of the
// VCS revision (and "-dirty" for a modified tree) when the build information has them.
func Version() string {
	if stamp != "" {
		return stamp
	}
	bi, ok := readBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	v := "devel+" + rev[:min(len(rev), 12)]
	if dirty {
		v += "-dirty"
	}
	return v
}

// Line is what a binary prints for its version flag: the program's name, the version, and the
// Go release and platform it was built for, e.g. "shardline v0.4.0 (go1.26.0, linux/amd64)".
func Line(program string) string {
	return fmt.Sprintf("%s %s (%s, %s/%s)", program, Version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
