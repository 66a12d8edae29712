package nsstack

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/vnetd/vnetd/frame"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Terminators are the handlers a namespace in terminating mode (see Terminate) calls
// for flows addressed to anyone: the TCP and UDP flows it takes over as if it were
// their destination.
type Terminators struct {
	// TCP is called, on a goroutine of its own, for each new connection attempt
	// (a SYN nobody listens for). It must call Accept or Reset exactly once; the
	// guest's SYN is answered only then.
	TCP func(*TCPRequest)
	// UDP is called, on the NIC's delivery goroutine (it must not block), for the
	// first datagram of each new UDP flow. Returning false refuses the flow: the
	// sender gets ICMP port unreachable. Returning true without Accept drops the
	// datagram.
	UDP func(*UDPRequest) bool
	// ARP lists further IPv4 addresses the NIC answers ARP requests for (besides its
	// own), such as addresses it relays for that guests may take to be on-link.
	ARP []netip.Addr
	// NDP lists further IPv6 addresses the NIC answers neighbour solicitations for
	// (besides its own), the IPv6 counterpart of ARP: Terminate joins their
	// solicited-node multicast groups so that solicitations reach the stack. Echo
	// requests to them still go to Echo; they are not the namespace's addresses.
	NDP []netip.Addr
	// Echo, if set, is called on the NIC's delivery goroutine (it must not block,
	// nor answer from there) for each ICMP or ICMPv6 echo request to an address the
	// namespace does not own. Nil drops them.
	Echo func(*EchoRequest)
	// MaxPendingTCP bounds the connection attempts waiting for TCP to decide;
	// further SYNs are dropped (the guest retransmits). Default 256.
	MaxPendingTCP int
}

