package vxlan

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vnetd/vnetd/frame"
)

func TestGROSegSize(t *testing.T) {
	cmsg := func(level, typ int32, v uint32) []byte {
		b := make([]byte, unix.CmsgSpace(4))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = level, typ
		h.SetLen(unix.CmsgLen(4))
		binary.NativeEndian.PutUint32(b[unix.CmsgLen(0):], v)
		return b
	}
	for _, c := range []struct {
		name string
		oob  []byte
		want int
	}{
		{"none", nil, 0},
		{"gro", cmsg(unix.SOL_UDP, unix.UDP_GRO, 1472), 1472},
		{"after another", append(cmsg(unix.SOL_IP, unix.IP_TOS, 0), cmsg(unix.SOL_UDP, unix.UDP_GRO, 1000)...), 1000},
		{"other only", cmsg(unix.SOL_IP, unix.IP_TOS, 7), 0},
		{"truncated", cmsg(unix.SOL_UDP, unix.UDP_GRO, 1472)[:unix.SizeofCmsghdr+2], 0},
	} {
		if got := groSegSize(c.oob); got != c.want {
			t.Errorf("%s: groSegSize() = %d, want %d", c.name, got, c.want)
		}
	}
}

// TestGROSplit feeds the GRO reader's split a coalesced receive as the kernel hands it
// (one buffer, a segment size, the last segment shorter) with a datagram of another
// VNI among them, into fewer frames than it holds: every good segment comes out once,
// in order, the bad one is dropped and counted, and what does not fit waits for the
// next call.
func TestGROSplit(t *testing.T) {
	p := open(t, Options{Name: "g", Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), freePort(t)), VNI: 42})
	src := frame.MAC{2, 0, 0, 0, 0, 9}
	var want [][]byte
	g := newGROState()
	const seg = HeaderLen + 100
	var d []byte
	for i := range 5 {
		n := 100
		if i == 4 {
			n = 60 // the last segment of a GRO buffer may be shorter
		}
		inner := eth(frame.MAC{2, 0, 0, 0, 0, 1}, src, n)
		inner[20] = byte(i)
		h := make([]byte, HeaderLen)
		vni := uint32(42)
		if i == 2 {
			vni = 43
		} else {
			want = append(want, inner)
		}
		PutHeader(h, vni)
		d = append(append(d, h...), inner...)
	}
	copy(g.bufs, d)
	sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&g.names[0]))
	sa.Family, sa.Addr = unix.AF_INET, [4]byte{127, 0, 0, 9}
	g.n, g.lens[0], g.segs[0] = 1, len(d), seg
	frames := make([]frame.Frame, 3)
	for i := range frames {
		frames[i].Buf = make([]byte, 200)
	}
	var got [][]byte
	for range 3 {
		n := p.split(g, frames, p.info.MaxFrame)
		for _, f := range frames[:n] {
			got = append(got, append([]byte(nil), f.Bytes()...))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("split gave %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d = % x, want % x", i, got[i][:24], want[i][:24])
		}
	}
	if s := p.Stats(); s.RxBadVNI != 1 || s.Counters.RxDropped != 1 || s.Counters.RxFrames != 4 {
		t.Fatalf("Stats() = %+v, want 1 bad VNI dropped and 4 frames", s)
	}
	if m := p.MACs(); len(m) != 1 || m[0].MAC != src || m[0].Remote != netip.MustParseAddr("127.0.0.9") {
		t.Fatalf("MACs() = %+v, want %s behind 127.0.0.9", m, src)
	}
}
