package frame

import (
	"net"
	"sync"
)

// Queue is a bounded FIFO of pooled buffers with a blocking, batch-shaped consumer side.
// Producers never block: Push fails when the queue is full or closed. It is the hand-off
// between a port's writer and its reader (rule 1 of the data path: never deliver
// synchronously into another stack).
//
// The ring starts small and doubles as needed up to its capacity, so the thousands of
// queues of idle namespace NICs cost a few bytes each instead of capacity slots.
type Queue struct {
	mu     sync.Mutex
	ring   []*Buf // guarded by mu; grows up to max
	max    int    // capacity
	head   int    // guarded by mu
	n      int    // guarded by mu
	closed bool   // guarded by mu

	ready chan struct{} // capacity 1: "the queue may be non-empty"
	done  chan struct{} // closed by Close
}

// NewQueue returns a queue holding at most capacity buffers.
func NewQueue(capacity int) *Queue {
	if capacity < 1 {
		capacity = 1
	}
	return &Queue{
		max:   capacity,
		ready: make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
}

// Push appends b and reports true, or reports false when the queue is full or closed,
// in which case the caller still owns b.
func (q *Queue) Push(b *Buf) bool {
	q.mu.Lock()
	if q.closed || q.n == q.max {
		q.mu.Unlock()
		return false
	}
	if q.n == len(q.ring) {
		q.grow(q.n + 1)
	}
	q.ring[(q.head+q.n)%len(q.ring)] = b
	q.n++
	wake := q.n == 1 // a consumer can only be waiting on an empty queue
	q.mu.Unlock()
	if wake {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return true
}

// Pop blocks until the queue holds at least one buffer, then moves up to len(out) of
// them into out and returns how many. After Close it returns (0, net.ErrClosed).
func (q *Queue) Pop(out []*Buf) (int, error) {
	for {
		q.mu.Lock()
		if q.n > 0 {
			k := min(q.n, len(out))
			for i := 0; i < k; i++ {
				out[i] = q.ring[q.head]
				q.ring[q.head] = nil
				q.head = (q.head + 1) % len(q.ring)
			}
			q.n -= k
			q.mu.Unlock()
			return k, nil
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return 0, net.ErrClosed
		}
		select {
		case <-q.ready:
		case <-q.done:
		}
	}
}

// TryPop is Pop without blocking: it returns 0 when the queue is empty.
func (q *Queue) TryPop(out []*Buf) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := min(q.n, len(out))
	for i := 0; i < k; i++ {
		out[i] = q.ring[q.head]
		q.ring[q.head] = nil
		q.head = (q.head + 1) % len(q.ring)
	}
	q.n -= k
	return k
}

// Len returns the number of queued buffers.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// Close wakes every blocked Pop and makes further Pushes fail. Buffers still queued are
// released. Close is idempotent.
func (q *Queue) Close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	for q.n > 0 {
		q.ring[q.head].Release()
		q.ring[q.head] = nil
		q.head = (q.head + 1) % len(q.ring)
		q.n--
	}
	q.mu.Unlock()
	close(q.done)
}

// minRing is the ring size a queue starts with on its first push.
const minRing = 16

// grow enlarges the ring to hold at least need buffers (need <= q.max), keeping their
// order. Called with mu held.
func (q *Queue) grow(need int) {
	size := max(len(q.ring)*2, minRing)
	for size < need {
		size *= 2
	}
	ring := make([]*Buf, min(size, q.max))
	for i := 0; i < q.n; i++ {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

// Done returns a channel that is closed when the queue is.
func (q *Queue) Done() <-chan struct{} { return q.done }

// PushBatch appends as many of bufs as fit, in order, and returns how many it took; the
// caller still owns bufs[n:].
func (q *Queue) PushBatch(bufs []*Buf) int {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0
	}
	k := min(len(bufs), q.max-q.n)
	if q.n+k > len(q.ring) {
		q.grow(q.n + k)
	}
	wake := q.n == 0 && k > 0
	for i := 0; i < k; i++ {
		q.ring[(q.head+q.n)%len(q.ring)] = bufs[i]
		q.n++
	}
	q.mu.Unlock()
	if wake {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return k
}

// PushCopies queues a pooled copy of every frame in frames whose length is between
// MinFrameLen and maxLen, in order, taking the queue's lock once per 64 frames. It
// returns how many frames it took and their bytes; the others (bad length, no room)
// are the caller's to count as dropped.
func (q *Queue) PushCopies(frames []Frame, maxLen int) (took, bytes int) {
	var batch [64]*Buf
	var lens [64]int
	for len(frames) > 0 {
		k := 0
		for k < len(batch) && len(frames) > 0 {
			f := &frames[0]
			frames = frames[1:]
			if f.N < MinFrameLen || f.N > maxLen {
				continue
			}
			b := GetBuf(f.N)
			b.CopyFrom(f)
			batch[k], lens[k] = b, f.N // lens: once queued, a buffer is the reader's
			k++
		}
		n := q.PushBatch(batch[:k])
		ReleaseBufs(batch[n:k])
		for _, l := range lens[:n] {
			bytes += l
		}
		took += n
		clear(batch[:k])
	}
	return took, bytes
}
