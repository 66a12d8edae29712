package testwait

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeT records a Fatalf and stops the goroutine as testing.T does.
type fakeT struct {
	testing.TB
	msg string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls fn with a fakeT on its own goroutine and returns the fatal message ("" if
// fn returned normally).
func run(fn func(t testing.TB)) string {
	f := &fakeT{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.msg
}

func TestUntil(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 5 {
			time.Sleep(2 * time.Millisecond)
			n.Add(1)
		}
	}()
	if !Until(5*time.Second, func() bool { return n.Load() == 5 }) {
		t.Fatalf("Until = false, want true (n = %d)", n.Load())
	}
	calls := 0
	start := time.Now()
	if Until(30*time.Millisecond, func() bool { calls++; return false }) {
		t.Fatal("Until(never) = true")
	}
	if el := time.Since(start); el < 30*time.Millisecond || el > 5*time.Second {
		t.Errorf("Until(never, 30ms) took %v", el)
	}
	if calls < 2 {
		t.Errorf("Until(never, 30ms) called cond %d times, want at least 2", calls)
	}
	calls = 0
	if !Until(0, func() bool { calls++; return true }) || calls != 1 {
		t.Errorf("Until(0, true) called cond %d times, want 1 and true", calls)
	}
}

func TestEventually(t *testing.T) {
	var n atomic.Int32
	go func() { time.Sleep(5 * time.Millisecond); n.Store(1) }()
	if msg := run(func(t testing.TB) { Eventually(t, 5*time.Second, func() bool { return n.Load() == 1 }, "n") }); msg != "" {
		t.Errorf("Eventually(true later) failed: %s", msg)
	}
	msg := run(func(t testing.TB) {
		Eventually(t, 10*time.Millisecond, func() bool { return false }, "port %s", "tap0")
	})
	if want := "timed out after 10ms waiting for port tap0"; msg != want {
		t.Errorf("Eventually(never) = %q, want %q", msg, want)
	}
}

func TestEventuallyNoError(t *testing.T) {
	i := 0
	if msg := run(func(t testing.TB) {
		EventuallyNoError(t, 5*time.Second, func() error {
			if i++; i < 3 {
				return errors.New("not yet")
			}
			return nil
		}, "three")
	}); msg != "" || i != 3 {
		t.Errorf("EventuallyNoError: msg %q after %d calls, want none after 3", msg, i)
	}
	i = 0
	msg := run(func(t testing.TB) {
		EventuallyNoError(t, 10*time.Millisecond, func() error { i++; return fmt.Errorf("try %d", i) }, "dial")
	})
	if want := fmt.Sprintf("timed out after 10ms waiting for dial: last error: try %d", i); msg != want {
		t.Errorf("EventuallyNoError(never) = %q, want %q", msg, want)
	}
}

func TestValue(t *testing.T) {
	i := 0
	var got int
	if msg := run(func(t testing.TB) {
		got = Value(t, 5*time.Second, func() (int, bool) { i++; return i * 10, i == 4 }, "four")
	}); msg != "" || got != 40 {
		t.Errorf("Value = %d (msg %q), want 40", got, msg)
	}
	type st struct{ Ports int }
	msg := run(func(t testing.TB) {
		Value(t, 10*time.Millisecond, func() (st, bool) { return st{Ports: 2}, false }, "ports")
	})
	if !strings.HasSuffix(msg, "waiting for ports: last: {Ports:2}") {
		t.Errorf("Value(never) = %q, want the last value", msg)
	}
}
