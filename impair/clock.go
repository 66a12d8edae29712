package impair

import (
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Clock is the time source of a Port. Tests pass their own.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Wait blocks for about d, or less when wake is signalled.
	Wait(d time.Duration, wake <-chan struct{})
}

// SystemClock is the real clock.
type SystemClock struct{}

// Go's timers wake up to a millisecond late on Linux (the runtime's netpoller sleeps
// in whole milliseconds): a frame delayed 10 ms came out 0.6 ms late in the median.
// So a wait longer than coarse sleeps on a timer until fine before the deadline, and
// the rest in nanosleep(2) slices of at most fine/8: those block one thread, with no
// spinning, and (with the thread's timer slack at 1 ns) come back a few µs late.
const (
	coarse = 2 * time.Millisecond
	fine   = 1500 * time.Microsecond
)

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// Wait implements Clock.
func (SystemClock) Wait(d time.Duration, wake <-chan struct{}) {
	if d <= 0 {
		return
	}
	if d > coarse {
		t := time.NewTimer(d - fine)
		select {
		case <-t.C:
		case <-wake:
			t.Stop()
		}
		return
	}
	ts := syscall.NsecToTimespec(int64(min(d, fine/8)))
	// The kernel's timer slack (50 µs by default) made every slice about 60 µs late,
	// 120 µs in the median on an idle host. The slack is per thread: this goroutine
	// keeps its thread for the sleep and asks for 1 ns on it (one prctl; the thread
	// keeps it afterwards, which only makes its later sleeps more exact).
	runtime.LockOSThread()
	unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	syscall.Nanosleep(&ts, nil)
	runtime.UnlockOSThread()
}
