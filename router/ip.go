package router

import (
	"encoding/binary"
	"net/netip"

	"github.com/vnetd/vnetd/frame"
)

// ICMP types and codes used.
const (
	icmp4EchoReply    = 0
	icmp4Unreach      = 3
	icmp4EchoRequest  = 8
	icmp4TimeExceeded = 11
	code4NetUnreach   = 0
	code4FragNeeded   = 4

	icmp6Unreach      = 1
	icmp6TooBig       = 2
	icmp6TimeExceeded = 3
	icmp6EchoRequest  = 128
	icmp6EchoReply    = 129
	icmp6RS           = 133
	icmp6RA           = 134
	icmp6NS           = 135
	icmp6NA           = 136
	code6NoRoute      = 0
)

// l3Size is the size the egress MTU is checked against: the IP packet, or for a GSO
// superframe the size of each segment it will be cut into.
func l3Size(f *frame.Frame, n int) int {
	if f.Meta.GSO != frame.GSONone && f.Meta.HdrLen > frame.EthHeaderLen {
		return int(f.Meta.HdrLen) - frame.EthHeaderLen + int(f.Meta.GSOSize)
	}
	return n - frame.EthHeaderLen
}

func (i *iface) inputIPv4(f *frame.Frame, unicast bool) {
	b := f.Bytes()
	ip := b[14:]
	if len(ip) < 20 || ip[0]>>4 != 4 {
		f.Fill()
		i.drop(dropMalformed)
		return
	}
	ihl := int(ip[0]&0xf) * 4
	// Forwarded by reference if the IP header is in the frame's head, the frame has no
	// padding behind the packet, and it is not ICMP (which the router may answer).
	byRef := f.Pkt != nil && 14+ihl <= frame.PacketHead && ip[9] != 1 &&
		(f.Meta.GSO != frame.GSONone || 14+int(binary.BigEndian.Uint16(ip[2:4])) == f.N)
	if !byRef {
		f.Fill() // everything below reads b and ip, the same memory
	}
	tot := int(binary.BigEndian.Uint16(ip[2:4]))
	if ihl < 20 || ihl > len(ip) {
		i.drop(dropMalformed)
		return
	}
	n := len(b)
	if f.Meta.GSO == frame.GSONone {
		if tot < ihl || tot > len(ip) {
			i.drop(dropMalformed)
			return
		}
		ip = ip[:tot]
		n = 14 + tot
	}
	dst := netip.AddrFrom4([4]byte(ip[16:20]))
	echo := ip[9] == 1 && len(ip) >= ihl+8 && ip[ihl] == icmp4EchoRequest && f.Meta.GSO == frame.GSONone
	v, rt := i.decide4(dst, unicast, echo, ip[8], l3Size(f, n), ip[6]&0x40 != 0)
	switch v {
	case verdictEcho:
		i.echo4(ip, ihl)
		return
	case verdictLocal:
		i.drop(dropLocal)
		return
	case verdictTTL:
		i.drop(dropTTL)
		f.Fill() // the error quotes the packet
		i.icmpError4(ip, icmp4TimeExceeded, 0, 0)
		return
	case verdictNoRoute:
		i.drop(dropNoRoute)
		f.Fill()
		i.icmpError4(ip, icmp4Unreach, code4NetUnreach, 0)
		return
	case verdictTooBig, verdictTooBigDF:
		i.drop(dropTooBig)
		if v == verdictTooBigDF {
			f.Fill()
			i.icmpError4(ip, icmp4Unreach, code4FragNeeded, uint16(rt.iface.cfg.MTU))
		}
		return
	}
	out := rt.iface
	nb := forwardCopy(f, b[:n], byRef)
	o := nb.B[14:]
	old := binary.BigEndian.Uint16(o[8:10])
	o[8]--
	binary.BigEndian.PutUint16(o[10:12], csumUpdate(binary.BigEndian.Uint16(o[10:12]), old, binary.BigEndian.Uint16(o[8:10])))
	i.forwarded.Add(1)
	nh := dst
	if rt.via.IsValid() {
		nh = rt.via
	}
	out.send(i, nb, nh)
}

