package nsstack

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/internal/worker"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// NICConfig configures a namespace NIC.
type NICConfig struct {
	// Name is the NIC's name inside the namespace, e.g. "eth0".
	Name string
	// MAC is the NIC's address; zero derives a stable one from "NS.NIC".
	MAC frame.MAC
	// MTU is the largest IP packet the NIC sends unsegmented; default 1500.
	MTU int
	// QueueLen bounds each direction's queue; default 1024 frames.
	QueueLen int
	// NoGSO turns superframes off: the stack then segments TCP itself to the MTU.
	NoGSO bool
	// NoGRO turns receive coalescing off (see gro.go): every received TCP segment
	// then reaches the stack on its own.
	NoGRO bool
	// Kind is NICL2 (the default, an Ethernet NIC with ARP and NDP) or NICL3 (an
	// L3-only NIC, see l3.go).
	Kind NICKind
	// PeerMAC is the destination MAC an L3 NIC writes in its fixed framing (the
	// peer's MAC); zero derives one from "NS.NIC.peer". L2 NICs ignore it.
	PeerMAC frame.MAC
}

// NICKind says what link layer a NIC has.
type NICKind uint8

// NIC kinds.
const (
	NICL2 NICKind = iota // Ethernet, with ARP, NDP and a neighbour cache
	NICL3                // bare IP: no ARP, no NDP, no neighbour cache (l3.go)
)

// String returns "l2" or "l3", as configs and listings spell the kind.
func (k NICKind) String() string {
	if k == NICL3 {
		return "l3"
	}
	return "l2"
}

// NIC is a namespace's network interface. It implements frame.Port: ReadFrames
// returns what the namespace sends, WriteFrames hands frames to the namespace.
type NIC struct {
	ns      *Namespace
	id      tcpip.NICID
	name    string
	mac     frame.MAC
	mtu     atomic.Uint32
	gso     bool
	noGRO   bool
	l3      bool      // an L3-only NIC (l3.go)
	peerMAC frame.MAC // an L3 NIC's framing destination
	// own, set by Terminate, holds the addresses a terminating NIC answers ARP and
	// neighbour solicitations for: it is in spoofing mode, where gVisor would answer
	// both for every address on the segment (a router's, another host's, a guest's
	// own during duplicate address detection), so ARP requests and solicitations for
	// any other address are dropped before the stack sees them.
	own atomic.Pointer[neighborOwn]

	// Both queues hold gVisor packets, each with a reference of its own: out the
	// packets the stack sent (ReadFrames copies them into the caller's frames), in the
	// packets WriteFrames built from received frames (the delivery goroutine hands them
	// to the stack). A payload byte is copied once on each side.
	out *packetQueue // stack → ReadFrames
	in  *packetQueue // WriteFrames → delivery goroutine → stack

	// The delivery goroutine runs only while frames come in (see kick, deliver): an
	// idle NIC costs no goroutine, and 10,000 idle namespaces no 10,000 parked stacks.
	deliverer  *worker.Lazy
	deliverBuf []*stack.PacketBuffer // its Pop scratch; one delivery goroutine at a time

	dispatcher atomic.Pointer[dispatcherBox] // gVisor's Ethernet layer, which parses what deliver hands it
	upper      atomic.Pointer[dispatcherBox] // the stack's NIC, above the Ethernet layer
	gro        *groState                     // made by the delivery goroutine when first needed
	stats      frame.Counters
	rxByRef    atomic.Uint64         // frames taken by reference (see RxByReference)
	popBuf     []*stack.PacketBuffer // ReadFrames scratch; one reader at a time

	closeOnce sync.Once
}

type dispatcherBox struct{ d stack.NetworkDispatcher }

// packetQueue is a NIC's bounded queue of packets; closing it drops the references of
// the packets still queued.
type packetQueue = frame.Ring[*stack.PacketBuffer]

func newPacketQueue(capacity int) *packetQueue {
	return frame.NewRing(capacity, (*stack.PacketBuffer).DecRef)
}

var (
	_ frame.PacketReader = (*NIC)(nil)
	_ stack.LinkEndpoint = (*linkEP)(nil)
	_ stack.GSOEndpoint  = (*linkEP)(nil)
)

