package router

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/vnetd/vnetd/frame"
)

// Drop reasons, counted per ingress (or egress) interface.
const (
	dropMalformed      = iota // too short or bad IP header
	dropNotForUs              // unicast to another MAC
	dropProto                 // unknown ethertype or tagged frame
	dropLocal                 // addressed to the router but not handled (not a ping)
	dropTTL                   // TTL / hop limit expired
	dropNoRoute               // no route to destination
	dropTooBig                // larger than the egress MTU
	dropNeighQueueFull        // too many frames waiting for one neighbour
	dropNeighTimeout          // neighbour never answered
	dropNeighEvicted          // neighbour entry evicted while frames waited
	dropQueueFull             // egress queue full
	dropShortcut              // shortcut target refused the frame
	numDrops
)

var dropNames = [numDrops]string{"malformed", "not_for_us", "proto", "local", "ttl", "no_route", "too_big", "neigh_queue_full", "neigh_timeout", "neigh_evicted", "queue_full", "shortcut"}

const (
	etARP  = 0x0806
	etIPv4 = 0x0800
	etIPv6 = 0x86dd
)

// iface is a router interface and the frame.Port its switch sees.
type iface struct {
	r   *Router
	cfg IfaceConfig
	mac frame.MAC
	q   *frame.Queue

	ctr       frame.Counters
	forwarded atomic.Uint64
	shortcut  atomic.Uint64
	icmpErrs  atomic.Uint64
	drops     [numDrops]atomic.Uint64
	closed    atomic.Bool

	rbufs    []*frame.Buf // ReadFrames scratch (one reader at a time)
	scPort   frame.Port   // shortcut batch target, used only from this port's WriteFrames
	scOut    *iface
	capsPort frame.Port // last shortcut target asked for its caps, same goroutine
	caps     frame.Caps
	scBufs   []*frame.Buf
	scFrames []frame.Frame
	pending  []*frame.Buf // flushed neighbour queue scratch, same

	ll     netip.Addr   // IPv6 link-local address (EUI-64), when the interface has IPv6
	lastRA atomic.Int64 // unix nanoseconds of the last unsolicited advertisement

	// p2p marks a point-to-point L3 leg (IfaceConfig.L3Peer): no neighbour
	// resolution, every frame out goes to peerMAC.
	p2p     bool
	peerMAC frame.MAC
}

var _ frame.Port = (*iface)(nil)

func newIface(r *Router, c IfaceConfig) *iface {
	i := &iface{r: r, cfg: c, mac: c.MAC, q: frame.NewQueue(r.opts.QueueLen), rbufs: make([]*frame.Buf, 64),
		scBufs: make([]*frame.Buf, 0, scBatch), scFrames: make([]frame.Frame, scBatch)}
	for _, p := range c.Addresses {
		if p.Addr().Is6() {
			i.ll = linkLocal(c.MAC)
			break
		}
	}
	if c.L3Peer != nil {
		i.p2p, i.peerMAC = true, c.L3Peer.MAC
	}
	return i
}

