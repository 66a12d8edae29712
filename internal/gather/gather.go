// Package gather builds the iovecs of a batch of gather writes, one write per frame: a
// header of the port's own (a virtio-net header) and then the frame's bytes, which for a
// frame by reference are its head and the sending stack's own buffers (frame.Packet), so
// that the kernel copies them straight from there. TAPs (io_uring writev) and host
// interfaces (sendmmsg) use it.
package gather

import (
	"golang.org/x/sys/unix"

	"github.com/vnetd/vnetd/frame"
)

// MaxFrameSlices bounds the pieces one frame is written from (frame.SlicesAtMost).
const MaxFrameSlices = 64

// Batch is a batch of writes being built: Reset, Add each frame, Finish, hand the
// kernel Iov(i) for write i, then Release.
type Batch struct {
	vec  [][]byte     // every write's pieces, in order
	span []int        // write i's pieces are vec[span[i]:span[i+1]]
	iov  []unix.Iovec // vec as iovecs, filled by Finish
}

// Reset starts a new batch.
func (b *Batch) Reset() { b.vec, b.span = b.vec[:0], b.span[:0] }

// Add appends a write of hdr (none when nil) followed by f's bytes.
func (b *Batch) Add(hdr []byte, f *frame.Frame) {
	b.span = append(b.span, len(b.vec))
	if hdr != nil {
		b.vec = append(b.vec, hdr)
	}
	b.vec = f.SlicesAtMost(b.vec, MaxFrameSlices)
}

// Finish fills the iovecs. No write may be added after it: the iovecs' addresses are
// handed to the kernel and must not move.
func (b *Batch) Finish() {
	b.span = append(b.span, len(b.vec))
	if len(b.iov) < len(b.vec) {
		b.iov = make([]unix.Iovec, len(b.vec))
	}
	for i, p := range b.vec {
		b.iov[i] = unix.Iovec{}
		if len(p) > 0 {
			b.iov[i].Base = &p[0]
		}
		b.iov[i].SetLen(len(p))
	}
}

// Iov returns write i's iovecs.
func (b *Batch) Iov(i int) []unix.Iovec { return b.iov[b.span[i]:b.span[i+1]] }

// Release drops the batch's references to the caller's buffers and packets.
func (b *Batch) Release() {
	clear(b.iov[:len(b.vec)])
	clear(b.vec)
	b.vec = b.vec[:0]
}