// gsoMaxSize is the largest superframe a NIC takes from TCP: an IP packet's limit.
const gsoMaxSize = 65535 - header.IPv6FixedHeaderSize - header.TCPHeaderMaximumSize

// AddNIC creates a NIC in the namespace. It starts unattached: frames it sends wait
// in its outbound queue (bounded; when it is full, new frames are dropped and counted)
// until someone reads them.
func (ns *Namespace) AddNIC(c NICConfig) (*NIC, error) {
	if c.Name == "" || c.Name == "lo" {
		return nil, fmt.Errorf("namespace %q: add NIC: invalid name %q", ns.name, c.Name)
	}
	if c.MTU == 0 {
		c.MTU = 1500
	}
	if c.MTU < 68 || c.MTU > 65535 {
		return nil, fmt.Errorf("namespace %q: add NIC %q: MTU %d out of range 68-65535", ns.name, c.Name, c.MTU)
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 1024
	}
	if c.MAC.IsZero() {
		c.MAC = frame.LocalMAC(ns.name + "." + c.Name)
	}
	if c.MAC.IsMulticast() {
		return nil, fmt.Errorf("namespace %q: add NIC %q: MAC %v is multicast", ns.name, c.Name, c.MAC)
	}
	if c.Kind > NICL3 {
		return nil, fmt.Errorf("namespace %q: add NIC %q: unknown kind %d", ns.name, c.Name, c.Kind)
	}
	if c.Kind == NICL3 && c.PeerMAC.IsZero() {
		c.PeerMAC = frame.LocalMAC(ns.name + "." + c.Name + ".peer")
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.closed {
		return nil, ErrClosed
	}
	if _, dup := ns.nics[c.Name]; dup {
		return nil, fmt.Errorf("namespace %q: add NIC %q: name in use", ns.name, c.Name)
	}
	n := &NIC{ns: ns, id: ns.nextID, name: c.Name, mac: c.MAC, gso: !c.NoGSO, noGRO: c.NoGRO,
		l3: c.Kind == NICL3, peerMAC: c.PeerMAC,
		out: newPacketQueue(c.QueueLen), in: newPacketQueue(c.QueueLen)}
	n.deliverer = worker.New(n.deliver)
	n.mtu.Store(uint32(c.MTU))
	var ep stack.LinkEndpoint = newGROLink(n)
	if n.l3 {
		ep = newL3Link(n)
	}
	if e := ns.st.CreateNICWithOptions(n.id, ep, stack.NICOptions{Name: c.Name}); e != nil {
		return nil, fmt.Errorf("namespace %q: add NIC %q: %s", ns.name, c.Name, e)
	}
	ns.nextID++
	ns.nics[c.Name] = n
	return n, nil
}

// NIC returns the named NIC.
func (ns *Namespace) NIC(name string) (*NIC, bool) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	n, ok := ns.nics[name]
	return n, ok
}

// RemoveNIC closes and removes the named NIC, with its addresses and routes.
func (ns *Namespace) RemoveNIC(name string) error {
	ns.mu.Lock()
	n, ok := ns.nics[name]
	if ok {
		delete(ns.nics, name)
		ns.routes = removeRoutesOf(ns.routes, name)
	}
	ns.mu.Unlock()
	if !ok {
		return fmt.Errorf("namespace %q: remove NIC %q: no such NIC", ns.name, name)
	}
	n.Close()
	ns.st.RemoveNIC(n.id)
	n.wait()
	return nil
}

// Name returns the NIC's name inside its namespace.
func (n *NIC) Name() string { return n.name }

// MAC returns the NIC's address.
func (n *NIC) MAC() frame.MAC { return n.mac }

// Kind returns the NIC's kind.
func (n *NIC) Kind() NICKind {
	if n.l3 {
		return NICL3
	}
	return NICL2
}

// Drops implements frame.DropReporter.
func (n *NIC) Drops() map[string]uint64 { return n.stats.Drops() }

// Counters returns the NIC's counters: rx is what the namespace received.
func (n *NIC) Counters() *frame.Counters { return &n.stats }

// RxByReference returns how many of the frames written to the NIC came by reference
// (frame.Packet): their bytes shared with the sending namespace, not copied.
func (n *NIC) RxByReference() uint64 { return n.rxByRef.Load() }

