// Package worker provides Lazy: a goroutine that runs only while there is work. The
// first Kick starts it; once it has found no work for a linger time it exits, and the
// next Kick starts another. Idle, it costs nothing, which is what thousands of idle
// namespace NICs and switch ports need; busy, it stays, since starting a goroutine per
// burst would cost more (a fresh goroutine's small stack grows several times on a deep
// path such as gVisor's receive).
package worker

import (
	"sync"
	"sync/atomic"
	"time"
)

// Lazy runs one goroutine at a time, on demand. Use New.
type Lazy struct {
	run     func()
	running atomic.Bool
	wake    chan struct{} // capacity 1: "there may be work", for a waiting run
	timer   *time.Timer   // the run's linger timer; one run at a time uses it

	mu      sync.Mutex // orders Kick's wg.Add before Stop's wg.Wait
	stopped bool       // guarded by mu: start no more runs
	wg      sync.WaitGroup
}

// New returns a Lazy with no goroutine running. run loops over the work and calls Idle
// when it finds none.
func New(run func()) *Lazy { return &Lazy{run: run, wake: make(chan struct{}, 1)} }

// Kick makes sure a run sees the work just made available: it starts one on a new
// goroutine, or wakes the one that runs.
func (l *Lazy) Kick() {
	if !l.running.Load() {
		l.mu.Lock()
		started := !l.stopped && l.running.CompareAndSwap(false, true)
		if started {
			l.wg.Add(1)
			go l.start()
		}
		l.mu.Unlock()
		if started {
			return
		}
	}
	select {
	case l.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

func (l *Lazy) start() {
	defer l.wg.Done()
	l.run()
}

// Idle is what a run calls when it found no work. It waits up to linger for a Kick
// and reports whether the run should look for work again; false means return: linger
// passed with no work, or done was closed. A Kick that came just as the run was giving
// up (and so started nobody) is caught by pending, which reports whether work is
// waiting.
func (l *Lazy) Idle(linger time.Duration, done <-chan struct{}, pending func() bool) bool {
	if l.timer == nil {
		l.timer = time.NewTimer(linger)
	} else {
		l.timer.Reset(linger)
	}
	select {
	case <-l.wake:
		l.timer.Stop()
		return true
	case <-done:
		l.timer.Stop()
		return false
	case <-l.timer.C:
	}
	l.running.Store(false)
	return pending() && l.running.CompareAndSwap(false, true)
}

// Stop makes sure no run starts from now on and waits for the one that runs, if any
// (it returns once its work's done channel, given to Idle, is closed).
func (l *Lazy) Stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	l.wg.Wait()
}

// Running reports whether a run is running.
func (l *Lazy) Running() bool { return l.running.Load() }
