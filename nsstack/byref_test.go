package nsstack

import (
	"bytes"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
)

// refCountingNIC is a NIC whose WriteFrames counts the frames it is given by reference.
type refCountingNIC struct {
	*NIC
	byRef, plain atomic.Int64
}

func (n *refCountingNIC) WriteFrames(frames []frame.Frame) (int, error) {
	for i := range frames {
		if frames[i].Pkt != nil {
			n.byRef.Add(1)
		} else {
			n.plain.Add(1)
		}
	}
	return n.NIC.WriteFrames(frames)
}

// TestFramesCrossByReference: between two NICs the frames go by reference, not as
// copies, and TCP both ways still delivers every byte intact (transfer checks them;
// the sender keeps the shared buffers for retransmission, so a receiver writing into
// them would show). Under -race, gVisor's leak checker (TestMain) also checks that
// every shared packet's references are given back.
func TestFramesCrossByReference(t *testing.T) {
	a, b, na, nb := pairedNICs(t)
	ca, cb := &refCountingNIC{NIC: na}, &refCountingNIC{NIC: nb}
	stop := Connect(ca, cb)
	defer stop()
	transfer(t, b, a, ":5000", "192.168.0.2:5000", 4<<20)
	transfer(t, a, b, ":5001", "192.168.0.1:5001", 4<<20)
	for _, n := range []*refCountingNIC{ca, cb} {
		if n.byRef.Load() == 0 || n.plain.Load() != 0 {
			t.Errorf("%s was written %d frames by reference and %d plain; want all by reference", n.Info().Name, n.byRef.Load(), n.plain.Load())
		}
	}
}

// foreignPkt is a frame by reference that is not a NIC's: a NIC copies it.
type foreignPkt struct {
	b        []byte
	released *atomic.Int64
}

func (p foreignPkt) CopyTo(b []byte) int { return copy(b, p.b) }
func (p foreignPkt) Release()            { p.released.Add(1) }

// TestForeignReferenceCopied: a frame by reference of another kind is copied in whole,
// and the NIC does not release the caller's reference.
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
	head := make([]byte, len(udp))
	copy(head, udp[:20]) // a short head: the rest is zeros a NIC must not read
	f := frame.Frame{Buf: head, N: len(udp), Meta: frame.Meta{CsumValid: true}, Pkt: foreignPkt{b: udp, released: &released}}
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
