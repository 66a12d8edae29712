package nsstack

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// EchoRequest is an ICMP or ICMPv6 echo request a terminating NIC received for an
// address the namespace does not own: the guest at Src pinged Dst. Its methods send
// answers from the namespace's goroutines; call them from the caller's own goroutine,
// never from inside Terminators.Echo.
type EchoRequest struct {
	// Src is the guest's address, Dst the address it pinged.
	Src, Dst netip.Addr
	// Ident and Seq are the echo identifier and sequence number.
	Ident, Seq uint16
	// Payload is the echo data (a copy, the handler's to keep).
	Payload []byte

	ns    *Namespace
	nic   tcpip.NICID
	quote []byte // the request's IP header and first 8 ICMP bytes, for an error
}

// V6 reports an ICMPv6 echo request.
func (r *EchoRequest) V6() bool { return !r.Dst.Is4() }

// Reply sends an echo reply with sequence number seq and payload from Dst to Src,
// carrying the request's identifier: the answer the real destination gave.
func (r *EchoRequest) Reply(seq uint16, payload []byte) error {
	typ := byte(header.ICMPv4EchoReply)
	if r.V6() {
		typ = byte(header.ICMPv6EchoReply)
	}
	var h [8]byte
	h[0] = typ
	binary.BigEndian.PutUint16(h[4:6], r.Ident)
	binary.BigEndian.PutUint16(h[6:8], seq)
	return r.send(toTCPIP(r.Dst), h, payload)
}

// Prohibit answers the request with a destination unreachable, communication
// administratively prohibited (ICMPv4 code 13, ICMPv6 code 1), sent from the NIC's
// own address as a filtering router does.
func (r *EchoRequest) Prohibit() error {
	var h [8]byte
	if r.V6() {
		h[0], h[1] = byte(header.ICMPv6DstUnreachable), byte(header.ICMPv6Prohibited)
	} else {
		h[0], h[1] = byte(header.ICMPv4DstUnreachable), byte(header.ICMPv4AdminProhibited)
	}
	return r.send(tcpip.Address{}, h, r.quote)
}

// send writes one ICMP message (8-byte header h, then payload) from src (zero: the
// NIC's own address) to the guest.
func (r *EchoRequest) send(src tcpip.Address, h [8]byte, payload []byte) error {
	proto, tproto := tcpip.NetworkProtocolNumber(ipv4.ProtocolNumber), header.ICMPv4ProtocolNumber
	if r.V6() {
		proto, tproto = ipv6.ProtocolNumber, header.ICMPv6ProtocolNumber
	}
	rt, e := r.ns.st.FindRoute(r.nic, src, toTCPIP(r.Src), proto, false)
	if e != nil {
		return fmt.Errorf("namespace %q: icmp to %v: %s", r.ns.name, r.Src, e)
	}
	defer rt.Release()
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: int(rt.MaxHeaderLength()) + len(h),
		Payload:            buffer.MakeWithData(payload),
	})
	defer pkt.DecRef()
	b := pkt.TransportHeader().Push(len(h))
	copy(b, h[:])
	pkt.TransportProtocolNumber = tproto
	if r.V6() {
		ih := header.ICMPv6(b)
		ih.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: ih, Src: rt.LocalAddress(), Dst: rt.RemoteAddress(),
			PayloadCsum: checksum.Checksum(payload, 0), PayloadLen: len(payload)}))
	} else {
		ih := header.ICMPv4(b)
		ih.SetChecksum(^checksum.Checksum(ih, checksum.Checksum(payload, 0)))
	}
	if e := rt.WritePacket(stack.NetworkHeaderParams{Protocol: tproto, TTL: rt.DefaultTTL()}, pkt); e != nil {
		return fmt.Errorf("namespace %q: icmp to %v: %s", r.ns.name, r.Src, e)
	}
	return nil
}

// echoHandler returns the ICMP transport handler of a terminating NIC: echo
// requests to addresses not in own go to echo (or are dropped when echo is nil);
// everything else goes on as before (gVisor answers echo requests to the
// namespace's own addresses). A promiscuous NIC holds a temporary address for every
// destination it sees, so the stack's own idea of "local" cannot tell them apart.
func (ns *Namespace) echoHandler(nicID tcpip.NICID, proto tcpip.NetworkProtocolNumber, own map[netip.Addr]bool, echo func(*EchoRequest)) func(stack.TransportEndpointID, *stack.PacketBuffer) bool {
	want := byte(header.ICMPv4Echo)
	if proto == ipv6.ProtocolNumber {
		want = byte(header.ICMPv6EchoRequest)
	}
	return func(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
		// The ICMP message whole: gVisor's parser took 8 bytes of an ICMPv4 header
		// but only 4 of an ICMPv6 one, the rest is in Data.
		th := pkt.TransportHeader().Slice()
		if len(th) < 4 || th[0] != want || th[1] != 0 {
			return false
		}
		if own[fromTCPIP(id.LocalAddress)] {
			return false // ours: gVisor answers
		}
		if echo == nil {
			return true // dropped: never answered on the destination's behalf
		}
		msg := append(append([]byte(nil), th...), pkt.Data().AsRange().ToSlice()...)
		if len(msg) < 8 {
			return true
		}
		if proto == ipv4.ProtocolNumber && checksum.Checksum(msg, 0) != 0xffff {
			return true // corrupt: dropped, as gVisor would
		}
		nh := pkt.NetworkHeader().Slice()
		quote := make([]byte, 0, len(nh)+8)
		quote = append(append(quote, nh...), msg[:8]...)
		echo(&EchoRequest{
			Src: fromTCPIP(id.RemoteAddress), Dst: fromTCPIP(id.LocalAddress),
			Ident: binary.BigEndian.Uint16(msg[4:6]), Seq: binary.BigEndian.Uint16(msg[6:8]),
			Payload: msg[8:], ns: ns, nic: nicID, quote: quote,
		})
		return true
	}
}
