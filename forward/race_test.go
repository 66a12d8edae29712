//go:build race

package forward

// raceEnabled: the race detector multiplies memory use, so the flood test only
// logs its RSS growth under it instead of holding it to the target.
const raceEnabled = true
