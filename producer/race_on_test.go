//go:build race

package producer

// raceEnabled lets allocation checks step aside: under the race detector sync.Pool drops
// items at random, which allocates where a normal build does not.
const raceEnabled = true