// Info implements frame.Port. The port is named "NS.NIC".
func (n *NIC) Info() frame.Info {
	mtu := int(n.mtu.Load())
	// Frames may come by reference (shared with the sending NIC's stack), and the
	// switch may call WriteFrames from its readers directly: it only queues, and is safe
	// for concurrent use.
	caps := frame.CapCsum | frame.CapPacket | frame.CapDirect
	if n.gso {
		caps |= frame.CapTSO4 | frame.CapTSO6
	}
	return frame.Info{Name: n.ns.name + "." + n.name, MTU: mtu, MaxFrame: frame.MaxFrameFor(mtu, n.gso), Caps: caps, ByRefOnly: true}
}

// ReadFrames implements frame.Port: it returns frames the namespace sent, copying each
// queued packet straight into the caller's buffer.
func (n *NIC) ReadFrames(frames []frame.Frame) (int, error) { return n.read(frames, false) }

// ReadPackets implements frame.PacketReader: like ReadFrames, but each frame keeps the
// queued packet's reference instead of a copy of its bytes; only its first
// frame.PacketHead bytes are copied, for the switch to read. Another NIC's WriteFrames
// then shares the packet's buffers (copy-on-write, as gVisor's own loopback does) and a
// payload byte crosses from one namespace to another without being copied.
func (n *NIC) ReadPackets(frames []frame.Frame) (int, error) { return n.read(frames, true) }

func (n *NIC) read(frames []frame.Frame, byRef bool) (int, error) {
	if len(frames) == 0 {
		return 0, nil
	}
	if cap(n.popBuf) < len(frames) {
		n.popBuf = make([]*stack.PacketBuffer, len(frames))
	}
	pkts := n.popBuf[:len(frames)]
	for {
		k, err := n.out.Pop(pkts)
		if err != nil {
			return 0, err
		}
		got := 0
		for i, pkt := range pkts[:k] {
			pkts[i] = nil
			f := &frames[got]
			size := pkt.Size()
			if !byRef && size > len(f.Buf) || byRef && len(f.Buf) < frame.PacketHead {
				n.stats.DropTx(frame.DropBufferShort, 1)
				pkt.DecRef()
				continue
			}
			f.N = size
			f.Meta = outboundMeta(pkt)
			if byRef {
				copyPacket(f.Buf[:frame.PacketHead], pkt)
				f.Pkt = gvPacket{pkt} // the queue's reference, now the caller's
			} else {
				copyPacket(f.Buf, pkt)
				f.Pkt = nil
				pkt.DecRef()
			}
			got++
		}
		if got > 0 {
			return got, nil
		}
	}
}

// gvPacket is a NIC's outbound gVisor packet handed on by reference (frame.Packet).
// Its one pointer field makes it free to store in an interface.
type gvPacket struct{ pkt *stack.PacketBuffer }

func (p gvPacket) CopyTo(b []byte) int { return copyPacket(b, p.pkt) }
func (p gvPacket) Clone() frame.Packet { return gvPacket{p.pkt.IncRef()} }
func (p gvPacket) Release()            { p.pkt.DecRef() }

// Slices implements frame.SlicedPacket: the packet's views, from its link header on.
func (p gvPacket) Slices(dst [][]byte) [][]byte {
	eachView(p.pkt, func(s []byte) bool { dst = append(dst, s); return true })
	return dst
}

// eachView calls fn with each of pkt's views from its link header on, in order, until
// fn returns false. It walks them as pkt.AsSlices does, without allocating a slice of
// them.
func eachView(pkt *stack.PacketBuffer, fn func([]byte) bool) {
	views, skip := pkt.AsViewList()
	for v := views.Front(); v != nil; v = v.Next() {
		s := v.AsSlice()
		if skip >= len(s) {
			skip -= len(s)
			continue
		}
		if !fn(s[skip:]) {
			return
		}
		skip = 0
	}
}

// copyPacket copies pkt, from its link header on, into b: all of it when b holds
// pkt.Size() bytes, its first len(b) bytes otherwise.
func copyPacket(b []byte, pkt *stack.PacketBuffer) int {
	n := 0
	eachView(pkt, func(s []byte) bool { n += copy(b[n:], s); return n < len(b) })
	return n
}