// Verdicts of decide4.
const (
	verdictForward  = iota
	verdictEcho     // an echo request to the router: it answers
	verdictLocal    // for the router, or a broadcast: not forwarded
	verdictTTL      // TTL expires: ICMP time exceeded
	verdictNoRoute  // ICMP net unreachable
	verdictTooBig   // beyond the egress MTU, DF clear: dropped (the router does not fragment)
	verdictTooBigDF // beyond the egress MTU with DF: ICMP fragmentation needed
)

// decide4 is the router's decision for an IPv4 packet to dst of size bytes arriving
// on i: inputIPv4 acts on it, Explain reports it. rt is the route, when one was chosen.
func (i *iface) decide4(dst netip.Addr, unicast, echo bool, ttl byte, size int, df bool) (int, *route) {
	if !unicast || dst.IsMulticast() || dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return verdictLocal, nil
	}
	if i.r.ownerOf(dst) != nil {
		if echo {
			return verdictEcho, nil
		}
		return verdictLocal, nil
	}
	if ttl <= 1 {
		return verdictTTL, nil
	}
	rt, ok := i.r.lookup(dst)
	if !ok {
		return verdictNoRoute, nil
	}
	if rt.connected && i.onLinkBroadcast(rt.to, dst) {
		return verdictLocal, rt
	}
	if size > rt.iface.cfg.MTU {
		if df {
			return verdictTooBigDF, rt
		}
		return verdictTooBig, rt
	}
	return verdictForward, rt
}

// forwardCopy returns the router's own copy of the frame b (n bytes of f) to rewrite and
// send on: whole, or by reference (its head copied, a new reference to f's packet).
func forwardCopy(f *frame.Frame, b []byte, byRef bool) *frame.Buf {
	nb := frame.GetBuf(len(b))
	nb.Meta = f.Meta
	if byRef {
		nb.N = len(b)
		copy(nb.B, b[:min(len(b), frame.PacketHead)])
		nb.Pkt = f.Pkt.Clone()
		return nb
	}
	nb.N = copy(nb.B, b)
	return nb
}

// onLinkBroadcast reports whether dst is the broadcast address of connected prefix p.
func (i *iface) onLinkBroadcast(p netip.Prefix, dst netip.Addr) bool {
	if p.Bits() >= 31 {
		return false
	}
	a := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (1<<(32-p.Bits()) - 1)
	d := dst.As4()
	return binary.BigEndian.Uint32(d[:]) == v
}

func (i *iface) echo4(ip []byte, ihl int) {
	n := 14 + len(ip)
	b := frame.GetBuf(n)
	b.N = n
	o := b.B[14:n]
	copy(o, ip)
	copy(o[12:16], ip[16:20])
	copy(o[16:20], ip[12:16])
	o[8] = 64
	o[10], o[11] = 0, 0
	binary.BigEndian.PutUint16(o[10:12], fold(sum(0, o[:ihl])))
	ic := o[ihl:]
	ic[0] = icmp4EchoReply
	ic[2], ic[3] = 0, 0
	binary.BigEndian.PutUint16(ic[2:4], fold(sum(0, ic)))
	binary.BigEndian.PutUint16(b.B[12:14], etIPv4)
	i.route(b, netip.AddrFrom4([4]byte(ip[12:16])))
}

