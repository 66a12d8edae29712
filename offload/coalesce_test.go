package offload

import (
	"bytes"
	"encoding/binary"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"

	"github.com/vnetd/vnetd/frame"
)

// segmentsOf builds the superframe s with gopacket and cuts it with Segment into
// plain frames of at most mtu bytes of L3.
func segmentsOf(t testing.TB, s super, mss uint16, mtu int) (orig []byte, segs [][]byte) {
	t.Helper()
	orig = build(t, s)
	f := frame.Frame{Buf: orig, N: len(orig), Meta: frame.Meta{GSO: frame.GSOTCPv4, GSOSize: mss}}
	if s.v6 {
		f.Meta.GSO = frame.GSOTCPv6
	}
	if _, err := Segment(&f, mtu, func(b *frame.Buf) bool {
		segs = append(segs, bytes.Clone(b.Bytes()))
		b.Release()
		return true
	}); err != nil {
		t.Fatalf("Segment(%+v) = %v", s, err)
	}
	return orig, segs
}

// superFrom starts a frame with a 64 KiB buffer holding b.
func superFrom(b []byte) *frame.Frame {
	f := &frame.Frame{Buf: make([]byte, frame.MaxSuperFrame)}
	f.N = copy(f.Buf, b)
	return f
}

// resum recomputes b's IPv4 header checksum and TCP checksum, after a test changed a
// header field, so that Coalesce refuses b for the field and not for its checksum.
func resum(b []byte) []byte {
	l, err := parse(b)
	if err != nil {
		panic(err)
	}
	if !l.v6 {
		b[l.l3+10], b[l.l3+11] = 0, 0
		checksum.Put(b[l.l3+10:], ^checksum.Checksum(b[l.l3:l.l4], 0))
	}
	b[l.l4+16], b[l.l4+17] = 0, 0
	checksum.Put(b[l.l4+16:], ^checksum.Checksum(b[l.l4:], pseudoSum(b, l, len(b)-l.l4)))
	return b
}

