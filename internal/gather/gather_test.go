package gather

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/vnetd/vnetd/frame"
)

// pieces is a frame by reference in 100-byte pieces.
type pieces struct{ b []byte }

func (p pieces) CopyTo(b []byte) int { return copy(b, p.b) }
func (p pieces) Clone() frame.Packet { return p }
func (p pieces) Release()            {}
func (p pieces) Slices(dst [][]byte) [][]byte {
	for i := 0; i < len(p.b); i += 100 {
		dst = append(dst, p.b[i:min(i+100, len(p.b))])
	}
	return dst
}

// TestBatch: each write is its header, then its frame's bytes (a plain frame as one
// piece, a frame by reference as its head and the packet's pieces behind it), and
// Release drops every reference.
func TestBatch(t *testing.T) {
	plain := []byte("a plain frame of some bytes")
	sent := make([]byte, 350)
	for i := range sent {
		sent[i] = byte(i)
	}
	byRef := frame.Frame{Buf: make([]byte, len(sent)), N: len(sent), Pkt: pieces{sent}}
	copy(byRef.Buf, sent[:frame.PacketHead])
	frames := []frame.Frame{{Buf: plain, N: len(plain)}, byRef}
	hdrs := [][]byte{[]byte("H0"), nil}

	var b Batch
	for round := range 2 { // reused
		b.Reset()
		for i := range frames {
			b.Add(hdrs[i], &frames[i])
		}
		b.Finish()
		for i, want := range [][]byte{append([]byte("H0"), plain...), sent} {
			var got []byte
			for _, v := range b.Iov(i) {
				got = append(got, unsafe.Slice(v.Base, v.Len)...)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("round %d write %d: %d bytes in %d iovecs, not the %d expected", round, i, len(got), len(b.Iov(i)), len(want))
			}
		}
		if n := len(b.Iov(1)); n != 5 { // the head, then 36 + 100 + 100 + 50 bytes of pieces 0-3
			t.Fatalf("frame by reference in %d iovecs, want 5", n)
		}
		b.Release()
		for _, v := range b.iov {
			if v.Base != nil {
				t.Fatal("Release kept a reference to a caller's buffer")
			}
		}
	}
}
