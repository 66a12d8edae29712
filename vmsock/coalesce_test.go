package vmsock

import (
	"bytes"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/offload"
)

// guestSegments is a guest's TCP/IPv4 stream of n full segments as its kernel sends
// it over a stream backend (no offloads: MTU-sized, DF, IDs counting up).
func guestSegments(t testing.TB, n int, sport uint16) [][]byte {
	t.Helper()
	var out [][]byte
	for i := range n {
		e := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Id: uint16(100 + i), Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
			SrcIP: net.IPv4(10, 0, 2, 15), DstIP: net.IPv4(10, 0, 2, 2)}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 5001, Seq: uint32(7 + i*1448), Ack: 1, ACK: true, Window: 501}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		pay := bytes.Repeat([]byte{byte(i)}, 1448)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, e, ip, tcp, gopacket.Payload(pay)); err != nil {
			t.Fatal(err)
		}
		out = append(out, buf.Bytes())
	}
	return out
}

// TestStreamCoalesces: a guest's TCP segments on a stream socket reach the switch as
// superframes (fewer frames, counted as coalesced) that segment back into exactly
// the segments sent, in order, another flow's segment between them kept apart; with
// NoCoalesce every segment is a frame of its own and the port's buffers stay
// MTU-sized.
func TestStreamCoalesces(t *testing.T) {
	for _, noCoalesce := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "vm.sock")
		ports := make(chan frame.Port, 1)
		l, err := Listen(Options{Path: path, NoCoalesce: noCoalesce, OnPort: func(p frame.Port, _ string) { ports <- p }})
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		var p frame.Port
		select {
		case p = <-ports:
		case <-time.After(5 * time.Second):
			t.Fatal("no port")
		}
		segs := guestSegments(t, 20, 40000)
		sent := append(append(append([][]byte{}, segs[:8]...), guestSegments(t, 1, 40001)[0]), segs[8:]...)
		var wire bytes.Buffer
		for _, s := range sent {
			writeQEMU(&wire, s)
		}
		if _, err := c.Write(wire.Bytes()); err != nil {
			t.Fatal(err)
		}
		maxFrame := p.Info().MaxFrame
		if want := frame.MaxFrameFor(1500, false); noCoalesce != (maxFrame == want) {
			t.Fatalf("NoCoalesce %v: MaxFrame %d", noCoalesce, maxFrame)
		}
		var got [][]byte
		frames := 0
		for len(got) < len(sent) {
			fs := make([]frame.Frame, 64)
			for i := range fs {
				fs[i].Buf = make([]byte, maxFrame)
			}
			n, err := p.ReadFrames(fs)
			if err != nil {
				t.Fatal(err)
			}
			frames += n
			for i := range fs[:n] {
				if _, err := offload.Segment(&fs[i], 1500, func(b *frame.Buf) bool {
					got = append(got, bytes.Clone(b.Bytes()))
					b.Release()
					return true
				}); err != nil {
					t.Fatal(err)
				}
			}
		}
		for i := range sent {
			if !bytes.Equal(got[i], sent[i]) {
				t.Fatalf("NoCoalesce %v: segment %d differs", noCoalesce, i)
			}
		}
		st := l.Stats()
		if noCoalesce && (frames != len(sent) || st.Coalesced != 0) {
			t.Fatalf("NoCoalesce: %d frames for %d segments, %d coalesced", frames, len(sent), st.Coalesced)
		}
		if !noCoalesce && (frames >= len(sent) || st.Coalesced != uint64(len(sent)-frames)) {
			t.Fatalf("%d frames for %d segments, coalesced %d", frames, len(sent), st.Coalesced)
		}
		c.Close()
		l.Close()
	}
}
