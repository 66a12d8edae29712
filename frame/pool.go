package frame

import "sync"

// Buf is a pooled frame buffer. Get one with GetBuf, hand it on by pointer, and give it
// back with Release exactly once; pooled buffers make the data path allocation-free in
// steady state.
type Buf struct {
	// B is the storage; len(B) is the buffer's class size.
	B []byte
	// Off is where the held frame starts in B: room kept in front of a frame lets a
	// switch push an 802.1Q tag without moving the payload.
	Off int
	// N is the length of the frame held in B[Off:].
	N int
	// Meta is the held frame's offload metadata.
	Meta Meta
	// Pkt, when not nil, holds the frame by reference and B[Off:] only its first
	// PacketHead bytes (see Packet); Release releases it too.
	Pkt   Packet
	class int8 // index into classSizes
}

// Bytes returns the held frame, B[Off:Off+N].
func (b *Buf) Bytes() []byte { return b.B[b.Off : b.Off+b.N] }

// Headroom is the room every pooled buffer has beyond its class's frame size, for
// callers that keep space in front of a frame (see Buf.Off).
const Headroom = 64

// Buffer size classes: a standard frame, a jumbo frame, a superframe.
var classSizes = [...]int{2048, 16384, MaxSuperFrame + Headroom}

// A pool per class: a bounded stack behind a mutex. The batch calls (GetBufs,
// ReleaseBufs) take the lock once per batch, which makes a pooled buffer cost about a
// nanosecond on the data path; sync.Pool costs tens.
type bufStack struct {
	mu    sync.Mutex
	free  []*Buf // guarded by mu
	limit int    // buffers kept beyond this are left to the GC
}

var pools [len(classSizes)]bufStack

func init() {
	for i := range pools {
		// Keep about 64 MiB per class at most.
		pools[i].limit = max(256, (64<<20)/classSizes[i])
	}
}

func classOf(n int) int {
	for i, s := range classSizes {
		if n <= s {
			return i
		}
	}
	panic("frame: buffer size beyond MaxSuperFrame+Headroom")
}

// GetBuf returns a pooled buffer of at least n bytes, Off and N = 0 and Meta cleared.
// It panics if n exceeds MaxSuperFrame+Headroom.
func GetBuf(n int) *Buf {
	var one [1]*Buf
	GetBufs(n, one[:])
	return one[0]
}

// GetBufs fills out with pooled buffers of at least n bytes each, as GetBuf does.
func GetBufs(n int, out []*Buf) {
	c := classOf(n)
	p := &pools[c]
	p.mu.Lock()
	k := min(len(p.free), len(out))
	copy(out, p.free[len(p.free)-k:])
	clear(p.free[len(p.free)-k:])
	p.free = p.free[:len(p.free)-k]
	p.mu.Unlock()
	for i := range out {
		if i >= k {
			out[i] = &Buf{B: make([]byte, classSizes[c]), class: int8(c)}
			continue
		}
		b := out[i]
		b.Off, b.N = 0, 0
		b.Meta = Meta{}
		b.Pkt = nil
	}
}

// Release returns b to its pool, releasing the frame reference it holds, if any. b must
// not be used afterwards.
func (b *Buf) Release() {
	if b == nil {
		return
	}
	b.releasePkt()
	p := &pools[b.class]
	p.mu.Lock()
	if len(p.free) < p.limit {
		p.free = append(p.free, b)
	}
	p.mu.Unlock()
}

// ReleaseBufs releases every non-nil buffer of bufs and sets its slot to nil.
func ReleaseBufs(bufs []*Buf) {
	for _, b := range bufs { // outside the pools' locks: a release may be gVisor's work
		if b != nil {
			b.releasePkt()
		}
	}
	for len(bufs) > 0 {
		if bufs[0] == nil {
			bufs = bufs[1:]
			continue
		}
		c := bufs[0].class
		p := &pools[c]
		p.mu.Lock()
		i := 0
		for ; i < len(bufs) && (bufs[i] == nil || bufs[i].class == c); i++ {
			if bufs[i] != nil && len(p.free) < p.limit {
				p.free = append(p.free, bufs[i])
			}
			bufs[i] = nil
		}
		p.mu.Unlock()
		bufs = bufs[i:]
	}
}

func (b *Buf) releasePkt() {
	if b.Pkt != nil {
		b.Pkt.Release()
		b.Pkt = nil
	}
}

// CopyFrom fills b with f's bytes and metadata; a frame by reference is copied whole,
// and f keeps its reference. b must be large enough (GetBuf(f.N) is).
func (b *Buf) CopyFrom(f *Frame) {
	b.Off = 0
	if f.Pkt != nil {
		b.N = copyWhole(b.B, f.Pkt, f.Buf[:headLen(f.N)])
	} else {
		b.N = copy(b.B, f.Bytes())
	}
	b.Meta = f.Meta
}

// CopyTo copies b's frame into f (whole, if b holds it by reference), returning false
// (and leaving f untouched) when f.Buf is too short.
func (b *Buf) CopyTo(f *Frame) bool {
	if len(f.Buf) < b.N {
		return false
	}
	if b.Pkt != nil {
		f.N = copyWhole(f.Buf, b.Pkt, b.B[b.Off:b.Off+headLen(b.N)])
	} else {
		f.N = copy(f.Buf, b.Bytes())
	}
	f.Meta = b.Meta
	f.Pkt = nil
	return true
}