// TestCoalesceRoundTrip: the segments of a superframe coalesce back into one
// superframe that Segment cuts into the very same segments again, and whose
// completed checksum is right.
func TestCoalesceRoundTrip(t *testing.T) {
	for _, s := range []super{
		{df: true, payload: 20000, flags: "P"},
		{df: true, vlan: true, payload: 14480},
		{v6: true, payload: 30001, flags: "P"},
		{v6: true, vlan: true, payload: 1000},
		{df: true, payload: 65535 - 20 - 20},
	} {
		orig, segs := segmentsOf(t, s, 1448, 1500)
		f := superFrom(segs[0])
		for i, b := range segs[1:] {
			if !Coalesce(f, b) {
				t.Fatalf("%+v: segment %d of %d not coalesced", s, i+1, len(segs))
			}
		}
		if len(segs) == 1 {
			if f.Meta.GSO != frame.GSONone {
				t.Fatalf("%+v: one segment became %+v", s, f.Meta)
			}
			continue
		}
		if f.N != len(orig) {
			t.Fatalf("%+v: superframe of %d bytes, want %d", s, f.N, len(orig))
		}
		want := frame.GSOTCPv4
		if s.v6 {
			want = frame.GSOTCPv6
		}
		l, _ := parse(segs[0])
		if f.Meta.GSO != want || int(f.Meta.GSOSize) != len(segs[0])-l.hdr || !f.Meta.NeedsCsum {
			t.Fatalf("%+v: meta %+v", s, f.Meta)
		}
		var again [][]byte
		if _, err := Segment(f, 1500, func(b *frame.Buf) bool {
			again = append(again, bytes.Clone(b.Bytes()))
			b.Release()
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if len(again) != len(segs) {
			t.Fatalf("%+v: %d segments again, want %d", s, len(again), len(segs))
		}
		for i := range segs {
			if !bytes.Equal(again[i], segs[i]) {
				t.Fatalf("%+v: segment %d differs after coalescing and segmenting again", s, i)
			}
		}
		whole := bytes.Clone(f.Bytes())
		m := f.Meta
		if err := CompleteChecksum(whole, &m); err != nil {
			t.Fatal(err)
		}
		if good, _ := reserialize(t, whole); !bytes.Equal(good, whole) {
			t.Fatalf("%+v: the completed superframe's checksums are wrong", s)
		}
	}
}

// TestCoalesceRefuses: every rule that keeps two segments apart, each tried on a
// second segment that is otherwise the right next one (checksums recomputed after
// the change, so the rule and not the checksum refuses it).
func TestCoalesceRefuses(t *testing.T) {
	_, segs := segmentsOf(t, super{df: true, payload: 1448 * 3}, 1448, 1500)
	_, segs6 := segmentsOf(t, super{v6: true, payload: 1448 * 3}, 1448, 1500)
	_, vsegs := segmentsOf(t, super{df: true, vlan: true, payload: 1448 * 3}, 1448, 1500)
	l, _ := parse(segs[0])
	tcp := func(b []byte) []byte { return b[l.l4:] }
	tests := []struct {
		name  string
		first []byte
		next  func() []byte
	}{
		{"sequence gap", segs[0], func() []byte { return segs[2] }},
		{"out of order", segs[1], func() []byte { return segs[0] }},
		{"other ack", segs[0], func() []byte { b := bytes.Clone(segs[1]); tcp(b)[11]++; return resum(b) }},
		{"other window", segs[0], func() []byte { b := bytes.Clone(segs[1]); tcp(b)[15]++; return resum(b) }},
		{"other port", segs[0], func() []byte { b := bytes.Clone(segs[1]); tcp(b)[1]++; return resum(b) }},
		{"FIN", segs[0], func() []byte { b := bytes.Clone(segs[1]); tcp(b)[13] |= 0x01; return resum(b) }},
		{"RST", segs[0], func() []byte { b := bytes.Clone(segs[1]); tcp(b)[13] |= 0x04; return resum(b) }},
		{"CWR", segs[0], func() []byte { b := bytes.Clone(segs[1]); tcp(b)[13] |= 0x80; return resum(b) }},
		{"URG", segs[0], func() []byte { b := bytes.Clone(segs[1]); tcp(b)[13] |= 0x20; return resum(b) }},
		{"after PSH", func() []byte { b := bytes.Clone(segs[0]); tcp(b)[13] |= tcpFlagPSH; return resum(b) }(), func() []byte { return segs[1] }},
		{"IP ID not counting up", segs[0], func() []byte { b := bytes.Clone(segs[1]); b[l.l3+5] += 7; return resum(b) }},
		{"other TTL", segs[0], func() []byte { b := bytes.Clone(segs[1]); b[l.l3+8]--; return resum(b) }},
		{"other TOS", segs[0], func() []byte { b := bytes.Clone(segs[1]); b[l.l3+1] = 4; return resum(b) }},
		{"no DF", segs[0], func() []byte { b := bytes.Clone(segs[1]); b[l.l3+6] = 0; return resum(b) }},
		{"other source MAC", segs[0], func() []byte { b := bytes.Clone(segs[1]); b[11]++; return b }},
		{"other VLAN", vsegs[0], func() []byte { b := bytes.Clone(vsegs[1]); b[15]++; return b }},
		{"bad TCP checksum", segs[0], func() []byte { b := bytes.Clone(segs[1]); b[len(b)-1]++; return b }},
		{"bad IPv4 header checksum", segs[0], func() []byte { b := bytes.Clone(segs[1]); b[l.l3+10]++; return b }},
		{"longer than the first", segs[2], func() []byte { return nil }}, // replaced below
		{"pure ACK", segs[0], func() []byte { return resum(bytes.Clone(segs[1][:l.hdr])) }},
		{"padded", segs[0], func() []byte { return append(bytes.Clone(segs[1]), 0, 0) }},
		{"IPv6 after IPv4", segs[0], func() []byte { return segs6[1] }},
		{"other flow label", segs6[0], func() []byte { b := bytes.Clone(segs6[1]); b[l.l3+3]++; return resum(b) }},
	}
	// A short segment (the last) followed by a full one: seq is right, size is not.
	short := bytes.Clone(segs[0][:len(segs[0])-100])
	binary.BigEndian.PutUint16(short[l.l3+2:], uint16(len(short)-l.l3))
	short = resum(short)
	next := bytes.Clone(segs[1])
	binary.BigEndian.PutUint32(tcp(next)[4:], binary.BigEndian.Uint32(tcp(short)[4:])+uint32(len(short)-l.hdr))
	next = resum(next)
	tests[18] = struct {
		name  string
		first []byte
		next  func() []byte
	}{"after a short segment", short, func() []byte { return next }}
	for _, tt := range tests {
		f := superFrom(tt.first)
		b := tt.next()
		if Coalesce(f, b) {
			t.Errorf("%s: coalesced", tt.name)
			continue
		}
		if f.N != len(tt.first) || !bytes.Equal(f.Bytes(), tt.first) || f.Meta.GSO != frame.GSONone {
			t.Errorf("%s: refused, but the first frame changed (%d bytes, meta %+v)", tt.name, f.N, f.Meta)
		}
	}

	// A segment that fails its checksum stays out, and the first is not checked twice.
	f := superFrom(segs[0])
	bad := bytes.Clone(segs[1])
	bad[len(bad)-1]++
	if Coalesce(f, bad) || !f.Meta.CsumValid {
		t.Errorf("bad checksum: first frame meta %+v, want CsumValid", f.Meta)
	}
	// A first frame with a bad checksum takes nothing.
	f = superFrom(bad)
	binary.BigEndian.PutUint32(tcp(f.Buf)[4:], binary.BigEndian.Uint32(tcp(segs[0])[4:]))
	if Coalesce(f, segs[1]) || f.Meta.CsumValid {
		t.Errorf("first frame with a bad checksum: coalesced or marked valid (%+v)", f.Meta)
	}
	// No room: a buffer that holds only the first frame.
	f = &frame.Frame{Buf: bytes.Clone(segs[0]), N: len(segs[0])}
	if Coalesce(f, segs[1]) {
		t.Error("coalesced past the end of the buffer")
	}
	// Frames by reference, UDP superframes and partial-checksum plain frames are left alone.
	for _, m := range []frame.Meta{{GSO: frame.GSOUDPL4, NeedsCsum: true, GSOSize: 1448}, {NeedsCsum: true}, {GSO: frame.GSOTCPv4}} {
		f = superFrom(segs[0])
		f.Meta = m
		if Coalesce(f, segs[1]) {
			t.Errorf("meta %+v: coalesced", m)
		}
	}
}

// TestCoalesceCaps64K: a superframe stops growing before its IP length would pass
// 65535 bytes.
func TestCoalesceCaps64K(t *testing.T) {
	_, segs := segmentsOf(t, super{df: true, payload: 1448 * 50}, 1448, 1500)
	f := superFrom(segs[0])
	n := 1
	for _, b := range segs[1:] {
		if !Coalesce(f, b) {
			break
		}
		n++
	}
	l, _ := parse(segs[0])
	if got := f.N - l.l3; got > 65535 || got+1448 <= 65535 {
		t.Fatalf("superframe stopped at an IP length of %d after %d segments", got, n)
	}
}

func BenchmarkCoalesceTCP4(b *testing.B) {
	_, segs := segmentsOf(b, super{df: true, payload: 1448 * 44}, 1448, 1500)
	f := superFrom(segs[0])
	b.SetBytes(int64(1448 * 44))
	b.ReportAllocs()
	for b.Loop() {
		f.N = copy(f.Buf, segs[0])
		f.Meta = frame.Meta{}
		for _, s := range segs[1:] {
			if !Coalesce(f, s) {
				b.Fatal("not coalesced")
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(segs)), "ns/seg")
}

// FuzzCoalesce: any two frames, any metadata on the first: Coalesce never panics or
// writes past the buffer, and a superframe it makes segments back (Segment accepts
// it) into frames that each carry a correct checksum.
func FuzzCoalesce(f *testing.F) {
	_, segs := segmentsOf(f, super{df: true, payload: 2896}, 1448, 1500)
	_, segs6 := segmentsOf(f, super{v6: true, vlan: true, payload: 2880}, 1440, 1500)
	f.Add(segs[0], segs[1], uint8(0), uint16(0))
	f.Add(segs6[0], segs6[1], uint8(0), uint16(0))
	f.Add(segs[0], segs[0], uint8(1), uint16(1448))
	f.Fuzz(func(t *testing.T, a, b []byte, gso uint8, mss uint16) {
		if len(a) > 4096 || len(b) > 4096 {
			return
		}
		fr := &frame.Frame{Buf: make([]byte, len(a)+len(b)/2)} // sometimes no room
		fr.N = copy(fr.Buf, a)
		fr.Meta = frame.Meta{GSO: frame.GSOType(gso % 4), GSOSize: mss, NeedsCsum: gso >= 4}
		if !Coalesce(fr, b) {
			return
		}
		if fr.N > len(fr.Buf) || fr.Meta.GSOSize == 0 {
			t.Fatalf("superframe of %d bytes in %d, meta %+v", fr.N, len(fr.Buf), fr.Meta)
		}
		if fr.N/int(fr.Meta.GSOSize) > 64 {
			return // a tiny MSS: thousands of segments; bound the work per input
		}
		if _, err := Segment(fr, 65535, func(s *frame.Buf) bool {
			l, err := parse(s.Bytes())
			if err != nil || !segmentOK(s.Bytes(), l) {
				t.Fatalf("a segment of the superframe is bad: %v", err)
			}
			s.Release()
			return true
		}); err != nil {
			t.Fatalf("Segment(superframe %+v): %v", fr.Meta, err)
		}
	})
}
