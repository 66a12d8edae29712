package impair

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vnetd/vnetd/frame"
)

// Stats are one direction's counters.
type Stats struct {
	Frames     uint64 `json:"frames"`     // frames offered
	Passed     uint64 `json:"passed"`     // frames (duplicates included) handed on
	Delayed    uint64 `json:"delayed"`    // frames that waited in the queue
	Lost       uint64 `json:"lost"`       // dropped by the loss model
	Overlimit  uint64 `json:"overlimit"`  // dropped because Limit frames were waiting
	Duplicated uint64 `json:"duplicated"` // extra copies sent
	Corrupted  uint64 `json:"corrupted"`  // frames with a bit flipped
	Reordered  uint64 `json:"reordered"`  // frames that skipped the delay
	Waiting    int64  `json:"waiting"`    // frames in the queue now
}

type stats struct {
	frames, passed, delayed, lost, overlimit, duplicated, corrupted, reordered atomic.Uint64
	waiting                                                                    atomic.Int64
}

func (s *stats) snapshot() Stats {
	return Stats{Frames: s.frames.Load(), Passed: s.passed.Load(), Delayed: s.delayed.Load(), Lost: s.lost.Load(),
		Overlimit: s.overlimit.Load(), Duplicated: s.duplicated.Load(), Corrupted: s.corrupted.Load(),
		Reordered: s.reordered.Load(), Waiting: s.waiting.Load()}
}

// item is a frame waiting in the queue.
type item struct {
	at  int64 // when it is due, ns since the line's epoch
	seq uint64
	b   *frame.Buf
}

// itemHeap is a min-heap of items by (at, seq), typed (container/heap boxes every
// item it pushes or pops: two allocations per frame).
type itemHeap []item

func (h itemHeap) less(i, j int) bool {
	return h[i].at < h[j].at || h[i].at == h[j].at && h[i].seq < h[j].seq
}

