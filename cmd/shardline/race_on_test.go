//go:build race

package main

// raceEnabled tells TestBinary to build with -race too, so that the build reuses the packages
// compiled for the test instead of compiling every dependency a second time.
const raceEnabled = true
