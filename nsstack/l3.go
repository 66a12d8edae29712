package nsstack

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// L3-only NICs (NICConfig.Kind = NICL3), like OpenVZ's venet: the namespace sees a
// point-to-point interface that carries bare IP packets. gVisor's NIC is built on a
// link endpoint without CapabilityResolutionRequired and with ARPHardwareNone, so the
// stack resolves no neighbour: it sends every packet straight to the link, it creates
// no ARP or NDP neighbour cache for the NIC (stack/nic.go makes one per network
// protocol only for resolving endpoints; they are most of an L2 NIC's memory), and
// Neighbors lists nothing for it.
//
// At the port edge the NIC still speaks frame.Port, which carries Ethernet frames,
// so an L3 NIC can be joined to another with Connect and the frames go by reference
// like any NIC's. The Ethernet header is fixed framing, not a link layer: the link
// endpoint reserves its 14 bytes and writes it unchanged on every packet (source the
// NIC's MAC, destination NICConfig.PeerMAC, EtherType from the packet's protocol), and
// on the way in the NIC takes only IPv4 and IPv6 frames (anything else, ARP included,
// is dropped and counted as not_ip), strips the header without looking at its MACs
// and hands the IP packet to the stack as addressed to this host. The stack itself
// then takes only packets for its own addresses, and a socket can bind only those
// (gVisor refuses a foreign local address with "bad local address"): the namespace
// can neither receive nor send as any other address.

// l3Link is the link endpoint of an L3 NIC: linkEP with the fixed framing above and no
// address resolution. Its received packets go to the NIC's GRO dispatcher like an L2
// NIC's.
type l3Link struct {
	linkEP
}

var _ stack.GSOEndpoint = (*l3Link)(nil)

func newL3Link(n *NIC) *l3Link { return &l3Link{linkEP{nic: n}} }

// MaxHeaderLength implements stack.LinkEndpoint: room for the fixed framing.
func (e *l3Link) MaxHeaderLength() uint16 { return header.EthernetMinimumSize }

// LinkAddress implements stack.LinkEndpoint: an L3 NIC has no link address.
func (e *l3Link) LinkAddress() tcpip.LinkAddress { return "" }

// Capabilities implements stack.LinkEndpoint: no CapabilityResolutionRequired, so
// gVisor neither resolves neighbours nor allocates a neighbour cache for the NIC.
func (e *l3Link) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityRXChecksumOffload
}

// ARPHardwareType implements stack.LinkEndpoint.
func (e *l3Link) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }

// AddHeader implements stack.LinkEndpoint: the fixed framing.
func (e *l3Link) AddHeader(pkt *stack.PacketBuffer) {
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	copy(eth[0:6], e.nic.peerMAC[:])
	copy(eth[6:12], e.nic.mac[:])
	eth[12], eth[13] = byte(pkt.NetworkProtocolNumber>>8), byte(pkt.NetworkProtocolNumber)
}

// ParseHeader implements stack.LinkEndpoint.
func (e *l3Link) ParseHeader(pkt *stack.PacketBuffer) bool {
	_, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	return ok
}

// Attach implements stack.LinkEndpoint: the stack's NIC is the upper end, and the
// delivery goroutine hands packets to l3Dispatcher, which strips the framing.
func (e *l3Link) Attach(d stack.NetworkDispatcher) {
	if d == nil {
		e.nic.dispatcher.Store(nil)
		e.nic.upper.Store(nil)
		return
	}
	e.nic.upper.Store(&dispatcherBox{d})
	e.nic.dispatcher.Store(&dispatcherBox{l3Dispatcher{e.nic}})
}

// l3Dispatcher strips an L3 NIC's framing and passes the IP packet on, through GRO.
// WriteFrames let through only IPv4 and IPv6 frames.
type l3Dispatcher struct{ n *NIC }

func (d l3Dispatcher) DeliverNetworkPacket(_ tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	hdr, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	if !ok {
		return
	}
	pkt.PktType = tcpip.PacketHost
	groDispatcher(d).DeliverNetworkPacket(header.Ethernet(hdr).Type(), pkt)
}

func (d l3Dispatcher) DeliverLinkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	groDispatcher(d).DeliverLinkPacket(proto, pkt)
}

// l3Frame reports whether b, a frame written to an L3 NIC, carries IPv4 or IPv6.
func l3Frame(b []byte) bool {
	if len(b) < header.EthernetMinimumSize {
		return false
	}
	t := uint16(b[12])<<8 | uint16(b[13])
	return t == uint16(header.IPv4ProtocolNumber) || t == uint16(header.IPv6ProtocolNumber)
}
