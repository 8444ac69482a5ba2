//go:build race

package agent

// raceEnabled lets allocation checks step aside: under the race detector sync.Pool drops
// items on purpose, which allocates.
const raceEnabled = true
