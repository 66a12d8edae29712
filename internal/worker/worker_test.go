package worker

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vnetd/vnetd/internal/testwait"
)

// TestLazy: Kicks start one run at a time; it handles every item queued, exits once
// idle for the linger time, starts again on the next Kick, and Stop waits for it and
// keeps new ones from starting.
func TestLazy(t *testing.T) {
	var (
		mu      sync.Mutex
		queue   int
		handled atomic.Int64
		runs    atomic.Int64
		active  atomic.Int64
		done    = make(chan struct{})
	)
	var l *Lazy
	l = New(func() {
		runs.Add(1)
		if active.Add(1) != 1 {
			t.Error("two runs at once")
		}
		defer active.Add(-1)
		pending := func() bool { mu.Lock(); defer mu.Unlock(); return queue > 0 }
		for {
			mu.Lock()
			n := queue
			queue = 0
			mu.Unlock()
			if n > 0 {
				handled.Add(int64(n))
				continue
			}
			if !l.Idle(20*time.Millisecond, done, pending) {
				return
			}
		}
	})
	put := func() { mu.Lock(); queue++; mu.Unlock(); l.Kick() }

	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				put()
			}
		}()
	}
	wg.Wait()
	testwait.Eventually(t, 5*time.Second, func() bool { return handled.Load() == 8000 }, "every item handled")
	testwait.Eventually(t, 5*time.Second, func() bool { return !l.Running() }, "the run exits once idle")
	before := runs.Load()
	put()
	testwait.Eventually(t, 5*time.Second, func() bool { return handled.Load() == 8001 }, "an item after the exit handled")
	if runs.Load() != before+1 {
		t.Errorf("runs = %d after a Kick on an idle Lazy, want %d", runs.Load(), before+1)
	}
	close(done) // the run returns at once
	l.Stop()
	if l.Running() && active.Load() != 0 {
		t.Error("Stop returned while a run was active")
	}
	stopped := runs.Load()
	put()
	time.Sleep(50 * time.Millisecond)
	if runs.Load() != stopped {
		t.Error("a Kick after Stop started a run")
	}
}
