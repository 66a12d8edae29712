// Package testwait waits, in tests, for a condition that another goroutine makes
// true: a counter reaching a value, a port going away, a server answering. It
// replaces hand-rolled `for deadline := ...; time.Sleep(...)` loops and bare sleeps
// before asserts with one poll that fails the test with what it waited for.
package testwait

import (
	"fmt"
	"testing"
	"time"
)

// The poll interval starts at minPoll and grows by a quarter each time up to maxPoll,
// so a wait overshoots the moment its condition turns true by at most a quarter of
// its length (or maxPoll), and a slow condition costs few calls. Tests that wait in
// a loop (every few hundred frames of a flood) depend on the small overshoot.
const (
	minPoll = time.Millisecond
	maxPoll = 20 * time.Millisecond
)

// Until polls cond until it returns true or timeout passes and reports whether it
// became true. cond is called at least once. For callers that must not stop the
// test (another goroutine, or a check followed by more checks).
func Until(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for poll := minPoll; ; poll = min(poll+poll/4, maxPoll) {
		if cond() {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(min(poll, time.Until(deadline))) // the last check falls on the deadline
	}
}

// Eventually polls cond until it returns true; when timeout passes first it fails
// the test (t.Fatalf) with "timed out after TIMEOUT waiting for " and the message
// format and args make. Call it from the test's goroutine.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if !Until(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, fmt.Sprintf(format, args...))
	}
}

// EventuallyNoError polls f until it returns nil; when timeout passes first it fails
// the test with the message and f's last error.
func EventuallyNoError(t testing.TB, timeout time.Duration, f func() error, format string, args ...any) {
	t.Helper()
	var err error
	if !Until(timeout, func() bool { err = f(); return err == nil }) {
		t.Fatalf("timed out after %v waiting for %s: last error: %v", timeout, fmt.Sprintf(format, args...), err)
	}
}

// Value polls f until its second result is true and returns its first; when timeout
// passes first it fails the test with the message and f's last value (%+v).
func Value[T any](t testing.TB, timeout time.Duration, f func() (T, bool), format string, args ...any) T {
	t.Helper()
	var v T
	if !Until(timeout, func() bool { var ok bool; v, ok = f(); return ok }) {
		t.Fatalf("timed out after %v waiting for %s: last: %+v", timeout, fmt.Sprintf(format, args...), v)
	}
	return v
}
