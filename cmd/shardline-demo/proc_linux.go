package main

import (
	"os/exec"
	"syscall"
)

// detach puts the agent in its own process group, so that a Ctrl-C meant for the demo does not
// reach it: the demo stops it itself, once, and a second signal would make it exit without
// delivering what it holds. Should the demo die without stopping it, the kernel sends it
// SIGTERM.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