// icmpError4 sends an ICMP error about packet ip back to its source (RFC 1812 4.3.2).
func (i *iface) icmpError4(ip []byte, typ, code byte, mtu uint16) {
	ihl := int(ip[0]&0xf) * 4
	src := netip.AddrFrom4([4]byte(ip[12:16]))
	if src.IsUnspecified() || src.IsMulticast() || src.IsLoopback() || src == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return
	}
	if binary.BigEndian.Uint16(ip[6:8])&0x1fff != 0 {
		return // not the first fragment
	}
	if ip[9] == 1 && len(ip) > ihl && ip[ihl] != icmp4EchoRequest && ip[ihl] != icmp4EchoReply {
		return // never an error about an ICMP error
	}
	me, ok := i.addr4(src)
	if !ok || !i.r.icmp.take(i.r.now()) {
		return
	}
	quote := min(len(ip), 576-20-8)
	n := 14 + 20 + 8 + quote
	b := frame.GetBuf(n)
	b.N = n
	o := b.B[:n]
	binary.BigEndian.PutUint16(o[12:14], etIPv4)
	h := o[14:]
	clear(h[:28])
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:4], uint16(20+8+quote))
	h[8], h[9] = 64, 1
	m4 := me.As4()
	copy(h[12:16], m4[:])
	copy(h[16:20], ip[12:16])
	binary.BigEndian.PutUint16(h[10:12], fold(sum(0, h[:20])))
	ic := h[20:]
	ic[0], ic[1] = typ, code
	binary.BigEndian.PutUint16(ic[6:8], mtu)
	copy(ic[8:], ip[:quote])
	binary.BigEndian.PutUint16(ic[2:4], fold(sum(0, ic)))
	i.icmpErrs.Add(1)
	i.route(b, src)
}

func (i *iface) inputIPv6(f *frame.Frame, unicast bool) {
	b := f.Bytes()
	ip := b[14:]
	if len(ip) < 40 || ip[0]>>4 != 6 {
		f.Fill()
		i.drop(dropMalformed)
		return
	}
	pl := int(binary.BigEndian.Uint16(ip[4:6]))
	// As for IPv4: by reference unless ICMPv6 (NDP, echo) or padded.
	byRef := f.Pkt != nil && ip[6] != 58 && (f.Meta.GSO != frame.GSONone || 14+40+pl == f.N)
	if !byRef {
		f.Fill()
	}
	n := len(b)
	if f.Meta.GSO == frame.GSONone {
		if 40+pl > len(ip) {
			i.drop(dropMalformed)
			return
		}
		ip = ip[:40+pl]
		n = 14 + 40 + pl
	}
	src := netip.AddrFrom16([16]byte(ip[8:24]))
	dst := netip.AddrFrom16([16]byte(ip[24:40]))
	if ip[6] == 58 && len(ip) >= 48 && f.Meta.GSO == frame.GSONone && !i.p2p {
		switch ip[40] {
		case icmp6NS:
			i.inputNS(b, ip, src)
			return
		case icmp6NA:
			i.inputNA(b, ip)
			return
		case icmp6RS:
			i.inputRS(b, ip, src)
			return
		}
	}
	if !unicast || dst.IsMulticast() || dst.IsLinkLocalUnicast() {
		i.drop(dropLocal)
		return
	}
	if i.r.ownerOf(dst) != nil {
		if ip[6] == 58 && len(ip) >= 48 && ip[40] == icmp6EchoRequest && f.Meta.GSO == frame.GSONone {
			i.echo6(ip, src, dst)
			return
		}
		i.drop(dropLocal)
		return
	}
	if ip[7] <= 1 {
		i.drop(dropTTL)
		f.Fill() // the error quotes the packet
		i.icmpError6(ip, icmp6TimeExceeded, 0, 0)
		return
	}
	rt, ok := i.r.lookup(dst)
	if !ok {
		i.drop(dropNoRoute)
		f.Fill()
		i.icmpError6(ip, icmp6Unreach, code6NoRoute, 0)
		return
	}
	out := rt.iface
	if l3Size(f, n) > out.cfg.MTU {
		i.drop(dropTooBig)
		f.Fill()
		i.icmpError6(ip, icmp6TooBig, 0, uint32(out.cfg.MTU))
		return
	}
	nb := forwardCopy(f, b[:n], byRef)
	nb.B[14+7]--
	i.forwarded.Add(1)
	nh := dst
	if rt.via.IsValid() {
		nh = rt.via
	}
	out.send(i, nb, nh)
}

