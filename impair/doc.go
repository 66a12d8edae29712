// Package impair provides link impairment as a frame.Port decorator: per direction,
// delay with jitter (uniform or normal, correlated), random and Gilbert-Elliott loss,
// a rate limit with netem-style serialization time and a bounded queue, reordering,
// duplication and corruption, all drawn from a seeded generator so a run repeats
// exactly.
//
// A Port wraps another port at attach time with no impairment (frames pass straight
// through) and takes new parameters at any time (Set), so shaping a running link does
// not re-attach it. Frames that must wait sit in a time-ordered queue (a heap) that
// one goroutine per direction releases when they fall due; that goroutine runs only
// while frames wait, and nothing sleeps in a caller's ReadFrames or WriteFrames.
//
// Directions are seen from the wrapped port: Out is what the switch (or a pass-through
// peer) writes to it, In is what is read from it.
package impair
