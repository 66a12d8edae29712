package frame

import (
	"bytes"
	"testing"
)

// countPkt is a frame by reference that counts its copies and releases.
type countPkt struct {
	b                []byte
	copies, releases *int
}

func (p countPkt) CopyTo(b []byte) int { *p.copies++; return copy(b, p.b) }
func (p countPkt) Release()            { *p.releases++ }
func (p countPkt) Clone() Packet       { return p }

// slicedPkt is a frame by reference in pieces, readable in place.
type slicedPkt struct {
	countPkt
	pieces [][]byte
}

func (p slicedPkt) Slices(dst [][]byte) [][]byte { return append(dst, p.pieces...) }

// refFrame returns the 300 bytes a test packet holds and the frame as a receiver sees
// it: the packet's first PacketHead bytes in buf as its head, whose first byte was
// then rewritten to 0xee.
func refFrame() (sent, frame []byte) {
	sent = make([]byte, 300)
	for i := range sent {
		sent[i] = byte(i % 251)
	}
	frame = append([]byte{0xee}, sent[1:]...)
	return sent, frame
}

// withHead returns a buffer of size n holding the rewritten head of refFrame at off.
func withHead(n, off int) []byte {
	_, want := refFrame()
	b := make([]byte, n)
	copy(b[off:], want[:PacketHead])
	return b
}

func TestPacketMaterializeAndRelease(t *testing.T) {
	sent, want := refFrame()
	var copies, releases int
	pkt := func() Packet { return countPkt{b: sent, copies: &copies, releases: &releases} }

	// Frame.Materialize: the packet's bytes behind the frame's own head, the reference
	// released, Pkt cleared.
	f := Frame{Buf: withHead(512, 0), N: len(sent), Pkt: pkt()}
	f.Materialize()
	if f.Pkt != nil || !bytes.Equal(f.Bytes(), want) || copies != 1 || releases != 1 {
		t.Fatalf("Frame.Materialize: Pkt %v, bytes equal %v, copies %d, releases %d", f.Pkt, bytes.Equal(f.Bytes(), want), copies, releases)
	}
	f.Materialize() // a plain frame: nothing happens
	if copies != 1 || releases != 1 {
		t.Fatalf("Materialize of a plain frame copied or released")
	}

	// Buf.Materialize writes at Off, behind the head there.
	b := GetBuf(512)
	copy(b.B, withHead(512, 16))
	b.Off, b.N, b.Pkt = 16, len(sent), pkt()
	b.Materialize()
	if b.Pkt != nil || !bytes.Equal(b.Bytes(), want) || releases != 2 {
		t.Fatalf("Buf.Materialize: Pkt %v, bytes equal %v, releases %d", b.Pkt, bytes.Equal(b.Bytes(), want), releases)
	}

	// CopyFrom copies a frame by reference whole and leaves the reference with f.
	g := Frame{Buf: withHead(PacketHead, 0), N: len(sent), Pkt: pkt()}
	b.CopyFrom(&g)
	if !bytes.Equal(b.Bytes(), want) || g.Pkt == nil || releases != 2 {
		t.Fatalf("CopyFrom: bytes equal %v, f kept Pkt %v, releases %d", bytes.Equal(b.Bytes(), want), g.Pkt != nil, releases)
	}

	// CopyTo of a buffer holding a reference copies it whole, its head from the buffer.
	b.Pkt = g.Pkt
	copy(b.B[b.Off:], sent[:PacketHead]) // the head as sent...
	b.B[b.Off] = 0xee                    // ...rewritten
	out := Frame{Buf: make([]byte, 512)}
	if !b.CopyTo(&out) || !bytes.Equal(out.Bytes(), want) || out.Pkt != nil {
		t.Fatalf("CopyTo: bytes equal %v, Pkt %v", bytes.Equal(out.Bytes(), want), out.Pkt)
	}

	// Release and ReleaseBufs release the reference they hold, once.
	b.Release()
	if releases != 3 {
		t.Fatalf("Buf.Release: releases %d, want 3", releases)
	}
	bufs := make([]*Buf, 3)
	GetBufs(100, bufs)
	for _, x := range bufs {
		if x.Pkt != nil {
			t.Fatalf("GetBufs returned a buffer holding a reference")
		}
	}
	bufs[0].Pkt, bufs[2].Pkt = pkt(), pkt()
	ReleaseBufs(bufs)
	if releases != 5 {
		t.Fatalf("ReleaseBufs: releases %d, want 5", releases)
	}
	if copies != 4 {
		t.Fatalf("copies %d, want 4", copies)
	}
}

func TestFrameSlices(t *testing.T) {
	sent, want := refFrame()
	var copies, releases int

	plain := Frame{Buf: want, N: 10}
	if got := plain.Slices(nil); len(got) != 1 || !bytes.Equal(got[0], want[:10]) {
		t.Fatalf("plain frame: Slices = %q, want its bytes", got)
	}

	// In pieces of 50: the head, then the packet's storage from byte 64 on (the last 36
	// bytes of piece 1, then pieces 2 to 5), uncopied.
	var pieces [][]byte
	for i := 0; i < len(sent); i += 50 {
		pieces = append(pieces, sent[i:i+50])
	}
	sliced := Frame{Buf: withHead(512, 0), N: len(sent),
		Pkt: slicedPkt{countPkt{b: sent, copies: &copies, releases: &releases}, pieces}}
	got := sliced.Slices([][]byte{[]byte("hdr")})
	if len(got) != 7 || !bytes.Equal(bytes.Join(got[1:], nil), want) || copies != 0 {
		t.Fatalf("sliced packet: %d slices (copies %d), bytes equal %v; want 7: the header, the head, 5 pieces, uncopied",
			len(got), copies, bytes.Equal(bytes.Join(got[1:], nil), want))
	}
	if &got[1][0] != &sliced.Buf[0] || &got[2][0] != &sent[PacketHead] {
		t.Fatalf("sliced packet: the head is not the frame's, or the rest not the packet's storage")
	}

	opaque := Frame{Buf: withHead(512, 0), N: len(sent), Pkt: countPkt{b: sent, copies: &copies, releases: &releases}}
	got = opaque.Slices(nil)
	if len(got) != 1 || !bytes.Equal(got[0], want) || &got[0][0] != &opaque.Buf[0] || copies != 1 {
		t.Fatalf("opaque packet: Slices = %d slices (copies %d), want its bytes copied into Buf", len(got), copies)
	}
	if releases != 0 {
		t.Fatalf("Slices released a reference")
	}
}
