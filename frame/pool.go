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
	Meta  Meta
	class int8
}

// Bytes returns the held frame, B[Off:Off+N].
func (b *Buf) Bytes() []byte { return b.B[b.Off : b.Off+b.N] }

// Headroom is the room every pooled buffer has beyond its class's frame size, for
// callers that keep space in front of a frame (see Buf.Off).
const Headroom = 64

// Buffer size classes: a standard frame, a jumbo frame, a superframe.
var classSizes = [...]int{2048, 16384, MaxSuperFrame + Headroom}

var pools [len(classSizes)]sync.Pool

func init() {
	for i := range pools {
		size, class := classSizes[i], int8(i)
		pools[i].New = func() any { return &Buf{B: make([]byte, size), class: class} }
	}
}

// GetBuf returns a pooled buffer of at least n bytes, Off and N = 0 and Meta cleared.
// It panics if n exceeds MaxSuperFrame+Headroom.
func GetBuf(n int) *Buf {
	for i, s := range classSizes {
		if n <= s {
			b := pools[i].Get().(*Buf)
			b.Off, b.N = 0, 0
			b.Meta = Meta{}
			return b
		}
	}
	panic("frame.GetBuf: size beyond MaxSuperFrame")
}

// Release returns b to its pool. b must not be used afterwards.
func (b *Buf) Release() {
	if b == nil || b.class < 0 {
		return
	}
	pools[b.class].Put(b)
}

// CopyFrom fills b with f's bytes and metadata. b must be large enough
// (GetBuf(f.N) is).
func (b *Buf) CopyFrom(f *Frame) {
	b.Off = 0
	b.N = copy(b.B, f.Bytes())
	b.Meta = f.Meta
}

// CopyTo copies b into f, returning false (and leaving f untouched) when f.Buf is too
// short.
func (b *Buf) CopyTo(f *Frame) bool {
	if len(f.Buf) < b.N {
		return false
	}
	f.N = copy(f.Buf, b.Bytes())
	f.Meta = b.Meta
	return true
}