// outboundMeta translates a sent packet's GSO options into a frame's offload metadata.
func outboundMeta(pkt *stack.PacketBuffer) frame.Meta {
	var m frame.Meta
	g := pkt.GSOOptions
	if g.Type == stack.GSONone {
		return m
	}
	if g.NeedsCsum {
		m.NeedsCsum = true
		m.CsumStart = uint16(header.EthernetMinimumSize) + g.L3HdrLen
		m.CsumOffset = g.CsumOffset
	}
	if pkt.Data().Size() > int(g.MSS) {
		switch g.Type {
		case stack.GSOTCPv4:
			m.GSO = frame.GSOTCPv4
		case stack.GSOTCPv6:
			m.GSO = frame.GSOTCPv6
		}
		m.GSOSize = g.MSS
		m.HdrLen = uint16(pkt.HeaderSize())
	}
	return m
}

// Why WriteFrames drops a frame before it queues it (besides a full queue).
const (
	dropShort    = iota // shorter than an Ethernet header
	dropLong            // longer than a superframe (or than its buffer)
	dropNotOurs         // an ARP request or neighbour solicitation for another address, to a terminating NIC
	dropNotIP           // not IP, to an L3 NIC
	dropChecksum        // an L4 checksum that does not verify
)

var nicDropReasons = [...]frame.DropReason{frame.DropTooShort, frame.DropBufferShort, frame.DropNotOurs, frame.DropNotIP, frame.DropBadChecksum}

// WriteFrames implements frame.Port: it copies each frame into a gVisor packet (or, for
// a frame by reference, shares the sender's) and queues that for the namespace to
// receive. Frames of a bad length or beyond the
// queue's room are not taken; a frame without offload metadata whose TCP or UDP
// checksum is wrong is taken and dropped. Every drop is counted by its reason
// (too_short, buffer_short, not_ours, not_ip, bad_checksum, queue_full).
func (n *NIC) WriteFrames(frames []frame.Frame) (int, error) {
	select {
	case <-n.in.Done():
		return 0, net.ErrClosed
	default:
	}
	var batch [64]*stack.PacketBuffer
	var drops [len(nicDropReasons)]uint64
	took, byRef := 0, 0
	for len(frames) > 0 {
		k, taken := 0, 0 // taken: frames of this batch accepted, queued or not
		for k < len(batch) && len(frames) > 0 {
			f := &frames[0]
			frames = frames[1:]
			if f.N < frame.MinFrameLen {
				drops[dropShort]++
				continue
			}
			if f.N > frame.MaxSuperFrame || f.N > len(f.Buf) && f.Pkt == nil {
				drops[dropLong]++
				continue
			}
			if own := n.own.Load(); own != nil && own.foreign(f) {
				drops[dropNotOurs]++
				continue
			}
			if n.l3 && !l3Frame(f.Buf[:min(f.N, len(f.Buf))]) {
				drops[dropNotIP]++
				continue
			}
			taken++
			var pkt *stack.PacketBuffer
			if f.Pkt != nil {
				pkt = inboundByReference(f)
				byRef++
			} else {
				if !f.Meta.NeedsCsum && !f.Meta.CsumValid && !l4ChecksumOK(f.Bytes()) {
					drops[dropChecksum]++
					continue
				}
				pkt = stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: inboundPayload(f.Bytes())})
				// A partial checksum (NeedsCsum) came from a sender that trusts the receiver
				// to check nothing: an in-process stack or an offload TAP's kernel.
				pkt.RXChecksumValidated = f.Meta.NeedsCsum || f.Meta.CsumValid
			}
			batch[k] = pkt
			k++
		}
		q := n.in.PushBatch(batch[:k])
		for i, pkt := range batch[q:k] {
			pkt.DecRef()
			batch[q+i] = nil
		}
		clear(batch[:q])
		took += taken - (k - q)
		if k > q {
			n.stats.DropRx(frame.DropQueueFull, uint64(k-q))
		}
	}
	for i, c := range drops {
		if c > 0 {
			n.stats.DropRx(nicDropReasons[i], c)
		}
	}
	if byRef > 0 {
		n.rxByRef.Add(uint64(byRef))
	}
	if took > 0 {
		n.kick()
	}
	return took, nil
}

