//go:build race

package main

// raceEnabled makes the end-to-end tests build the daemon with -race too: the build reuses the
// packages compiled for the tests, and the daemon's own goroutines run under the detector.
const raceEnabled = true
