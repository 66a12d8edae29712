package nsstack

import (
	"bytes"
	"encoding/binary"
	"maps"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/internal/testwait"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// TestNICQueuesBounded: both directions of a NIC queue at most QueueLen packets, drop
// and count the rest without blocking, and hand out (or deliver) the queued ones intact.
// Under -race, TestMain's reference leak check also covers the packets left queued
// when the namespace closes.
func TestNICQueuesBounded(t *testing.T) {
	const qlen = 4
	ns := newNS(t, "a")
	nic, err := ns.AddNIC(NICConfig{Name: "eth0", QueueLen: qlen})
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.AddAddress("eth0", netip.MustParsePrefix("10.0.0.1/24")); err != nil {
		t.Fatal(err)
	}

	// Outbound: nobody reads the NIC, so broadcasts past the queue's room are dropped.
	c, err := ns.ListenPacketWith("udp4", "0.0.0.0:9", PacketOptions{NIC: "eth0", Broadcast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := bytes.Repeat([]byte("x"), 1000) // a view of its own behind the headers
	for range 3 * qlen {
		c.WriteTo(payload, &net.UDPAddr{IP: net.IPv4(10, 0, 0, 255), Port: 9})
	}
	tx := nic.Counters().Snapshot()
	if tx.TxFrames > qlen || tx.TxDropped < 2*qlen {
		t.Fatalf("after %d sends into a %d-deep queue: tx %d, tx_dropped %d", 3*qlen, qlen, tx.TxFrames, tx.TxDropped)
	}
	// Read one frame at a time; the last one stays queued for Close to release.
	frames := []frame.Frame{{Buf: make([]byte, frame.MaxSuperFrame)}}
	udp := 0
	for range tx.TxFrames - 1 {
		if n, err := nic.ReadFrames(frames); n != 1 || err != nil {
			t.Fatalf("ReadFrames = %d, %v", n, err)
		}
		if b := frames[0].Bytes(); len(b) > 14+20+8 && b[14+9] == 17 && bytes.Equal(b[14+20+8:], payload) {
			udp++
		}
	}
	if udp == 0 {
		t.Error("no frame read carried the UDP payload intact")
	}

	// Inbound: one call with more frames than fit. The delivery goroutine starts after
	// the call, so exactly qlen are taken. Frames of a bad length are refused, a frame
	// with a wrong checksum is taken and dropped.
	good := testFrame(t, 0x88b5) // IEEE local experimental: gVisor ignores it
	bad := testUDPFrame(t)
	bad[len(bad)-1] ^= 0xff
	in := []frame.Frame{{Buf: good[:10], N: 10}, {Buf: bad, N: len(bad)}}
	for range 2 * qlen {
		in = append(in, frame.Frame{Buf: good, N: len(good)})
	}
	if n, err := nic.WriteFrames(in); n != qlen+1 || err != nil {
		t.Fatalf("WriteFrames(%d frames) = %d, %v; want %d (queue bound, bad checksum taken)", len(in), n, err, qlen+1)
	}
	rx := nic.Counters().Snapshot()
	if want := uint64(len(in) - qlen); rx.RxDropped != want {
		t.Errorf("rx_dropped = %d, want %d", rx.RxDropped, want)
	}
	// Each drop under its reason; queue_full counts the outbound drops above too.
	if got, want := nic.Drops(), map[string]uint64{"too_short": 1, "bad_checksum": 1, "queue_full": qlen + tx.TxDropped}; !maps.Equal(got, want) {
		t.Errorf("drops by reason = %v, want %v", got, want)
	}
	testwait.Value(t, 5*time.Second, func() (uint64, bool) { n := nic.Counters().RxFrames.Load(); return n, n >= qlen },
		"rx_frames = %d delivered (rx_frames)", qlen)
	if got, want := nic.Counters().RxBytes.Load(), uint64(qlen*len(good)); got != want {
		t.Errorf("rx_bytes = %d, want %d", got, want)
	}
}

// testFrame returns a 60-byte broadcast frame of the given EtherType.
func testFrame(t *testing.T, etherType uint16) []byte {
	t.Helper()
	b := make([]byte, 60)
	copy(b, bytes.Repeat([]byte{0xff}, 6))
	copy(b[6:], []byte{2, 0, 0, 0, 0, 9})
	binary.BigEndian.PutUint16(b[12:], etherType)
	return b
}

// testUDPFrame returns a broadcast IPv4 UDP frame with valid checksums.
func testUDPFrame(t *testing.T) []byte {
	t.Helper()
	const ulen = header.UDPMinimumSize + 16
	b := testFrame(t, uint16(header.IPv4ProtocolNumber))
	b = append(b[:14], make([]byte, header.IPv4MinimumSize+ulen)...)
	ip := header.IPv4(b[14:])
	src, dst := netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("10.0.0.255")
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(ip)), TTL: 64, Protocol: uint8(header.UDPProtocolNumber),
		SrcAddr: toTCPIP(src), DstAddr: toTCPIP(dst)})
	ip.SetChecksum(^ip.CalculateChecksum())
	u := header.UDP(ip[header.IPv4MinimumSize:])
	u.Encode(&header.UDPFields{SrcPort: 9, DstPort: 9, Length: ulen})
	xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, toTCPIP(src), toTCPIP(dst), ulen)
	u.SetChecksum(^checksum.Checksum(u, xsum))
	if !l4ChecksumOK(b) {
		t.Fatal("testUDPFrame: checksum not valid")
	}
	return b
}