// deliverLinger is how long an idle delivery goroutine waits for more frames before it
// exits. A fresh goroutine starts on a small stack that gVisor's deep receive path
// grows (copies) several times, which tripled request/response latency when the
// goroutine exited as soon as the queue was empty; lingering keeps it for busy NICs
// while idle ones still drop theirs.
const deliverLinger = time.Second

// kick makes sure a delivery goroutine sees the frames just queued: it starts one, or
// wakes the one that runs.
func (n *NIC) kick() { n.deliverer.Kick() }

// deliver hands queued inbound packets to the stack, on the NIC's own goroutine, until
// the queue has been empty for deliverLinger or is closed.
func (n *NIC) deliver() {
	if n.deliverBuf == nil {
		n.deliverBuf = make([]*stack.PacketBuffer, 64)
	}
	pkts := n.deliverBuf
	pending := func() bool { return n.in.Len() > 0 }
	for {
		k := n.in.TryPop(pkts)
		if k == 0 {
			if !n.deliverer.Idle(deliverLinger, n.in.Done(), pending) {
				return
			}
			continue
		}
		box := n.dispatcher.Load()
		grouped := box != nil && n.groBegin(k)
		delivered, bytes := 0, 0
		for i, pkt := range pkts[:k] {
			if box != nil {
				delivered++
				bytes += pkt.Size()
				box.d.DeliverNetworkPacket(0, pkt)
			}
			pkt.DecRef()
			pkts[i] = nil
		}
		if grouped {
			n.groEnd()
		}
		n.stats.RxFrames.Add(uint64(delivered))
		n.stats.RxBytes.Add(uint64(bytes))
		if delivered < k {
			n.stats.DropRx(frame.DropLinkDown, uint64(k-delivered))
		}
	}
}

// inboundByReference builds the packet a namespace receives from a frame held by
// reference. Another NIC's packet shares its buffers: gVisor's buffers are
// copy-on-write and its receive path does not write into a packet it did not allocate
// (its loopback hands packets between sender and receiver the same way). The frame never
// left the process, so its checksums, complete or partial, are as the sender made them:
// they are not checked again, as the kernel does not check a veth's.
func inboundByReference(f *frame.Frame) *stack.PacketBuffer {
	var payload buffer.Buffer
	head := f.Buf[:min(f.N, frame.PacketHead)]
	if gp, ok := f.Pkt.(gvPacket); ok {
		payload = gp.pkt.ToBuffer()
		var sent [frame.PacketHead]byte
		if !bytes.Equal(head, sent[:copyPacket(sent[:len(head)], gp.pkt)]) {
			// Rewritten on the way (a router's MACs and TTL): the head is the frame's.
			payload.TrimFront(int64(len(head)))
			rest := payload
			payload = buffer.MakeWithData(head)
			payload.Merge(&rest)
		}
	} else {
		v := buffer.NewViewSize(f.N)
		f.Pkt.CopyTo(v.AsSlice())
		copy(v.AsSlice(), head)
		payload = buffer.MakeWithView(v)
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: payload})
	pkt.RXChecksumValidated = true
	pkt.NetworkProtocolNumber = sharedMark // keeps it out of GRO (see gro.go)
	return pkt
}

// headSplit is where inboundPayload cuts a frame: past the Ethernet, IP and TCP headers
// of nearly every packet (14 + 40 + 60 with room for IPv6 extension headers).
const headSplit = 192

// inboundPayload copies a received frame into a gVisor buffer as two views, the first
// headSplit bytes (the headers) and the rest. gVisor's IPv4 receive path holds a
// reference to the network header's view while it reads that header again, and
// buffer.PullUp then clones the whole chunk under it: with one view per frame that was
// a 64 KB copy per superframe (11% of the CPU of a switched TCP stream); split, it
// copies the small header chunk only. The split also keeps a 64 KB superframe with its
// Ethernet header inside gVisor's largest pooled chunk (64 KiB) instead of a fresh
// allocation per frame.
func inboundPayload(b []byte) buffer.Buffer {
	if len(b) <= 2*headSplit {
		return buffer.MakeWithData(b)
	}
	buf := buffer.MakeWithData(b[:headSplit])
	buf.Append(buffer.NewViewWithData(b[headSplit:]))
	return buf
}

