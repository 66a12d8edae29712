package portsec

import (
	"encoding/binary"
	"net/netip"

	"github.com/vnetd/vnetd/frame"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Ethernet types and protocol numbers the checks read.
const (
	etherVLAN  = 0x8100
	etherARP   = 0x0806
	etherIPv4  = 0x0800
	etherIPv6  = 0x86dd
	protoUDP   = 17
	protoICMP6 = 58
)

// check returns why f may not be sent from the port, or pass.
func (p *Port) check(c *compiled, f *frame.Frame) int {
	if c == nil {
		return pass
	}
	b := f.Buf[:min(f.N, len(f.Buf))] // a frame by reference: its head
	if len(b) < frame.EthHeaderLen {
		return pass // the switch drops it as too short
	}
	if !c.macOK(b[6:12]) {
		return dropSrcMAC
	}
	off := 12
	et := binary.BigEndian.Uint16(b[off:])
	if et == etherVLAN && len(b) >= off+6 {
		off += 4
		et = binary.BigEndian.Uint16(b[off:])
	}
	off += 2
	l3 := b[off:]
	switch et {
	case etherARP:
		return p.checkARP(c, l3)
	case etherIPv4:
		if len(l3) < header.IPv4MinimumSize {
			return pass
		}
		src := netip.AddrFrom4([4]byte(l3[12:16]))
		if c.pol.DHCPSnooping && l3[9] == protoUDP {
			p.snoop.watchClient(b, off)
		}
		if c.anySource || !c.check4 || p.v4OK(c, src) {
			return pass
		}
		return dropIPSource
	case etherIPv6:
		if len(l3) < header.IPv6MinimumSize {
			return pass
		}
		src := netip.AddrFrom16([16]byte(l3[8:24]))
		if !c.anySource && c.check6 && !src.IsUnspecified() && !prefixesHold(c.v6, src) {
			return dropIPSource
		}
		if l3[6] == protoICMP6 && len(l3) > header.IPv6MinimumSize {
			switch header.ICMPv6Type(l3[header.IPv6MinimumSize]) {
			case header.ICMPv6RouterSolicit, header.ICMPv6RouterAdvert, header.ICMPv6NeighborSolicit, header.ICMPv6NeighborAdvert:
				return p.checkND(c, f, off)
			}
		}
	}
	return pass
}

// v4OK reports whether the port may use a as an IPv4 source or claim it.
func (p *Port) v4OK(c *compiled, a netip.Addr) bool {
	return a.IsUnspecified() || prefixesHold(c.v4, a) || c.pol.DHCPSnooping && p.snoop.holds(a, p.now)
}

// checkARP checks the sender of an ARP packet (request or reply).
func (p *Port) checkARP(c *compiled, l3 []byte) int {
	a := header.ARP(l3)
	if !a.IsValid() {
		return pass // not Ethernet/IPv4 ARP: nobody's neighbour table takes it
	}
	if !c.macOK(a.HardwareAddressSender()) {
		return dropARP
	}
	if c.check4 && !p.v4OK(c, netip.AddrFrom4([4]byte(a.ProtocolAddressSender()))) {
		return dropARP
	}
	return pass
}

// checkND checks an NDP message: the NA target and the link-layer address options.
// The message may lie beyond a by-reference frame's head: it is copied out (NDP is
// rare and small).
func (p *Port) checkND(c *compiled, f *frame.Frame, off int) int {
	var b []byte
	if f.Pkt != nil && len(f.Buf) < f.N {
		buf := frame.GetBuf(f.N)
		defer buf.Release()
		g := frame.Frame{Buf: buf.B, N: f.N, Pkt: f.Pkt}
		copy(g.Buf, f.Buf[:min(f.N, frame.PacketHead)])
		g.Fill()
		b = g.Bytes()
	} else {
		if f.Pkt != nil {
			f.Fill()
		}
		b = f.Bytes()
	}
	if len(b) < off+header.IPv6MinimumSize+header.ICMPv6MinimumSize {
		return pass
	}
	ip := header.IPv6(b[off:])
	end := off + header.IPv6MinimumSize + int(ip.PayloadLength())
	if end > len(b) {
		return pass // truncated: gVisor drops it
	}
	icmp := header.ICMPv6(b[off+header.IPv6MinimumSize : end])
	var opts header.NDPOptions
	body := icmp.MessageBody()
	switch icmp.Type() {
	case header.ICMPv6NeighborAdvert:
		if len(body) < header.NDPNAMinimumSize {
			return pass
		}
		na := header.NDPNeighborAdvert(body)
		if !p.v6OK(c, na.TargetAddress()) {
			return dropND
		}
		opts = na.Options()
	case header.ICMPv6NeighborSolicit:
		if len(body) < header.NDPNSMinimumSize {
			return pass
		}
		opts = header.NDPNeighborSolicit(body).Options()
	case header.ICMPv6RouterSolicit:
		if len(body) < header.NDPRSMinimumSize {
			return pass
		}
		opts = header.NDPRouterSolicit(body).Options()
	case header.ICMPv6RouterAdvert:
		if len(body) < header.NDPRAMinimumSize {
			return pass
		}
		opts = header.NDPRouterAdvert(body).Options()
	}
	it, err := opts.Iter(true)
	if err != nil {
		return pass // malformed options: gVisor drops the message
	}
	for {
		o, done, err := it.Next()
		if err != nil || done {
			return pass
		}
		var lla tcpip.LinkAddress
		switch o := o.(type) {
		case header.NDPSourceLinkLayerAddressOption:
			lla = o.EthernetAddress()
		case header.NDPTargetLinkLayerAddressOption:
			lla = o.EthernetAddress()
		default:
			continue
		}
		if lla != "" && !c.macOK([]byte(lla)) {
			return dropND
		}
	}
}

// v6OK reports whether the port may claim the IPv6 address a.
func (p *Port) v6OK(c *compiled, a tcpip.Address) bool {
	if !c.check6 {
		return true
	}
	addr := netip.AddrFrom16(a.As16())
	return addr.IsUnspecified() || prefixesHold(c.v6, addr)
}