// connected returns the prefixes routed out of i as connected: its own (masked) and,
// on an L3 leg, a host prefix per peer address.
func (i *iface) connected() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range i.cfg.Addresses {
		out = append(out, p.Masked())
	}
	if i.cfg.L3Peer != nil {
		for _, a := range i.cfg.L3Peer.Addresses {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

// Kinds of interface, as IfaceInfo.Kind lists them.
const (
	KindL2 = "l2" // a port on a switch: ARP, NDP, RA
	KindL3 = "l3" // a point-to-point leg to an L3-only NIC (IfaceConfig.L3Peer)
)

func (i *iface) drop(reason int) { i.drops[reason].Add(1) }

func (i *iface) info() IfaceInfo {
	d := make(map[string]uint64)
	for k := range i.drops {
		if v := i.drops[k].Load(); v != 0 {
			d[dropNames[k]] = v
		}
	}
	kind := KindL2
	var peer frame.MAC
	if i.p2p {
		kind, peer = KindL3, i.peerMAC
	}
	return IfaceInfo{
		Name: i.cfg.Name, Kind: kind, PeerMAC: peer, MAC: i.mac, MTU: i.cfg.MTU, VLAN: i.cfg.VLAN,
		Addresses: append([]netip.Prefix(nil), i.cfg.Addresses...),
		Counters:  i.ctr.Snapshot(), Forwarded: i.forwarded.Load(), Shortcut: i.shortcut.Load(),
		ICMPErrors: i.icmpErrs.Load(), Dropped: d,
	}
}

// Info implements frame.Port. The router passes offload metadata through, so it
// accepts every offload and may return superframes. It takes frames by reference and
// forwards them so, rewriting only their head (see frame.Packet).
func (i *iface) Info() frame.Info {
	return frame.Info{Name: i.r.opts.Name + "." + i.cfg.Name, MTU: i.cfg.MTU, MaxFrame: frame.MaxSuperFrame, Caps: frame.CapsAll | frame.CapPacket}
}

// ReadFrames implements frame.Port: it returns frames the router sends out of this
// interface.
func (i *iface) ReadFrames(frames []frame.Frame) (int, error) { return i.read(frames, false) }

// ReadPackets implements frame.PacketReader: as ReadFrames, but a frame the router
// forwards by reference stays so, its head copied into the caller's buffer.
func (i *iface) ReadPackets(frames []frame.Frame) (int, error) { return i.read(frames, true) }

func (i *iface) read(frames []frame.Frame, byRef bool) (int, error) {
	for {
		n, err := i.q.Pop(i.rbufs[:min(len(frames), len(i.rbufs))])
		if err != nil {
			return 0, net.ErrClosed
		}
		k := 0
		for j := 0; j < n; j++ {
			b := i.rbufs[j]
			if byRef && b.Pkt != nil && len(frames[k].Buf) >= frame.PacketHead {
				f := &frames[k]
				copy(f.Buf, b.B[b.Off:b.Off+min(b.N, frame.PacketHead)])
				f.N, f.Meta, f.Pkt = b.N, b.Meta, b.Pkt
				b.Pkt = nil
				i.ctr.TxFrames.Add(1)
				i.ctr.TxBytes.Add(uint64(b.N))
				k++
			} else if b.CopyTo(&frames[k]) {
				i.ctr.TxFrames.Add(1)
				i.ctr.TxBytes.Add(uint64(b.N))
				k++
			} else {
				i.ctr.TxDropped.Add(1)
			}
			i.rbufs[j] = nil
			b.Release()
		}
		if k > 0 {
			return k, nil
		}
	}
}

// WriteFrames implements frame.Port: the switch hands the router frames received on
// this interface; they are routed before WriteFrames returns.
func (i *iface) WriteFrames(frames []frame.Frame) (int, error) {
	if i.closed.Load() {
		return 0, net.ErrClosed
	}
	for k := range frames {
		f := &frames[k]
		i.ctr.RxFrames.Add(1)
		i.ctr.RxBytes.Add(uint64(f.N))
		i.input(f)
	}
	i.flushShortcut()
	return len(frames), nil
}

// Close implements frame.Port. It is idempotent.
func (i *iface) Close() error {
	if i.closed.Swap(true) {
		return nil
	}
	i.q.Close()
	return nil
}

// enqueue hands b to this interface's reader, or drops it.
func (i *iface) enqueue(b *frame.Buf) {
	if !i.q.Push(b) {
		i.ctr.TxDropped.Add(1)
		i.drop(dropQueueFull)
		b.Release()
	}
}

// input routes one received frame. A frame by reference is forwarded so when its IP
// header lies in its head (inputIPv4, inputIPv6); anything the router reads further
// into is filled in first (frame.Frame.Fill).
func (i *iface) input(f *frame.Frame) {
	b := f.Bytes()
	if len(b) < frame.EthHeaderLen {
		i.drop(dropMalformed)
		return
	}
	dst := frame.MAC(b[0:6])
	// On an L3 leg the destination MAC is framing only: every IP frame is for us.
	unicast := dst == i.mac || i.p2p
	if !unicast && !dst.IsMulticast() {
		i.drop(dropNotForUs)
		return
	}
	switch binary.BigEndian.Uint16(b[12:14]) {
	case etARP:
		if i.p2p {
			i.drop(dropProto)
			return
		}
		f.Fill()
		i.inputARP(b)
	case etIPv4:
		i.inputIPv4(f, unicast)
	case etIPv6:
		i.inputIPv6(f, unicast)
	default:
		i.drop(dropProto)
	}
}

// addr4 returns the interface's IPv4 address on the prefix holding peer, or its first
// IPv4 address.
func (i *iface) addr4(peer netip.Addr) (netip.Addr, bool) {
	return i.addrFor(peer, true)
}

func (i *iface) addrFor(peer netip.Addr, v4 bool) (netip.Addr, bool) {
	var first netip.Addr
	for _, p := range i.cfg.Addresses {
		if p.Addr().Is4() != v4 {
			continue
		}
		if p.Contains(peer) {
			return p.Addr(), true
		}
		if !first.IsValid() {
			first = p.Addr()
		}
	}
	return first, first.IsValid()
}

func (i *iface) owns(a netip.Addr) bool {
	if a == i.ll {
		return true
	}
	for _, p := range i.cfg.Addresses {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

func (i *iface) onLink(a netip.Addr) bool {
	for _, p := range i.cfg.Addresses {
		if p.Contains(a) {
			return true
		}
	}
	return a.Is6() && a.IsLinkLocalUnicast()
}

func (i *iface) inputARP(b []byte) {
	if len(b) < 42 {
		i.drop(dropMalformed)
		return
	}
	a := b[14:]
	if binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != etIPv4 || a[4] != 6 || a[5] != 4 {
		i.drop(dropMalformed)
		return
	}
	op := binary.BigEndian.Uint16(a[6:8])
	sha := frame.MAC(a[8:14])
	spa := netip.AddrFrom4([4]byte(a[14:18]))
	tpa := netip.AddrFrom4([4]byte(a[24:28]))
	now := i.r.now()
	if spa.IsValid() && !spa.IsUnspecified() && !sha.IsMulticast() && i.onLink(spa) {
		i.pending = i.r.neigh.learn(i, spa, sha, now, i.owns(tpa), i.pending[:0])
		i.flush(sha)
	}
	if op != 1 {
		return
	}
	answer := i.owns(tpa)
	if !answer && i.cfg.ProxyARP && tpa != spa {
		if rt, ok := i.r.lookup(tpa); ok && rt.iface != i {
			answer = true
		}
	}
	if !answer {
		return
	}
	rb := frame.GetBuf(42)
	rb.N = 42
	o := rb.B[:42]
	copy(o[0:6], sha[:])
	copy(o[6:12], i.mac[:])
	binary.BigEndian.PutUint16(o[12:14], etARP)
	copy(o[14:20], a[0:6])
	binary.BigEndian.PutUint16(o[20:22], 2)
	copy(o[22:28], i.mac[:])
	copy(o[28:32], a[24:28])
	copy(o[32:38], sha[:])
	copy(o[38:42], a[14:18])
	i.enqueue(rb)
}

// flush delivers frames that waited for mac (in i.pending) out of this interface.
func (i *iface) flush(mac frame.MAC) {
	for k, b := range i.pending {
		i.pending[k] = nil
		i.deliver(i, b, mac)
	}
	i.pending = i.pending[:0]
}

// probe sends an ARP request or neighbour solicitation for addr.
func (i *iface) probe(addr netip.Addr) {
	if addr.Is4() {
		src, ok := i.addr4(addr)
		if !ok {
			return
		}
		b := frame.GetBuf(42)
		b.N = 42
		o := b.B[:42]
		bcast := frame.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		copy(o[0:6], bcast[:])
		copy(o[6:12], i.mac[:])
		binary.BigEndian.PutUint16(o[12:14], etARP)
		binary.BigEndian.PutUint16(o[14:16], 1)
		binary.BigEndian.PutUint16(o[16:18], etIPv4)
		o[18], o[19] = 6, 4
		binary.BigEndian.PutUint16(o[20:22], 1)
		copy(o[22:28], i.mac[:])
		s4, t4 := src.As4(), addr.As4()
		copy(o[28:32], s4[:])
		clear(o[32:38])
		copy(o[38:42], t4[:])
		i.enqueue(b)
		return
	}
	src, ok := i.addrFor(addr, false)
	if !ok {
		return
	}
	t := addr.As16()
	snm := netip.AddrFrom16([16]byte{0xff, 0x02, 10: 0, 11: 1, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]})
	icmp := make([]byte, 32) // control path: a probe, not per forwarded packet
	icmp[0] = 135
	copy(icmp[8:24], t[:])
	icmp[24], icmp[25] = 1, 1
	copy(icmp[26:32], i.mac[:])
	dmac := frame.MAC{0x33, 0x33, 0xff, t[13], t[14], t[15]}
	i.enqueue(i.build6(dmac, src, snm, 255, icmp))
}

// build6 builds an Ethernet+IPv6+ICMPv6 frame with a computed checksum.
func (i *iface) build6(dmac frame.MAC, src, dst netip.Addr, hop byte, icmp []byte) *frame.Buf {
	n := 14 + 40 + len(icmp)
	b := frame.GetBuf(n)
	b.N = n
	o := b.B[:n]
	copy(o[0:6], dmac[:])
	copy(o[6:12], i.mac[:])
	binary.BigEndian.PutUint16(o[12:14], etIPv6)
	ip := o[14:]
	clear(ip[:40])
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(icmp)))
	ip[6], ip[7] = 58, hop
	s, d := src.As16(), dst.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	copy(ip[40:], icmp)
	ip[42], ip[43] = 0, 0
	binary.BigEndian.PutUint16(ip[42:44], icmp6Csum(ip[8:24], ip[24:40], ip[40:]))
	return b
}

func icmp6Csum(src, dst, body []byte) uint16 {
	acc := sum(0, src)
	acc = sum(acc, dst)
	acc += uint32(len(body)) + 58
	return fold(sum(acc, body))
}

// deliver rewrites b's MACs and sends it out of i: straight to an in-process NIC when
// the shortcut resolves one, else through i's queue. via is the ingress interface
// whose scratch the shortcut uses.
func (i *iface) deliver(via *iface, b *frame.Buf, dmac frame.MAC) {
	o := b.B[b.Off : b.Off+b.N]
	copy(o[0:6], dmac[:])
	copy(o[6:12], i.mac[:])
	if sc := i.r.opts.Shortcut; sc != nil && !i.p2p {
		if p, ok := sc(i.cfg.Name, i.cfg.VLAN, dmac); ok && via.capsOf(p).Accepts(&b.Meta) {
			if via.scPort != p || len(via.scBufs) == scBatch {
				via.flushShortcut()
			}
			via.scPort, via.scOut = p, i
			via.scBufs = append(via.scBufs, b)
			return
		}
	}
	i.enqueue(b)
}

const scBatch = 64

// capsOf returns p's offload caps, remembering the last port asked about: Info can be
// costly (a port may build its name per call) and a NIC's caps do not change.
func (via *iface) capsOf(p frame.Port) frame.Caps {
	if p != via.capsPort {
		via.capsPort, via.caps = p, p.Info().Caps
	}
	return via.caps
}

// flushShortcut hands the batched shortcut frames to their NIC.
func (via *iface) flushShortcut() {
	if len(via.scBufs) == 0 {
		return
	}
	fs := via.scFrames[:len(via.scBufs)]
	byRef := via.capsOf(via.scPort)&frame.CapPacket != 0
	for k, b := range via.scBufs {
		if !byRef {
			b.Materialize()
		}
		fs[k].Buf, fs[k].N, fs[k].Meta, fs[k].Pkt = b.B[b.Off:b.Off+b.N], b.N, b.Meta, b.Pkt
	}
	n, _ := via.scPort.WriteFrames(fs)
	out := via.scOut
	out.shortcut.Add(uint64(n))
	out.ctr.TxFrames.Add(uint64(n))
	for k, b := range via.scBufs {
		if k < n {
			out.ctr.TxBytes.Add(uint64(b.N))
		} else {
			out.drop(dropShortcut)
		}
		fs[k].Buf, fs[k].Pkt = nil, nil
	}
	frame.ReleaseBufs(via.scBufs) // with the references: the NIC took its own
	via.scBufs = via.scBufs[:0]
	via.scPort, via.scOut = nil, nil
}

// send resolves nh on i and delivers b, queueing it while the neighbour is resolved.
func (i *iface) send(in *iface, b *frame.Buf, nh netip.Addr) {
	if i.p2p {
		i.deliver(in, b, i.peerMAC) // one host on the leg: nothing to resolve
		return
	}
	r := i.r
	now := r.now()
	mac, ok, stale := r.neigh.lookup(i, nh, now, r.opts.NeighborTTL)
	if ok {
		if stale && r.neigh.markProbed(i, nh, now) {
			i.probe(nh)
		}
		i.deliver(in, b, mac)
		return
	}
	mac, resolved, probe := r.neigh.enqueue(i, nh, b, now, r.opts.MaxPending)
	if resolved {
		i.deliver(in, b, mac)
		return
	}
	if probe {
		i.probe(nh)
	}
}

// route sends a locally built IP packet in b towards dst.
func (i *iface) route(b *frame.Buf, dst netip.Addr) {
	rt, ok := i.r.lookup(dst)
	if !ok {
		i.drop(dropNoRoute)
		b.Release()
		return
	}
	nh := dst
	if rt.via.IsValid() {
		nh = rt.via
	}
	rt.iface.send(i, b, nh)
}
