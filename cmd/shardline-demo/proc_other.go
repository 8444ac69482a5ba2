//go:build !linux

package main

import "os/exec"

// detach leaves the agent in the demo's process group on systems other than Linux: a Ctrl-C
// reaches both, and the agent stops on its own.
func detach(*exec.Cmd) {}