// Close implements frame.Port: the NIC stops carrying frames. Its stack keeps it until
// RemoveNIC or the namespace's Close. Close is idempotent.
func (n *NIC) Close() error {
	n.closeOnce.Do(func() {
		n.in.Close()
		n.out.Close()
	})
	return nil
}

// wait waits for the delivery goroutine, if one runs, and keeps new ones from
// starting. Call it after Close.
func (n *NIC) wait() { n.deliverer.Stop() }

// send queues one outbound packet (Ethernet header included), holding a reference to
// it until ReadFrames has copied it out. Holding it is safe: gVisor does not change a
// packet once its link endpoint has it (qdisc/fifo queues packets the same way), and
// its buffers are copy-on-write, so a sender reusing the payload's chunks copies them.
func (n *NIC) send(pkt *stack.PacketBuffer) bool {
	size := pkt.Size()
	if size > frame.MaxSuperFrame {
		return false
	}
	if !n.out.Push(pkt.IncRef()) {
		pkt.DecRef()
		n.stats.DropTx(frame.DropQueueFull, 1)
		return false
	}
	n.stats.TxFrames.Add(1)
	n.stats.TxBytes.Add(uint64(size))
	return true
}

// linkEP is the gVisor side of a NIC, below gVisor's Ethernet layer.
type linkEP struct {
	nic     *NIC
	onClose func()
}

func (e *linkEP) MTU() uint32             { return e.nic.mtu.Load() }
func (e *linkEP) SetMTU(mtu uint32)       { e.nic.mtu.Store(mtu) }
func (e *linkEP) MaxHeaderLength() uint16 { return 0 }
func (e *linkEP) LinkAddress() tcpip.LinkAddress {
	return tcpip.LinkAddress(e.nic.mac[:])
}
func (e *linkEP) SetLinkAddress(tcpip.LinkAddress) {}
func (e *linkEP) Capabilities() stack.LinkEndpointCapabilities {
	// gVisor takes RX checksum offload per NIC (stack/nic.go overrides the packet's
	// flag), so it is always on and deliver checks frames that lack offload metadata.
	return stack.CapabilityRXChecksumOffload
}
func (e *linkEP) Attach(d stack.NetworkDispatcher) {
	if d == nil {
		e.nic.dispatcher.Store(nil)
		return
	}
	e.nic.dispatcher.Store(&dispatcherBox{d})
}
func (e *linkEP) IsAttached() bool                        { return e.nic.dispatcher.Load() != nil }
func (e *linkEP) Wait()                                   {}
func (e *linkEP) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareEther }
func (e *linkEP) AddHeader(*stack.PacketBuffer)           {}
func (e *linkEP) ParseHeader(*stack.PacketBuffer) bool    { return true }
func (e *linkEP) Close() {
	if e.onClose != nil {
		e.onClose()
	}
}
func (e *linkEP) SetOnCloseAction(f func()) { e.onClose = f }

// GSOMaxSize implements stack.GSOEndpoint.
func (e *linkEP) GSOMaxSize() uint32 {
	if !e.nic.gso {
		return 0
	}
	return gsoMaxSize
}

// SupportedGSO implements stack.GSOEndpoint: "host" GSO, meaning whoever takes the
// frame (another stack, an offload TAP's kernel) segments it if it must.
func (e *linkEP) SupportedGSO() stack.SupportedGSO {
	if !e.nic.gso {
		return stack.GSONotSupported
	}
	return stack.HostGSOSupported
}

// WritePackets implements stack.LinkWriter: it only queues, never blocks.
func (e *linkEP) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	select {
	case <-e.nic.out.Done():
		return 0, &tcpip.ErrClosedForSend{}
	default:
	}
	sent := 0
	for _, pkt := range pkts.AsSlice() {
		if e.nic.send(pkt) {
			sent++
		}
	}
	if sent == 0 && pkts.Len() > 0 {
		return 0, &tcpip.ErrNoBufferSpace{}
	}
	return sent, nil
}

var errNoNIC = errors.New("no such NIC")
