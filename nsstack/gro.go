package nsstack

import (
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"
)

// Receive coalescing (GRO). Frames that come from outside the process (a kernel
// VXLAN peer, a TAP or VM without offloads, a host interface) arrive one MTU-sized
// TCP segment each, and gVisor's receive path costs about the same per segment
// whatever its size. Before a delivery batch reaches the stack, gVisor's own GRO
// engine (stack/gro, which its fdbased endpoint uses under runsc) merges consecutive
// in-order segments of a flow into one large segment, as the kernel does on a NIC.
// A batch is flushed whole before the delivery goroutine waits again, so no segment
// is ever held back for later frames: GRO adds no latency. Superframes from other
// stacks in the process pass through untouched (GRO only merges segments of equal
// size up to 64 KiB).
//
// The engine sits between gVisor's Ethernet layer, which strips the link header, and
// the stack's NIC: groLink wraps the Ethernet endpoint and hands it a dispatcher of
// its own. Its state (about 7 KB) is made the first time a NIC receives a batch of
// more than one frame, so idle namespaces of a large lab do not pay for it.

// Only packets built from a frame's bytes (WriteFrames copied them into chunks of
// their own) go through GRO. A frame by reference shares the sending stack's buffers,
// which GRO must not touch: it rewrites the held packet's IP length and TCP flags in
// place, and it keeps pointers to headers that, when they span two of the sender's
// views (a router's rewritten head in front of the payload), gVisor's own PullUp moves
// into a new chunk and frees the old (gro.dispatch4 keeps the IPv4 header slice from
// before its second PullUp; the race detector caught it). Such frames come from
// stacks in this process, which send superframes anyway.
//
// sharedMark tags a packet by reference until gVisor's NIC sets the field for real:
// nothing reads NetworkProtocolNumber between WriteFrames and the NIC's delivery.
const sharedMark tcpip.NetworkProtocolNumber = 0xffff

// groLink is the NIC's link endpoint as the stack sees it: gVisor's Ethernet endpoint
// whose received packets go through the NIC's GRO engine while a batch is delivered.
type groLink struct {
	*ethernet.Endpoint
	nic *NIC
}

func newGROLink(n *NIC) *groLink {
	return &groLink{Endpoint: ethernet.New(&linkEP{nic: n}), nic: n}
}

// Attach implements stack.LinkEndpoint: the stack's dispatcher (its NIC) is kept as
// the upper end, and the Ethernet layer below delivers to groDispatcher instead.
func (g *groLink) Attach(d stack.NetworkDispatcher) {
	if d == nil {
		g.Endpoint.Attach(nil)
		g.nic.upper.Store(nil)
		return
	}
	g.nic.upper.Store(&dispatcherBox{d})
	g.Endpoint.Attach(groDispatcher{g.nic})
}

// groState is a NIC's GRO engine, owned by its delivery goroutine.
type groState struct {
	eng gro.GRO
	on  bool // a batch is being delivered: packets go through eng
}

// groDispatcher takes what gVisor's Ethernet layer delivers.
type groDispatcher struct{ n *NIC }

func (d groDispatcher) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	shared := pkt.NetworkProtocolNumber == sharedMark
	if g := d.n.gro; g != nil && g.on && !shared {
		pkt.NetworkProtocolNumber = proto
		// The stack takes every packet of this NIC as checksum-validated (the link
		// endpoint offers RX checksum offload; WriteFrames checked the frames that
		// came without offload metadata), so GRO need not check them again.
		pkt.RXChecksumValidated = true
		g.eng.Enqueue(pkt)
		return
	}
	if up := d.n.upper.Load(); up != nil {
		up.d.DeliverNetworkPacket(proto, pkt)
	}
}

func (d groDispatcher) DeliverLinkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	if up := d.n.upper.Load(); up != nil {
		up.d.DeliverLinkPacket(proto, pkt)
	}
}

// upperDispatcher is what the GRO engine flushes to: the stack's NIC.
type upperDispatcher struct {
	upper *atomic.Pointer[dispatcherBox]
}

func (u upperDispatcher) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	if up := u.upper.Load(); up != nil {
		up.d.DeliverNetworkPacket(proto, pkt)
	}
}

func (u upperDispatcher) DeliverLinkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	if up := u.upper.Load(); up != nil {
		up.d.DeliverLinkPacket(proto, pkt)
	}
}

// groBegin is called by the delivery goroutine before it hands a batch of k packets
// to the stack; it reports whether they go through GRO.
func (n *NIC) groBegin(k int) bool {
	if n.noGRO || k < 2 {
		return false
	}
	if n.gro == nil {
		n.gro = &groState{}
		n.gro.eng.Init(true)
		n.gro.eng.Dispatcher = upperDispatcher{&n.upper}
	}
	n.gro.on = true
	return true
}

// groEnd flushes what GRO holds to the stack once the batch has been handed over.
func (n *NIC) groEnd() {
	n.gro.on = false
	n.gro.eng.Flush()
}
