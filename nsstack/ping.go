package nsstack

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/raw"
	"gvisor.dev/gvisor/pkg/waiter"
)

// ICMPError is the answer to an echo request that a router or host refused: ping(8)'s
// "From 10.0.0.1 icmp_seq=1 Destination Net Unreachable".
type ICMPError struct {
	// From is the address that sent the ICMP error.
	From netip.Addr
	// Type and Code are the ICMP (or ICMPv6) type and code.
	Type, Code uint8
	// V6 reports an ICMPv6 message.
	V6 bool
}

func (e *ICMPError) Error() string { return fmt.Sprintf("From %s %s", e.From, e.Text()) }

// Text is the error as ping(8) words it, e.g. "Destination Net Unreachable".
func (e *ICMPError) Text() string {
	if e.V6 {
		switch header.ICMPv6Type(e.Type) {
		case header.ICMPv6DstUnreachable:
			switch e.Code {
			case 0:
				return "Destination unreachable: No route"
			case 1:
				return "Destination unreachable: Administratively prohibited"
			case 3:
				return "Destination unreachable: Address unreachable"
			case 4:
				return "Destination unreachable: Port unreachable"
			}
			return fmt.Sprintf("Destination unreachable: code %d", e.Code)
		case header.ICMPv6PacketTooBig:
			return "Packet too big"
		case header.ICMPv6TimeExceeded:
			return "Time exceeded: Hop limit"
		}
		return fmt.Sprintf("ICMPv6 type %d code %d", e.Type, e.Code)
	}
	switch header.ICMPv4Type(e.Type) {
	case header.ICMPv4DstUnreachable:
		if int(e.Code) < len(unreachable4) && unreachable4[e.Code] != "" {
			return unreachable4[e.Code]
		}
		return fmt.Sprintf("Dest Unreachable, Bad Code: %d", e.Code)
	case header.ICMPv4TimeExceeded:
		return "Time to live exceeded"
	}
	return fmt.Sprintf("ICMP type %d code %d", e.Type, e.Code)
}

// unreachable4 words ICMPv4 destination-unreachable codes as iputils ping does.
var unreachable4 = [...]string{
	0:  "Destination Net Unreachable",
	1:  "Destination Host Unreachable",
	2:  "Destination Protocol Unreachable",
	3:  "Destination Port Unreachable",
	4:  "Frag needed",
	5:  "Source Route Failed",
	6:  "Destination Net Unknown",
	7:  "Destination Host Unknown",
	9:  "Destination Net Prohibited",
	10: "Destination Host Prohibited",
	13: "Communication prohibited by filter",
}

