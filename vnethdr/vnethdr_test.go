package vnethdr

import (
	"encoding/binary"
	"testing"

	"github.com/vnetd/vnetd/frame"
)

func TestRoundTrip(t *testing.T) {
	for _, m := range []frame.Meta{
		{},
		{CsumValid: true},
		{NeedsCsum: true, CsumStart: 34, CsumOffset: 16},
		{GSO: frame.GSOTCPv4, NeedsCsum: true, HdrLen: 66, GSOSize: 1448, CsumStart: 34, CsumOffset: 16},
		{GSO: frame.GSOTCPv6, NeedsCsum: true, HdrLen: 86, GSOSize: 1428, CsumStart: 54, CsumOffset: 16},
		{GSO: frame.GSOUDPL4, NeedsCsum: true, HdrLen: 42, GSOSize: 1200, CsumStart: 34, CsumOffset: 6},
		{GSO: frame.GSOTCPv4, CsumValid: true, HdrLen: 66, GSOSize: 1448},
	} {
		var h [Len]byte
		Encode(h[:], &m)
		var got frame.Meta
		if !Decode(h[:], &got) || got != m {
			t.Errorf("Decode(Encode(%+v)) = %+v (header % x)", m, got, h)
		}
	}
}

func TestDecode(t *testing.T) {
	le := binary.LittleEndian
	h := make([]byte, Len)
	h[0], h[1] = FlagNeedsCsum|FlagDataValid, GSOTCPv4|GSOECN
	le.PutUint16(h[2:], 66)
	le.PutUint16(h[4:], 1448)
	le.PutUint16(h[6:], 34)
	le.PutUint16(h[8:], 16)
	var m frame.Meta
	want := frame.Meta{GSO: frame.GSOTCPv4, NeedsCsum: true, CsumValid: true, HdrLen: 66, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
	if !Decode(h, &m) || m != want {
		t.Errorf("Decode(TCPv4|ECN) = %+v, want %+v", m, want)
	}
	// A plain frame keeps no GSO fields, and no checksum offsets without NeedsCsum.
	h[0], h[1] = FlagDataValid, GSONone
	if !Decode(h, &m) || m != (frame.Meta{CsumValid: true}) {
		t.Errorf("Decode(plain, data valid) = %+v", m)
	}
	for _, g := range []byte{GSOUDP, 2, 0x10, 0x7f, 0xff} {
		h[1] = g
		if Decode(h, &m) {
			t.Errorf("Decode accepted GSO type %#x", g)
		}
	}
}

func TestEncodeZeroesWhatDoesNotApply(t *testing.T) {
	var h [Len]byte
	for i := range h {
		h[i] = 0xee
	}
	Encode(h[:], &frame.Meta{HdrLen: 66, GSOSize: 1448, CsumStart: 34, CsumOffset: 16})
	if h != [Len]byte{} {
		t.Errorf("Encode(plain frame with stray fields) = % x, want all zero", h)
	}
}

// FuzzDecode feeds arbitrary headers to Decode. Whatever it accepts must encode to a
// header that decodes to the same metadata (Decode's result is normalised), which
// the frame's consumers (package offload) can take as is.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 1, 66, 0, 0xa8, 5, 34, 0, 16, 0})
	f.Add([]byte{3, 0x84, 86, 0, 0x94, 5, 54, 0, 16, 0})
	f.Add([]byte{1, 5, 42, 0, 0xb0, 4, 34, 0, 6, 0})
	f.Add([]byte{0, 3, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, h []byte) {
		if len(h) < Len {
			return
		}
		var m frame.Meta
		if !Decode(h, &m) {
			if g := h[1] &^ GSOECN; g == GSONone || g == GSOTCPv4 || g == GSOTCPv6 || g == GSOUDPL4 {
				t.Fatalf("Decode(% x) rejected a known GSO type", h[:Len])
			}
			return
		}
		if m.GSO == frame.GSONone && (m.HdrLen != 0 || m.GSOSize != 0) {
			t.Fatalf("Decode(% x) = %+v: GSO fields on a plain frame", h[:Len], m)
		}
		if !m.NeedsCsum && (m.CsumStart != 0 || m.CsumOffset != 0) {
			t.Fatalf("Decode(% x) = %+v: checksum offsets without NeedsCsum", h[:Len], m)
		}
		var h2 [Len]byte
		Encode(h2[:], &m)
		var m2 frame.Meta
		if !Decode(h2[:], &m2) || m2 != m {
			t.Fatalf("Decode(Encode(%+v)) = %+v, from % x", m, m2, h[:Len])
		}
	})
}
