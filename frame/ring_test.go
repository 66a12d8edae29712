package frame

import "testing"

// TestRingCloseReleases: Close gives every item still queued to the release func, in
// order, and a Push refused after Close leaves the item with the caller.
func TestRingCloseReleases(t *testing.T) {
	var released []int
	r := NewRing(8, func(x int) { released = append(released, x) })
	for i := range 5 {
		r.Push(i)
	}
	out := make([]int, 2)
	if n := r.TryPop(out); n != 2 || out[0] != 0 || out[1] != 1 {
		t.Fatalf("TryPop = %d %v, want 0, 1", n, out[:n])
	}
	r.Close()
	r.Close()
	if r.Push(9) || len(released) != 3 || released[0] != 2 || released[2] != 4 {
		t.Fatalf("after Close: released %v, want [2 3 4] (and Push refused)", released)
	}
}
