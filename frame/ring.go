package frame

import (
	"net"
	"sync"
)

// Ring is a bounded FIFO of owned items (pooled buffers, packets) with a blocking,
// batch-shaped consumer side. Producers never block: Push fails when the ring is full or
// closed. It is the hand-off between a port's writer and its reader (rule 1 of the data
// path: never deliver synchronously into another stack).
//
// Each queued item holds something that must be given back: the ring's release func
// does that for items still queued when the ring closes. Items popped are the caller's
// to release; items a Push refused stay the caller's.
//
// The ring starts empty and doubles as needed up to its capacity, so the thousands of
// rings of idle namespace NICs cost a few bytes each instead of capacity slots.
type Ring[T any] struct {
	mu      sync.Mutex
	ring    []T  // guarded by mu; grows up to max
	max     int  // capacity
	head    int  // guarded by mu
	n       int  // guarded by mu
	closed  bool // guarded by mu
	release func(T)
	// cost, when set (SetCostLimit), weighs each item; the items queued may weigh at
	// most maxCost together (one item is always taken into an empty ring).
	cost    func(T) int
	maxCost int
	used    int // guarded by mu: the queued items' cost

	ready chan struct{} // capacity 1: "the ring may be non-empty"
	done  chan struct{} // closed by Close
}

// NewRing returns a ring holding at most capacity items; Close gives the items still
// queued to release.
func NewRing[T any](capacity int, release func(T)) *Ring[T] {
	r := &Ring[T]{}
	r.init(capacity, release)
	return r
}

func (r *Ring[T]) init(capacity int, release func(T)) {
	r.max = max(capacity, 1)
	r.release = release
	r.ready = make(chan struct{}, 1)
	r.done = make(chan struct{})
}

// SetCostLimit bounds the ring by weight as well as by count: the items queued may
// cost at most limit together, each weighed by cost (a buffer's size, so that a queue
// is bounded in memory whatever its frames' sizes); an empty ring always takes one
// item. Call it before the ring is used.
func (r *Ring[T]) SetCostLimit(limit int, cost func(T) int) {
	r.maxCost, r.cost = limit, cost
}

// fits reports whether x may join the queued items (count and cost), and adds its
// cost if so. Called with mu held.
func (r *Ring[T]) fits(x T) bool {
	if r.n == r.max {
		return false
	}
	if r.cost != nil {
		c := r.cost(x)
		if r.n > 0 && r.used+c > r.maxCost {
			return false
		}
		r.used += c
	}
	return true
}

// Push appends x and reports true, or reports false when the ring is full or closed,
// in which case the caller still owns x.
func (r *Ring[T]) Push(x T) bool {
	r.mu.Lock()
	if r.closed || !r.fits(x) {
		r.mu.Unlock()
		return false
	}
	if r.n == len(r.ring) {
		r.grow(r.n + 1)
	}
	r.ring[(r.head+r.n)%len(r.ring)] = x
	r.n++
	wake := r.n == 1 // a consumer can only be waiting on an empty ring
	r.mu.Unlock()
	if wake {
		r.signal()
	}
	return true
}

// PushBatch appends as many of xs as fit, in order, and returns how many it took; the
// caller still owns xs[n:].
func (r *Ring[T]) PushBatch(xs []T) int {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return 0
	}
	k := min(len(xs), r.max-r.n)
	if r.n+k > len(r.ring) {
		r.grow(r.n + k)
	}
	wake := r.n == 0 && k > 0
	for i := 0; i < k; i++ {
		if !r.fits(xs[i]) {
			k = i
			break
		}
		r.ring[(r.head+r.n)%len(r.ring)] = xs[i]
		r.n++
	}
	r.mu.Unlock()
	if wake {
		r.signal()
	}
	return k
}

func (r *Ring[T]) signal() {
	select {
	case r.ready <- struct{}{}:
	default:
	}
}

// Pop blocks until the ring holds at least one item, then moves up to len(out) of them
// into out and returns how many. After Close it returns (0, net.ErrClosed).
func (r *Ring[T]) Pop(out []T) (int, error) {
	for {
		r.mu.Lock()
		if r.n > 0 {
			k := r.take(out)
			r.mu.Unlock()
			return k, nil
		}
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return 0, net.ErrClosed
		}
		select {
		case <-r.ready:
		case <-r.done:
		}
	}
}

// TryPop is Pop without blocking: it returns 0 when the ring is empty.
func (r *Ring[T]) TryPop(out []T) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.take(out)
}

// take moves up to len(out) items into out. Called with mu held.
func (r *Ring[T]) take(out []T) int {
	var zero T
	k := min(r.n, len(out))
	for i := 0; i < k; i++ {
		out[i] = r.ring[r.head]
		if r.cost != nil {
			r.used -= r.cost(out[i])
		}
		r.ring[r.head] = zero
		r.head = (r.head + 1) % len(r.ring)
	}
	r.n -= k
	return k
}

// Len returns the number of queued items.
func (r *Ring[T]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Close wakes every blocked Pop and makes further Pushes fail. Items still queued are
// released. Close is idempotent.
func (r *Ring[T]) Close() {
	var zero T
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	for r.n > 0 {
		r.release(r.ring[r.head])
		r.ring[r.head] = zero
		r.head = (r.head + 1) % len(r.ring)
		r.n--
	}
	r.used = 0
	r.mu.Unlock()
	close(r.done)
}

// Done returns a channel that is closed when the ring is.
func (r *Ring[T]) Done() <-chan struct{} { return r.done }

// minRing is the ring size a ring starts with on its first push.
const minRing = 16

// grow enlarges the ring to hold at least need items (need <= r.max), keeping their
// order. Called with mu held.
func (r *Ring[T]) grow(need int) {
	size := max(len(r.ring)*2, minRing)
	for size < need {
		size *= 2
	}
	ring := make([]T, min(size, r.max))
	for i := 0; i < r.n; i++ {
		ring[i] = r.ring[(r.head+i)%len(r.ring)]
	}
	r.ring, r.head = ring, 0
}