// Terminate puts a NIC into terminating mode, the way a userspace NAT (gvproxy,
// slirp) works: it accepts packets for any destination address (promiscuous), sends
// from any source address (spoofing: replies come from the address the guest
// dialled), routes every destination out of this NIC, and hands each TCP and UDP flow
// nobody in the namespace listens for to t. ICMP echo requests to addresses the
// namespace does not own go to t.Echo, never answered on their behalf by the stack.
func (ns *Namespace) Terminate(nic string, t Terminators) error {
	if t.TCP == nil || t.UDP == nil {
		return errors.New("terminate: TCP and UDP handlers are required")
	}
	if t.MaxPendingTCP <= 0 {
		t.MaxPendingTCP = 256
	}
	if !ns.terminating {
		return fmt.Errorf("namespace %q: terminate: not created with Options.Terminating", ns.name)
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	n, err := ns.nicLocked(nic)
	if err != nil {
		return err
	}
	if e := ns.st.SetPromiscuousMode(n.id, true); e != nil {
		return fmt.Errorf("namespace %q: promiscuous %q: %s", ns.name, nic, e)
	}
	own, ownAll := &neighborOwn{v4: map[[4]byte]bool{}, v6: map[[16]byte]bool{}}, map[netip.Addr]bool{}
	for _, a := range ns.st.AllAddresses()[n.id] {
		switch a.Protocol {
		case ipv4.ProtocolNumber:
			own.v4[a.AddressWithPrefix.Address.As4()] = true
		case ipv6.ProtocolNumber:
			own.v6[a.AddressWithPrefix.Address.As16()] = true
		}
		ownAll[fromTCPIP(a.AddressWithPrefix.Address)] = true
	}
	for _, a := range t.ARP {
		if a.Is4() {
			own.v4[a.As4()] = true
		}
	}
	for _, a := range t.NDP {
		if !a.Is6() || a.Is4In6() || a.IsMulticast() || a.IsUnspecified() {
			return fmt.Errorf("namespace %q: terminate: %v is not an IPv6 unicast address to answer solicitations for", ns.name, a)
		}
		// The solicitation goes to the target's solicited-node group, which gVisor
		// delivers only if the NIC joined it (its own addresses' groups it joins itself).
		if e := ns.st.JoinGroup(ipv6.ProtocolNumber, n.id, header.SolicitedNodeAddr(toTCPIP(a))); e != nil {
			return fmt.Errorf("namespace %q: join the solicited-node group of %v: %s", ns.name, a, e)
		}
		own.v6[a.As16()] = true
	}
	n.own.Store(own)
	if e := ns.st.SetSpoofing(n.id, true); e != nil {
		return fmt.Errorf("namespace %q: spoofing %q: %s", ns.name, nic, e)
	}
	ns.st.AddRoute(tcpip.Route{Destination: header.IPv4EmptySubnet, NIC: n.id})
	ns.st.AddRoute(tcpip.Route{Destination: header.IPv6EmptySubnet, NIC: n.id})
	st := ns.st
	tf := tcp.NewForwarder(st, 0, t.MaxPendingTCP, func(r *tcp.ForwarderRequest) {
		id := r.ID()
		t.TCP(&TCPRequest{Local: endpointAddr(id.LocalAddress, id.LocalPort), Remote: endpointAddr(id.RemoteAddress, id.RemotePort), r: r})
	})
	st.SetTransportProtocolHandler(tcp.ProtocolNumber, tf.HandlePacket)
	uf := udp.NewForwarder(st, func(r *udp.ForwarderRequest) bool {
		id := r.ID()
		return t.UDP(&UDPRequest{Local: endpointAddr(id.LocalAddress, id.LocalPort), Remote: endpointAddr(id.RemoteAddress, id.RemotePort), r: r})
	})
	st.SetTransportProtocolHandler(udp.ProtocolNumber, uf.HandlePacket)
	// Echo requests to addresses the NIC does not own (now: add addresses before
	// Terminate) go to t.Echo or are
	// dropped: gVisor would otherwise answer ICMPv6 ones to a promiscuous NIC's
	// temporary addresses (IPv4 ones it leaves alone).
	st.SetTransportProtocolHandler(icmp.ProtocolNumber4, ns.echoHandler(n.id, ipv4.ProtocolNumber, ownAll, t.Echo))
	st.SetTransportProtocolHandler(icmp.ProtocolNumber6, ns.echoHandler(n.id, ipv6.ProtocolNumber, ownAll, t.Echo))
	return nil
}

func endpointAddr(a tcpip.Address, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(fromTCPIP(a), port)
}

// TCPRequest is a connection attempt a terminating NIC received: the guest at Remote
// sent a SYN to Local.
type TCPRequest struct {
	// Local is the address and port the guest dialled.
	Local netip.AddrPort
	// Remote is the guest's address and port.
	Remote netip.AddrPort

	r    *tcp.ForwarderRequest
	once sync.Once
}

var errDecided = errors.New("connection request already decided")

// Accept completes the handshake and returns the connection, whose LocalAddr is the
// address the guest dialled.
func (r *TCPRequest) Accept() (net.Conn, error) {
	var (
		c   net.Conn
		err = errDecided
	)
	r.once.Do(func() {
		var wq waiter.Queue
		ep, e := r.r.CreateEndpoint(&wq)
		if e != nil {
			r.r.Complete(true)
			err = fmt.Errorf("accept %v -> %v: %s", r.Remote, r.Local, e)
			return
		}
		r.r.Complete(false)
		c, err = gonet.NewTCPConn(&wq, ep), nil
	})
	return c, err
}

// Reset refuses the connection with a RST, as a closed port does.
func (r *TCPRequest) Reset() {
	r.once.Do(func() { r.r.Complete(true) })
}

// UDPRequest is the first datagram of a UDP flow a terminating NIC received: the
// guest at Remote sent to Local.
type UDPRequest struct {
	// Local is the address and port the guest sent to.
	Local netip.AddrPort
	// Remote is the guest's address and port.
	Remote netip.AddrPort

	r *udp.ForwarderRequest
}

// Accept returns a socket connected to the guest, bound to Local: Read returns the
// guest's datagrams (this first one included), Write sends to it. Only the first
// call creates the socket.
func (r *UDPRequest) Accept() (net.Conn, error) {
	if r.r == nil {
		return nil, errDecided
	}
	var wq waiter.Queue
	ep, e := r.r.CreateEndpoint(&wq)
	r.r = nil
	if e != nil {
		return nil, fmt.Errorf("accept udp %v -> %v: %s", r.Remote, r.Local, e)
	}
	return gonet.NewUDPConn(&wq, ep), nil
}

// foreignARPRequest reports whether b is an ARP request for an IPv4 address not in own
// (Ethernet, optionally one 802.1Q tag).
func foreignARPRequest(b []byte, own map[[4]byte]bool) bool {
	if len(b) < 14 {
		return false
	}
	et, off := uint16(b[12])<<8|uint16(b[13]), 14
	if et == 0x8100 && len(b) >= 18 {
		et, off = uint16(b[16])<<8|uint16(b[17]), 18
	}
	if et != 0x0806 || len(b) < off+28 {
		return false
	}
	arp := b[off:]
	if arp[6] != 0 || arp[7] != 1 { // not a request
		return false
	}
	var target [4]byte
	copy(target[:], arp[24:28])
	return !own[target]
}

// neighborOwn is what a terminating NIC answers ARP requests (v4) and neighbour
// solicitations (v6) for.
type neighborOwn struct {
	v4 map[[4]byte]bool
	v6 map[[16]byte]bool
}

// foreign reports whether f is an ARP request or a neighbour solicitation for an
// address the NIC does not answer for.
func (o *neighborOwn) foreign(f *frame.Frame) bool {
	b := f.Buf[:min(f.N, len(f.Buf))]
	if f.Pkt != nil {
		b = b[:min(len(b), frame.PacketHead)] // only the head is in the buffer
	}
	if foreignARPRequest(b, o.v4) { // an ARP request fits in a by-reference frame's head
		return true
	}
	target, st := solicitationTarget(b)
	if st == nsShort && f.Pkt != nil && len(b) < f.N {
		// A frame by reference whose head ends before the target: read the whole of it
		// (a solicitation from an in-process stack, 86 bytes; rare).
		whole := make([]byte, f.N)
		f.Pkt.CopyTo(whole)
		copy(whole, b) // the head in the buffer is the authoritative one
		target, st = solicitationTarget(whole)
	}
	return st == nsFound && !o.v6[target]
}

// What solicitationTarget found.
const (
	nsNone  = iota // not a neighbour solicitation
	nsFound        // a solicitation, with its target
	nsShort        // the bytes end before it could tell
)

// solicitationTarget returns the target of b if it is an IPv6 neighbour solicitation
// (Ethernet, optionally one 802.1Q tag; the hop-by-hop, routing and destination
// options headers are skipped, as the stack does; a fragment is not looked into, the
// stack drops fragmented NDP itself).
func solicitationTarget(b []byte) (target [16]byte, st int) {
	if len(b) < 14 {
		return target, nsNone
	}
	et, off := uint16(b[12])<<8|uint16(b[13]), 14
	if et == 0x8100 && len(b) >= 18 {
		et, off = uint16(b[16])<<8|uint16(b[17]), 18
	}
	if et != 0x86dd {
		return target, nsNone
	}
	if len(b) < off+40 {
		return target, nsShort
	}
	next := b[off+6]
	off += 40
	for next == 0 || next == 43 || next == 60 { // hop-by-hop, routing, destination options
		if len(b) < off+2 {
			return target, nsShort
		}
		next, off = b[off], off+(int(b[off+1])+1)*8
	}
	const icmpv6, neighborSolicit = 58, 135
	switch {
	case next != icmpv6:
		return target, nsNone
	case len(b) <= off:
		return target, nsShort
	case b[off] != neighborSolicit:
		return target, nsNone
	case len(b) < off+24:
		return target, nsShort
	}
	copy(target[:], b[off+8:off+24])
	return target, nsFound
}