// Ping sends one ICMP or ICMPv6 echo request to dst and waits for its reply. When a
// router or the destination answers with an ICMP error about this request instead,
// Ping returns it as an *ICMPError.
func (ns *Namespace) Ping(ctx context.Context, dst netip.Addr, seq int, payload []byte) (time.Duration, error) {
	transport, proto := icmp.ProtocolNumber4, tcpip.NetworkProtocolNumber(ipv4.ProtocolNumber)
	if dst.Is6() && !dst.Is4In6() {
		transport, proto = icmp.ProtocolNumber6, ipv6.ProtocolNumber
	}
	dst = dst.Unmap()
	fail := func(e any) (time.Duration, error) {
		return 0, fmt.Errorf("namespace %q: ping %v: %v", ns.name, dst, e)
	}
	var wq waiter.Queue
	ep, e := ns.st.NewEndpoint(transport, proto, &wq)
	if e != nil {
		return fail(e)
	}
	defer ep.Close()
	we, ch := waiter.NewChannelEntry(waiter.ReadableEvents)
	wq.EventRegister(&we)
	defer wq.EventUnregister(&we)
	// gVisor's ping sockets drop the ICMP errors about them (their HandleError is
	// empty), so a raw ICMP endpoint, alive only while this ping waits, watches for
	// errors that quote our request.
	var rwq waiter.Queue
	rep, e := raw.NewEndpoint(ns.st, proto, transport, &rwq)
	if e != nil {
		return fail(e)
	}
	defer rep.Close()
	rwe, rch := waiter.NewChannelEntry(waiter.ReadableEvents)
	rwq.EventRegister(&rwe)
	defer rwq.EventUnregister(&rwe)

	if e := ep.Connect(tcpip.FullAddress{Addr: toTCPIP(dst)}); e != nil {
		return fail(e)
	}
	msg := make([]byte, header.ICMPv4MinimumSize+len(payload))
	if transport == icmp.ProtocolNumber4 {
		msg[0] = byte(header.ICMPv4Echo)
	} else {
		msg[0] = byte(header.ICMPv6EchoRequest)
	}
	binary.BigEndian.PutUint16(msg[6:8], uint16(seq))
	copy(msg[8:], payload)
	start := time.Now()
	if _, e := ep.Write(bytesReader(msg), tcpip.WriteOptions{}); e != nil {
		return fail(e)
	}
	for {
		var out writerBuf
		_, e := ep.Read(&out, tcpip.ReadOptions{})
		if e == nil {
			// gVisor's ping sockets return the ICMP message; match our sequence number.
			if len(out) >= 8 && binary.BigEndian.Uint16(out[6:8]) == uint16(seq) {
				return time.Since(start), nil
			}
			continue
		}
		if _, wouldBlock := e.(*tcpip.ErrWouldBlock); !wouldBlock {
			return fail(e)
		}
		for {
			var pkt writerBuf
			rr, e := rep.Read(&pkt, tcpip.ReadOptions{NeedRemoteAddr: true})
			if e != nil {
				break
			}
			from, _ := netip.AddrFromSlice(rr.RemoteAddr.Addr.AsSlice())
			if ie := quotedError(pkt, proto == ipv6.ProtocolNumber, from, dst, seq); ie != nil {
				return 0, ie
			}
		}
		select {
		case <-ch:
		case <-rch:
		case <-ctx.Done():
			return 0, fmt.Errorf("namespace %q: ping %v seq %d: %w", ns.name, dst, seq, ctx.Err())
		}
	}
}

// quotedError parses what a raw ICMP endpoint read (an IPv4 packet with its header, or
// an ICMPv6 message alone) and returns the error it carries if it quotes our echo
// request to dst with sequence number seq; from is the packet's source.
func quotedError(pkt []byte, v6 bool, from, dst netip.Addr, seq int) *ICMPError {
	var msg []byte
	if !v6 {
		ip := header.IPv4(pkt)
		if len(pkt) < header.IPv4MinimumSize || int(ip.HeaderLength()) > len(pkt) {
			return nil
		}
		msg = pkt[ip.HeaderLength():]
	} else {
		msg = pkt
	}
	if len(msg) < 8 {
		return nil
	}
	typ, code := msg[0], msg[1]
	inner := msg[8:]
	var innerDst netip.Addr
	var echo []byte
	if !v6 {
		if t := header.ICMPv4Type(typ); t != header.ICMPv4DstUnreachable && t != header.ICMPv4TimeExceeded {
			return nil
		}
		ip := header.IPv4(inner)
		if len(inner) < header.IPv4MinimumSize || int(ip.HeaderLength()) > len(inner) || ip.Protocol() != uint8(header.ICMPv4ProtocolNumber) {
			return nil
		}
		innerDst = netip.AddrFrom4(ip.DestinationAddress().As4())
		echo = inner[ip.HeaderLength():]
	} else {
		switch header.ICMPv6Type(typ) {
		case header.ICMPv6DstUnreachable, header.ICMPv6TimeExceeded, header.ICMPv6PacketTooBig:
		default:
			return nil
		}
		ip := header.IPv6(inner)
		if len(inner) < header.IPv6MinimumSize || ip.NextHeader() != uint8(header.ICMPv6ProtocolNumber) {
			return nil
		}
		innerDst = netip.AddrFrom16(ip.DestinationAddress().As16())
		echo = inner[header.IPv6MinimumSize:]
	}
	if innerDst != dst || len(echo) < 8 || binary.BigEndian.Uint16(echo[6:8]) != uint16(seq) {
		return nil
	}
	return &ICMPError{From: from, Type: typ, Code: code, V6: v6}
}
