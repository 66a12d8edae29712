//go:build race

package nsstack

// raceEnabled: the race detector slows nsstack about tenfold, so the 1,000-namespace
// tests run with 200 under it (the per-namespace bounds are the same).
const raceEnabled = true
