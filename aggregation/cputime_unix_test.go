//go:build unix

package aggregation

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time the process has used. Benchmarks report it
// beside wall time because on a shared machine wall time also counts the
// time spent waiting for a CPU, which skews the comparison with the floor.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
