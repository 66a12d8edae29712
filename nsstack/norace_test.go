//go:build !race

package nsstack

const raceEnabled = false
