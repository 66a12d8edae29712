package nsstack

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vnetd/vnetd/frame"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
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
}

// NIC is a namespace's network interface. It implements frame.Port: ReadFrames
// returns what the namespace sends, WriteFrames hands frames to the namespace.
type NIC struct {
	ns   *Namespace
	id   tcpip.NICID
	name string
	mac  frame.MAC
	mtu  atomic.Uint32
	gso  bool

	out *frame.Queue // stack → ReadFrames
	in  *frame.Queue // WriteFrames → delivery goroutine → stack

	// The delivery goroutine runs only while frames come in (see kick, deliver): an
	// idle NIC costs no goroutine, and 10,000 idle namespaces no 10,000 parked stacks.
	delivering atomic.Bool   // a delivery goroutine runs
	wake       chan struct{} // capacity 1: "in may have frames", for a parked deliverer
	deliverBuf []*frame.Buf  // its Pop scratch; one delivery goroutine at a time
	runMu      sync.Mutex    // orders kick's wg.Add before wait's wg.Wait
	stopped    bool          // guarded by runMu: wait was called, start no more
	deliverWG  sync.WaitGroup

	dispatcher atomic.Pointer[dispatcherBox]
	stats      frame.Counters
	popBuf     []*frame.Buf // ReadFrames scratch; one reader at a time

	closeOnce sync.Once
}

type dispatcherBox struct{ d stack.NetworkDispatcher }

