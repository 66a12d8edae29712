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

func TestPacketMaterializeAndRelease(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 300)
	var copies, releases int
	pkt := func() Packet { return countPkt{b: data, copies: &copies, releases: &releases} }

	// Frame.Materialize: bytes copied in, the reference released, Pkt cleared.
	f := Frame{Buf: make([]byte, 512), N: len(data), Pkt: pkt()}
	f.Materialize()
	if f.Pkt != nil || !bytes.Equal(f.Bytes(), data) || copies != 1 || releases != 1 {
		t.Fatalf("Frame.Materialize: Pkt %v, bytes equal %v, copies %d, releases %d", f.Pkt, bytes.Equal(f.Bytes(), data), copies, releases)
	}
	f.Materialize() // a plain frame: nothing happens
	if copies != 1 || releases != 1 {
		t.Fatalf("Materialize of a plain frame copied or released")
	}

	// Buf.Materialize writes at Off.
	b := GetBuf(512)
	b.Off, b.N, b.Pkt = 16, len(data), pkt()
	b.Materialize()
	if b.Pkt != nil || !bytes.Equal(b.Bytes(), data) || releases != 2 {
		t.Fatalf("Buf.Materialize: Pkt %v, bytes equal %v, releases %d", b.Pkt, bytes.Equal(b.Bytes(), data), releases)
	}

	// CopyFrom copies a frame by reference whole and leaves the reference with f.
	g := Frame{Buf: make([]byte, PacketHead), N: len(data), Pkt: pkt()}
	b.CopyFrom(&g)
	if !bytes.Equal(b.Bytes(), data) || g.Pkt == nil || releases != 2 {
		t.Fatalf("CopyFrom: bytes equal %v, f kept Pkt %v, releases %d", bytes.Equal(b.Bytes(), data), g.Pkt != nil, releases)
	}

	// CopyTo of a buffer holding a reference copies it whole.
	b.Pkt = g.Pkt
	out := Frame{Buf: make([]byte, 512)}
	if !b.CopyTo(&out) || !bytes.Equal(out.Bytes(), data) || out.Pkt != nil {
		t.Fatalf("CopyTo: bytes equal %v, Pkt %v", bytes.Equal(out.Bytes(), data), out.Pkt)
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

// slicedPkt is a frame by reference in pieces, readable in place.
type slicedPkt struct {
	countPkt
	pieces [][]byte
}

func (p slicedPkt) Slices(dst [][]byte) [][]byte { return append(dst, p.pieces...) }

func TestFrameSlices(t *testing.T) {
	data := []byte("0123456789abcdef")
	var copies, releases int

	plain := Frame{Buf: data, N: 10}
	if got := plain.Slices(nil); len(got) != 1 || string(got[0]) != "0123456789" {
		t.Fatalf("plain frame: Slices = %q, want its bytes", got)
	}

	pieces := [][]byte{data[:3], data[3:9], data[9:]}
	sliced := Frame{Buf: make([]byte, 32), N: len(data),
		Pkt: slicedPkt{countPkt{b: data, copies: &copies, releases: &releases}, pieces}}
	got := sliced.Slices([][]byte{[]byte("hdr")})
	if len(got) != 4 || string(bytes.Join(got[1:], nil)) != string(data) || copies != 0 {
		t.Fatalf("sliced packet: Slices = %q (copies %d), want the header then its 3 pieces, uncopied", got, copies)
	}
	if &got[1][0] != &data[0] {
		t.Fatalf("sliced packet: the slices are copies, not the packet's storage")
	}

	opaque := Frame{Buf: make([]byte, 32), N: len(data), Pkt: countPkt{b: data, copies: &copies, releases: &releases}}
	got = opaque.Slices(nil)
	if len(got) != 1 || string(got[0]) != string(data) || &got[0][0] != &opaque.Buf[0] || copies != 1 {
		t.Fatalf("opaque packet: Slices = %q (copies %d), want its bytes copied into Buf", got, copies)
	}
	if releases != 0 {
		t.Fatalf("Slices released a reference")
	}
}