// llOption returns the link-layer address option of type typ in NDP options opts.
func llOption(opts []byte, typ byte) (frame.MAC, bool) {
	for len(opts) >= 8 {
		l := int(opts[1]) * 8
		if l == 0 || l > len(opts) {
			return frame.MAC{}, false
		}
		if opts[0] == typ && l >= 8 {
			return frame.MAC(opts[2:8]), true
		}
		opts = opts[l:]
	}
	return frame.MAC{}, false
}

func (i *iface) inputNS(b, ip []byte, src netip.Addr) {
	ic := ip[40:]
	if len(ic) < 24 || ip[7] != 255 {
		i.drop(dropMalformed)
		return
	}
	target := netip.AddrFrom16([16]byte(ic[8:24]))
	if !i.owns(target) {
		i.drop(dropLocal)
		return
	}
	smac, hasOpt := llOption(ic[24:], 1)
	if !hasOpt {
		smac = frame.MAC(b[6:12])
	}
	dst := src
	var flags byte = 0xe0 // router, solicited, override
	if src.IsUnspecified() {
		dst = netip.MustParseAddr("ff02::1")
		smac = frame.MAC{0x33, 0x33, 0, 0, 0, 1}
		flags = 0xa0
	} else if !smac.IsMulticast() {
		now := i.r.now()
		i.pending = i.r.neigh.learn(i, src, smac, now, true, i.pending[:0])
		i.flush(smac)
	}
	na := make([]byte, 32) // control path
	na[0] = icmp6NA
	na[4] = flags
	copy(na[8:24], ic[8:24])
	na[24], na[25] = 2, 1
	copy(na[26:32], i.mac[:])
	i.enqueue(i.build6(smac, target, dst, 255, na))
}

func (i *iface) inputNA(b, ip []byte) {
	ic := ip[40:]
	if len(ic) < 24 || ip[7] != 255 {
		i.drop(dropMalformed)
		return
	}
	target := netip.AddrFrom16([16]byte(ic[8:24]))
	mac, ok := llOption(ic[24:], 2)
	if !ok {
		mac = frame.MAC(b[6:12])
	}
	if mac.IsMulticast() || !i.onLink(target) {
		return
	}
	i.pending = i.r.neigh.learn(i, target, mac, i.r.now(), false, i.pending[:0])
	i.flush(mac)
}

func (i *iface) echo6(ip []byte, src, dst netip.Addr) {
	ic := make([]byte, len(ip)-40) // control path: pings to the router
	copy(ic, ip[40:])
	ic[0] = icmp6EchoReply
	ic[2], ic[3] = 0, 0
	b := i.build6(frame.MAC{}, dst, src, 64, ic)
	i.route(b, src)
}

// icmpError6 sends an ICMPv6 error about packet ip back to its source (RFC 4443).
func (i *iface) icmpError6(ip []byte, typ, code byte, mtu uint32) {
	src := netip.AddrFrom16([16]byte(ip[8:24]))
	if src.IsUnspecified() || src.IsMulticast() || src.IsLoopback() {
		return
	}
	if ip[6] == 58 && len(ip) > 40 && ip[40] < 128 {
		return // never an error about an ICMPv6 error
	}
	me, ok := i.addrFor(src, false)
	if !ok || !i.r.icmp.take(i.r.now()) {
		return
	}
	quote := min(len(ip), 1280-40-8)
	ic := make([]byte, 8+quote) // error path only, rate-limited
	ic[0], ic[1] = typ, code
	binary.BigEndian.PutUint32(ic[4:8], mtu)
	copy(ic[8:], ip[:quote])
	b := i.build6(frame.MAC{}, me, src, 64, ic)
	i.icmpErrs.Add(1)
	i.route(b, src)
}