var (
	_ frame.Port         = (*NIC)(nil)
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
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.closed {
		return nil, ErrClosed
	}
	if _, dup := ns.nics[c.Name]; dup {
		return nil, fmt.Errorf("namespace %q: add NIC %q: name in use", ns.name, c.Name)
	}
	n := &NIC{ns: ns, id: ns.nextID, name: c.Name, mac: c.MAC, gso: !c.NoGSO,
		out: frame.NewQueue(c.QueueLen), in: frame.NewQueue(c.QueueLen), wake: make(chan struct{}, 1)}
	n.mtu.Store(uint32(c.MTU))
	ep := ethernet.New(&linkEP{nic: n})
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

// Counters returns the NIC's counters: rx is what the namespace received.
func (n *NIC) Counters() *frame.Counters { return &n.stats }

// Info implements frame.Port. The port is named "NS.NIC".
func (n *NIC) Info() frame.Info {
	mtu := int(n.mtu.Load())
	caps := frame.CapCsum
	if n.gso {
		caps |= frame.CapTSO4 | frame.CapTSO6
	}
	return frame.Info{Name: n.ns.name + "." + n.name, MTU: mtu, MaxFrame: frame.MaxFrameFor(mtu, n.gso), Caps: caps}
}

// ReadFrames implements frame.Port: it returns frames the namespace sent.
func (n *NIC) ReadFrames(frames []frame.Frame) (int, error) {
	if len(frames) == 0 {
		return 0, nil
	}
	if cap(n.popBuf) < len(frames) {
		n.popBuf = make([]*frame.Buf, len(frames))
	}
	bufs := n.popBuf[:len(frames)]
	for {
		k, err := n.out.Pop(bufs)
		if err != nil {
			return 0, err
		}
		got := 0
		for _, b := range bufs[:k] {
			if b.CopyTo(&frames[got]) {
				got++
			} else {
				n.stats.TxDropped.Add(1)
			}
		}
		frame.ReleaseBufs(bufs[:k])
		if got > 0 {
			return got, nil
		}
	}
}

// WriteFrames implements frame.Port: it queues frames for the namespace to receive.
func (n *NIC) WriteFrames(frames []frame.Frame) (int, error) {
	select {
	case <-n.in.Done():
		return 0, net.ErrClosed
	default:
	}
	took, _ := n.in.PushCopies(frames, frame.MaxSuperFrame)
	if dropped := len(frames) - took; dropped > 0 {
		n.stats.RxDropped.Add(uint64(dropped))
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
// wakes the one that runs (which re-checks the queue before it exits, so a frame
// queued while it was leaving is not stranded).
func (n *NIC) kick() {
	if !n.delivering.Load() {
		n.runMu.Lock()
		started := !n.stopped && n.delivering.CompareAndSwap(false, true)
		if started {
			n.deliverWG.Add(1)
			go n.deliver()
		}
		n.runMu.Unlock()
		if started {
			return
		}
	}
	select {
	case n.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// deliver feeds queued inbound frames to the stack, on the NIC's own goroutine, until
// the queue has been empty for deliverLinger or is closed.
func (n *NIC) deliver() {
	defer n.deliverWG.Done()
	if n.deliverBuf == nil {
		n.deliverBuf = make([]*frame.Buf, 64)
	}
	bufs := n.deliverBuf
	var idle *time.Timer
	defer func() {
		if idle != nil {
			idle.Stop()
		}
	}()
	for {
		k := n.in.TryPop(bufs)
		if k == 0 {
			if idle == nil {
				idle = time.NewTimer(deliverLinger)
			} else {
				idle.Reset(deliverLinger)
			}
			select {
			case <-n.wake:
				continue
			case <-n.in.Done():
				return
			case <-idle.C:
			}
			// Idle: exit, unless a frame came in after TryPop and its WriteFrames saw
			// delivering still set (then it started nobody).
			n.delivering.Store(false)
			if n.in.Len() == 0 || !n.delivering.CompareAndSwap(false, true) {
				return
			}
			continue
		}
		box := n.dispatcher.Load()
		delivered, bytes := 0, 0
		for _, b := range bufs[:k] {
			if box == nil || (!b.Meta.NeedsCsum && !b.Meta.CsumValid && !l4ChecksumOK(b.Bytes())) {
				continue
			}
			delivered++
			bytes += b.N
			pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: inboundPayload(b.Bytes())})
			// A partial checksum (NeedsCsum) came from a sender that trusts the receiver
			// to check nothing: an in-process stack or an offload TAP's kernel.
			pkt.RXChecksumValidated = b.Meta.NeedsCsum || b.Meta.CsumValid
			box.d.DeliverNetworkPacket(0, pkt)
			pkt.DecRef()
		}
		n.stats.RxFrames.Add(uint64(delivered))
		n.stats.RxBytes.Add(uint64(bytes))
		if delivered < k {
			n.stats.RxDropped.Add(uint64(k - delivered))
		}
		frame.ReleaseBufs(bufs[:k])
	}
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
func (n *NIC) wait() {
	n.runMu.Lock()
	n.stopped = true
	n.runMu.Unlock()
	n.deliverWG.Wait()
}

// send queues one outbound packet (Ethernet header included) as a frame.
func (n *NIC) send(pkt *stack.PacketBuffer) bool {
	size := pkt.Size()
	if size > frame.MaxSuperFrame {
		return false
	}
	b := frame.GetBuf(size)
	off := 0
	for _, v := range pkt.AsSlices() {
		off += copy(b.B[off:], v)
	}
	b.N = off
	if g := pkt.GSOOptions; g.Type != stack.GSONone {
		if g.NeedsCsum {
			b.Meta.NeedsCsum = true
			b.Meta.CsumStart = uint16(header.EthernetMinimumSize) + g.L3HdrLen
			b.Meta.CsumOffset = g.CsumOffset
		}
		if pkt.Data().Size() > int(g.MSS) {
			switch g.Type {
			case stack.GSOTCPv4:
				b.Meta.GSO = frame.GSOTCPv4
			case stack.GSOTCPv6:
				b.Meta.GSO = frame.GSOTCPv6
			}
			b.Meta.GSOSize = g.MSS
			b.Meta.HdrLen = uint16(pkt.HeaderSize())
		}
	}
	if !n.out.Push(b) {
		b.Release()
		n.stats.TxDropped.Add(1)
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
