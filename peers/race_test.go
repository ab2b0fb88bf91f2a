//go:build race

package peers

// raceEnabled reports whether the tests run under the race detector, which makes 100
// in-process members too slow for the shared CI cores.
const raceEnabled = true