func (h *itemHeap) push(it item) {
	*h = append(*h, it)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (h *itemHeap) pop() item {
	q := *h
	it := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q[n] = item{}
	q = q[:n]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < n && q.less(l, m) {
			m = l
		}
		if l+1 < n && q.less(l+1, m) {
			m = l + 1
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return it
}

// line is one direction of a Port: the impairment decisions and the queue of frames
// waiting to fall due, which run (one goroutine, started when a frame waits and gone
// when none does) hands to sink.
type line struct {
	clock Clock
	epoch time.Time
	sink  func([]*frame.Buf) // takes the buffers (and releases them)

	params atomic.Pointer[Params] // never nil; read without mu by the pass-through check
	stats  stats

	mu       sync.Mutex
	rng      *rand.Rand // guarded by mu
	lastJit  float64    // the previous jitter draw, for Correlation
	bad      bool       // Gilbert-Elliott state
	linkFree int64      // when the rate-limited link is next free
	q        itemHeap   // guarded by mu
	qBytes   int        // bytes of the frames in q and being handed on
	maxBytes int        // bound on qBytes: MaxQueueBytes
	seq      uint64
	running  bool // run is active
	sinking  int  // frames run has taken off q and not yet handed to sink
	closed   bool
	wake     chan struct{} // cap 1: q's head moved earlier, or closed
	done     chan struct{} // closed when run exits after close
}

func newLine(c Clock, sink func([]*frame.Buf)) *line {
	l := &line{clock: c, epoch: c.Now(), sink: sink, wake: make(chan struct{}, 1), done: make(chan struct{}), maxBytes: MaxQueueBytes}
	l.params.Store(&Params{})
	l.rng = rand.New(rand.NewPCG(1, 1))
	return l
}

func (l *line) now() int64 { return int64(l.clock.Now().Sub(l.epoch)) }

// set installs p (already validated) and reseeds the generator.
func (l *line) set(p Params) {
	seed := p.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	l.mu.Lock()
	l.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	l.lastJit, l.bad = 0, false
	l.linkFree = 0
	l.params.Store(&p)
	l.mu.Unlock()
}

// passThrough reports whether frames may skip the line entirely: nothing to impair
// and nothing waiting that they would overtake.
func (l *line) passThrough() bool {
	return l.params.Load().IsZero() && l.stats.waiting.Load() == 0
}

func (l *line) chance(pct float64) bool {
	return pct > 0 && l.rng.Float64()*100 < pct
}

// lostLocked draws the loss model.
func (l *line) lostLocked(p *Params) bool {
	ge := p.GilbertElliott
	if ge == nil {
		return l.chance(p.Loss)
	}
	wasBad := l.bad
	if wasBad {
		if l.chance(ge.R) {
			l.bad = false
		}
		return l.chance(ge.Bad)
	}
	if l.chance(ge.P) {
		l.bad = true
	}
	return l.chance(ge.Good)
}

// jitterLocked draws the frame's jitter in ns.
func (l *line) jitterLocked(p *Params) int64 {
	if p.Jitter == 0 {
		return 0
	}
	var x float64 // in units of Jitter
	if p.Distribution == Normal {
		x = l.rng.NormFloat64()
	} else {
		x = 2*l.rng.Float64() - 1
	}
	if c := p.Correlation / 100; c > 0 {
		x = c*l.lastJit + (1-c)*x
		l.lastJit = x
	}
	return int64(x * float64(p.Jitter))
}

// admit takes b (ownership included) through the impairment at the current time:
// frames due at once are appended to now, in order, for the caller to hand on itself;
// the rest wait in the queue; dropped ones are released.
func (l *line) admit(b *frame.Buf, now []*frame.Buf) []*frame.Buf {
	p := l.params.Load()
	l.stats.frames.Add(1)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		b.Release()
		return now
	}
	limit := p.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	if len(l.q)+l.sinking >= limit || l.qBytes+b.N > l.maxBytes {
		l.mu.Unlock()
		l.stats.overlimit.Add(1)
		b.Release()
		return now
	}
	if l.lostLocked(p) {
		l.mu.Unlock()
		l.stats.lost.Add(1)
		b.Release()
		return now
	}
	var dup *frame.Buf
	if l.chance(p.Duplicate) {
		dup = cloneBuf(b)
		l.stats.duplicated.Add(1)
	}
	if l.chance(p.Corrupt) {
		l.corruptLocked(b)
		l.stats.corrupted.Add(1)
	}
	t := l.now()
	at := t
	if l.chance(p.Reorder) {
		l.stats.reordered.Add(1)
	} else {
		at += int64(p.Delay) + l.jitterLocked(p)
		at = max(at, t)
	}
	if p.Rate != 0 {
		start := max(at, l.linkFree)
		at = start + int64(math.Ceil(float64(b.N)*8e9/float64(p.Rate)))
		l.linkFree = at
	}
	for _, x := range []*frame.Buf{b, dup} {
		if x == nil {
			continue
		}
		if at <= t && len(l.q) == 0 && l.sinking == 0 {
			now = append(now, x)
			l.stats.passed.Add(1)
			continue
		}
		l.seq++
		l.qBytes += x.N
		l.q.push(item{at: at, seq: l.seq, b: x})
		l.stats.waiting.Add(1)
		l.stats.delayed.Add(1)
		if l.q[0].b == x {
			select {
			case l.wake <- struct{}{}:
			default:
			}
		}
		if !l.running && !l.closed {
			l.running = true
			go l.run()
		}
	}
	l.mu.Unlock()
	return now
}

// corruptLocked flips one bit of b. A frame held by reference has only its head
// (frame.PacketHead bytes, the headers) in b to flip.
func (l *line) corruptLocked(b *frame.Buf) {
	n := b.N
	if b.Pkt != nil {
		n = min(n, frame.PacketHead)
	}
	if n <= 0 {
		return
	}
	i := l.rng.IntN(n * 8)
	b.B[b.Off+i/8] ^= 1 << (i % 8)
}

// cloneBuf returns a copy of b: its bytes, or its head and a new reference.
func cloneBuf(b *frame.Buf) *frame.Buf {
	c := frame.GetBuf(b.Off + b.N)
	c.Off, c.N, c.Meta = b.Off, b.N, b.Meta
	if b.Pkt != nil {
		copy(c.B[c.Off:], b.B[b.Off:b.Off+min(b.N, frame.PacketHead)])
		c.Pkt = b.Pkt.Clone()
	} else {
		copy(c.B[c.Off:], b.Bytes())
	}
	return c
}

const releaseBatch = 64

// run releases frames as they fall due until the queue is empty.
func (l *line) run() {
	batch := make([]*frame.Buf, 0, releaseBatch)
	for {
		l.mu.Lock()
		if l.closed {
			for _, it := range l.q {
				it.b.Release()
			}
			l.stats.waiting.Add(-int64(len(l.q)))
			l.q = nil
			l.running = false
			close(l.done)
			l.mu.Unlock()
			return
		}
		t := l.now()
		sent := 0
		for len(l.q) > 0 && l.q[0].at <= t && len(batch) < releaseBatch {
			b := l.q.pop().b
			sent += b.N
			batch = append(batch, b)
		}
		if len(batch) == 0 {
			if len(l.q) == 0 {
				l.running = false
				l.mu.Unlock()
				return
			}
			wait := time.Duration(l.q[0].at - t)
			l.mu.Unlock()
			l.clock.Wait(wait, l.wake)
			continue
		}
		l.sinking = len(batch)
		l.mu.Unlock()
		n := len(batch)
		// Counted before the sink has them, so that whoever sees a frame arrive also
		// sees it counted as passed (a test read the counters between the two).
		l.stats.passed.Add(uint64(n))
		l.stats.waiting.Add(-int64(n))
		l.sink(batch)
		clear(batch)
		batch = batch[:0]
		l.mu.Lock()
		l.sinking = 0
		l.qBytes -= sent
		l.mu.Unlock()
	}
}

// close drops the waiting frames and waits for run to exit.
func (l *line) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	running := l.running
	if !running {
		for _, it := range l.q {
			it.b.Release()
		}
		l.stats.waiting.Add(-int64(len(l.q)))
		l.q = nil
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	if running {
		<-l.done
	}
}
