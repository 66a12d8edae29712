package nsstack

import (
	"bytes"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/internal/testwait"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// TestFramesCrossByReference: between two NICs the frames go by reference, not as
// copies, and TCP both ways still delivers every byte intact (transfer checks them;
// the sender keeps the shared buffers for retransmission, so a receiver writing into
// them would show). Under -race, gVisor's leak checker (TestMain) also checks that
// every shared packet's references are given back.
func TestFramesCrossByReference(t *testing.T) {
	a, b, na, nb := pairedNICs(t)
	stop := Connect(na, nb)
	defer stop()
	transfer(t, b, a, ":5000", "192.168.0.2:5000", 4<<20)
	transfer(t, a, b, ":5001", "192.168.0.1:5001", 4<<20)
	for _, n := range []*NIC{na, nb} {
		br, all := settledRx(n)
		if br == 0 || br != all {
			t.Errorf("%s received %d frames, %d of them by reference; want all by reference", n.Info().Name, all, br)
		}
	}
	// The listing (`vnetd status`, metrics) shows the same counters, the loopback none.
	for _, c := range []struct {
		ns  *Namespace
		nic *NIC
	}{{a, na}, {b, nb}} {
		var got *NICCounters
		for _, it := range c.ns.Interfaces() {
			if it.Name == "lo" && it.Counters != nil {
				t.Errorf("%s: loopback has counters %+v", c.ns.Name(), *it.Counters)
			}
			if it.Name == "p0" {
				got = it.Counters
			}
		}
		st := c.nic.Counters()
		switch {
		case got == nil:
			t.Errorf("%s: Interfaces lists p0 without counters", c.ns.Name())
		case got.RxByReference != c.nic.RxByReference() || got.RxFrames != st.RxFrames.Load() || got.TxFrames != st.TxFrames.Load():
			t.Errorf("%s p0: listed %+v, NIC has rx %d (%d by reference) tx %d", c.ns.Name(), *got, st.RxFrames.Load(), c.nic.RxByReference(), st.TxFrames.Load())
		case got.TxBytes < 4<<20 || got.RxBytes < 4<<20:
			t.Errorf("%s p0: listed %d bytes sent, %d received; each way carried 4 MiB", c.ns.Name(), got.TxBytes, got.RxBytes)
		}
	}
}

// settledRx returns how many frames n took by reference and how many it delivered,
// once delivery has caught up with what was taken (a frame is counted as taken when it
// is written to the NIC, and as received only when the stack has it).
func settledRx(n *NIC) (byRef, all uint64) {
	testwait.Until(5*time.Second, func() bool {
		byRef, all = n.RxByReference(), n.Counters().RxFrames.Load()
		return all >= byRef
	})
	return byRef, all
}

// foreignPkt is a frame by reference that is not a NIC's: a NIC copies it.
type foreignPkt struct {
	b        []byte
	released *atomic.Int64
}

func (p foreignPkt) CopyTo(b []byte) int { return copy(b, p.b) }
func (p foreignPkt) Release()            { p.released.Add(1) }
func (p foreignPkt) Clone() frame.Packet { return p }

// TestForeignReferenceCopied: a frame by reference of another kind is copied in whole,
// its head from the frame's buffer, and the NIC does not release the caller's
// reference.
func TestForeignReferenceCopied(t *testing.T) {
	ns := newNS(t, "a")
	nic, err := ns.AddNIC(NICConfig{Name: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	ns.AddAddress("eth0", netip.MustParsePrefix("10.0.0.1/24"))
	pc, err := ns.ListenPacket("udp", "0.0.0.0:9")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	udp := testUDPFrame(t) // broadcast to 10.0.0.255:9, 16 zero bytes of payload
	copy(udp[len(udp)-16:], "by reference 123")
	var released atomic.Int64
	// The whole 58-byte frame is the head, in the buffer: the packet's own bytes (zeros
	// here) are superseded by it.
	f := frame.Frame{Buf: udp, N: len(udp), Meta: frame.Meta{CsumValid: true}, Pkt: foreignPkt{b: make([]byte, len(udp)), released: &released}}
	if n, err := nic.WriteFrames([]frame.Frame{f}); n != 1 || err != nil {
		t.Fatalf("WriteFrames = %d, %v", n, err)
	}
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, _, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "by reference 123" {
		t.Fatalf("ReadFrom = %q, %v; want the frame's payload", buf[:n], err)
	}
	if released.Load() != 0 {
		t.Errorf("the NIC released the caller's reference")
	}
}

// TestPacketSlicesMatchCopy: a NIC's frame by reference shows the same bytes in place
// (Slices, what a TAP writes from) as copied out (CopyTo), and its head in Buf.
func TestPacketSlicesMatchCopy(t *testing.T) {
	a, _, na, _ := pairedNICs(t)
	pc, err := a.ListenPacketWith("udp", "192.168.0.1:0", PacketOptions{Broadcast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// To the subnet's broadcast address: no ARP first, so the frame is the datagram.
	dst := &net.UDPAddr{IP: net.IPv4(192, 168, 0, 3), Port: 9}
	payload := bytes.Repeat([]byte("slices"), 200)
	if _, err := pc.WriteTo(payload, dst); err != nil {
		t.Fatal(err)
	}
	frames := []frame.Frame{{Buf: make([]byte, na.Info().MaxFrame)}}
	if n, err := na.ReadPackets(frames); n != 1 || err != nil {
		t.Fatalf("ReadPackets = %d, %v", n, err)
	}
	f := &frames[0]
	if f.Pkt == nil {
		t.Fatal("ReadPackets returned a plain frame")
	}
	defer f.Pkt.Release()
	copied := make([]byte, f.N)
	copied = copied[:f.Pkt.CopyTo(copied)]
	inPlace := bytes.Join(f.Slices(nil), nil)
	if !bytes.Equal(inPlace, copied) || len(copied) != f.N || !bytes.HasSuffix(copied, payload) {
		t.Fatalf("Slices gave %d bytes, CopyTo %d, N %d; equal %v; payload at the end %v", len(inPlace), len(copied), f.N, bytes.Equal(inPlace, copied), bytes.HasSuffix(copied, payload))
	}
	if !bytes.Equal(f.Buf[:frame.PacketHead], copied[:frame.PacketHead]) {
		t.Fatal("the frame's head in Buf differs from its bytes")
	}
}

// TestRewrittenHeadDelivered: a NIC's frame whose head was rewritten on the way (as a
// router rewrites MACs and addresses) reaches the other namespace as rewritten, while
// the bytes behind the head are still shared with the sender.
func TestRewrittenHeadDelivered(t *testing.T) {
	a, b, na, nb := pairedNICs(t)
	rx, err := b.ListenPacket("udp", "192.168.0.2:9") // unicast only: no broadcasts
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := a.ListenPacketWith("udp", "192.168.0.1:0", PacketOptions{Broadcast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	payload := bytes.Repeat([]byte("rewritten head "), 60)
	if _, err := tx.WriteTo(payload, &net.UDPAddr{IP: net.IPv4(192, 168, 0, 3), Port: 9}); err != nil {
		t.Fatal(err)
	}
	frames := []frame.Frame{{Buf: make([]byte, na.Info().MaxFrame)}}
	if n, err := na.ReadPackets(frames); n != 1 || err != nil || frames[0].Pkt == nil {
		t.Fatalf("ReadPackets = %d, %v (by reference: %v)", n, err, frames[0].Pkt != nil)
	}
	f := &frames[0]
	defer f.Pkt.Release()
	// Broadcast to 192.168.0.3 becomes unicast to b: destination MAC, IP and checksum.
	mac := nb.MAC()
	copy(f.Buf[0:6], mac[:])
	ip := header.IPv4(f.Buf[14:frame.PacketHead])
	ip.SetDestinationAddress(toTCPIP(netip.MustParseAddr("192.168.0.2")))
	ip.SetChecksum(0)
	ip.SetChecksum(^ip.CalculateChecksum())
	if n, err := nb.WriteFrames(frames); n != 1 || err != nil {
		t.Fatalf("WriteFrames = %d, %v", n, err)
	}
	rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, _, err := rx.ReadFrom(buf)
	if err != nil || !bytes.Equal(buf[:n], payload) {
		t.Fatalf("b's unicast socket: ReadFrom = %d bytes, %v; want the %d-byte payload", n, err, len(payload))
	}
}
