package vxlan

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/offload"
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
		n := p.split(g, frames, 0)
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

// tcpSegments is a TCP/IPv4 stream of n full segments of mss bytes from src to dst,
// as a kernel sends it (DF set, checksums complete), serialized by gopacket.
func tcpSegments(t testing.TB, src, dst frame.MAC, n, mss int, sport uint16) [][]byte {
	t.Helper()
	var out [][]byte
	for i := range n {
		e := &layers.Ethernet{SrcMAC: src[:], DstMAC: dst[:], EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Id: uint16(i), Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
			SrcIP: net.IPv4(10, 0, 0, 1), DstIP: net.IPv4(10, 0, 0, 2)}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 5201, Seq: uint32(1000 + i*mss), Ack: 7, ACK: true, Window: 512}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		pay := make([]byte, mss)
		for j := range pay {
			pay[j] = byte(i + j)
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, e, ip, tcp, gopacket.Payload(pay)); err != nil {
			t.Fatal(err)
		}
		out = append(out, buf.Bytes())
	}
	return out
}

// resegment cuts frames (superframes or plain) back into plain frames of the MTU.
func resegment(t testing.TB, frames []frame.Frame, mtu int) [][]byte {
	t.Helper()
	var out [][]byte
	for i := range frames {
		if _, err := offload.Segment(&frames[i], mtu, func(b *frame.Buf) bool {
			out = append(out, bytes.Clone(b.Bytes()))
			b.Release()
			return true
		}); err != nil {
			t.Fatalf("Segment(frame %d, %+v): %v", i, frames[i].Meta, err)
		}
	}
	return out
}

// TestCoalesceOverTunnel: a TCP stream sent through a tunnel over loopback arrives as
// superframes (fewer frames than segments, counted as rx_coalesced) that segment
// back into exactly the segments sent, in order, with a segment of another flow in
// the middle kept apart and in its place; with NoCoalesce every segment is a frame.
func TestCoalesceOverTunnel(t *testing.T) {
	for _, noCoalesce := range []bool{false, true} {
		// One sending socket: the other flow must not overtake on another source port.
		a, b := pair(t, func(o *Options) { o.NoCoalesce, o.SourcePorts = noCoalesce, 1 })
		segs := tcpSegments(t, macA, macB, 20, 1400, 40000)
		other := tcpSegments(t, macA, macB, 1, 1400, 40001)[0]
		sent := append(append(append([][]byte{}, segs[:10]...), other), segs[10:]...)
		write(t, a, sent...)
		if b.merge == noCoalesce {
			t.Fatalf("NoCoalesce %v: the reader coalesces: %v (UDP_GRO %v)", noCoalesce, b.merge, b.groOn)
		}
		var frames []frame.Frame
		var got [][]byte
		deadline := time.Now().Add(2 * time.Second)
		for len(got) < len(sent) && time.Now().Before(deadline) {
			fs := make([]frame.Frame, 8)
			for i := range fs {
				fs[i].Buf = make([]byte, b.Info().MaxFrame)
			}
			n, err := b.ReadFrames(fs)
			if err != nil {
				t.Fatal(err)
			}
			frames = append(frames, fs[:n]...)
			got = append(got, resegment(t, fs[:n], 1500)...)
		}
		if len(got) != len(sent) {
			t.Fatalf("NoCoalesce %v: %d segments back, want %d", noCoalesce, len(got), len(sent))
		}
		for i := range sent {
			if !bytes.Equal(got[i], sent[i]) {
				t.Fatalf("NoCoalesce %v: segment %d differs", noCoalesce, i)
			}
		}
		s := b.Stats()
		if noCoalesce {
			if len(frames) != len(sent) || s.RxCoalesced != 0 {
				t.Fatalf("NoCoalesce: %d frames for %d segments, %d coalesced", len(frames), len(sent), s.RxCoalesced)
			}
		} else if len(frames) >= len(sent) || s.RxCoalesced != uint64(len(sent)-len(frames)) {
			t.Fatalf("%d frames for %d segments, rx_coalesced %d", len(frames), len(sent), s.RxCoalesced)
		}
		if s.Counters.RxFrames != uint64(len(sent)) {
			t.Fatalf("RxFrames %d, want every segment (%d)", s.Counters.RxFrames, len(sent))
		}
		a.Close()
		b.Close()
	}
}
