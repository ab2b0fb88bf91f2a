//go:build !race

package peers

// raceEnabled reports whether the tests run under the race detector.
const raceEnabled = false
