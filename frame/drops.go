package frame

// DropReason says why a port dropped a frame itself: on the way in, before any switch
// saw it, or on the way out, after a switch handed it over. Ports count drops with
// Counters.DropRx and DropTx; listings show them by Name, next to the switch's own
// reasons for the port.
type DropReason uint8

// Drop reasons ports count.
const (
	DropTooShort    DropReason = iota // shorter than an Ethernet header
	DropTruncated                     // the kernel delivered less than the frame (a ring block too small)
	DropBadLength                     // a length prefix out of range (a stream VM; the connection is closed)
	DropBadHeader                     // a virtio-net header that does not decode
	DropBufferShort                   // longer than the reader's buffer
	DropChecksum                      // a partial checksum that could not be completed
	DropSegment                       // a superframe that could not be segmented
	DropQueueFull                     // the port's own queue was full
	DropSendError                     // the kernel or the peer refused the frame (EAGAIN, ENOBUFS, a peer gone)
	DropLinkDown                      // the link was down
	DropKernel                        // the kernel dropped it before vnetd read it (a packet ring's drop count)
	DropRingCorrupt                   // a packet ring block that did not parse
	DropRefusedPeer                   // a sender the port does not take (no address, over a cap)
	DropNotIP                         // neither IPv4 nor IPv6, to a port that carries only IP (an L3 NIC)
	DropBadChecksum                   // an L4 checksum that does not verify (a stack's NIC drops it, as a kernel does)
	DropNotOurs                       // an ARP request or IPv6 neighbour solicitation for an address the port does not own (a gateway's NIC)
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{"too_short", "truncated", "bad_length", "bad_vnet_header",
	"buffer_short", "checksum", "segment", "queue_full", "send_error", "link_down", "kernel",
	"ring_corrupt", "refused_peer", "not_ip", "bad_checksum", "not_ours"}

// Name is the reason as listings show it, e.g. "too_short".
func (r DropReason) Name() string {
	if r < numDropReasons {
		return dropReasonNames[r]
	}
	return "unknown"
}

// DropRx counts n frames dropped on the way in for reason r (RxDropped too).
func (c *Counters) DropRx(r DropReason, n uint64) {
	c.RxDropped.Add(n)
	if r < numDropReasons {
		c.drops[r].Add(n)
	}
}

// DropTx counts n frames dropped on the way out for reason r (TxDropped too).
func (c *Counters) DropTx(r DropReason, n uint64) {
	c.TxDropped.Add(n)
	if r < numDropReasons {
		c.drops[r].Add(n)
	}
}

// Drops returns the drops counted with DropRx and DropTx by reason name, only the
// reasons that happened; nil when none did.
func (c *Counters) Drops() map[string]uint64 {
	var m map[string]uint64
	for i := range c.drops {
		if v := c.drops[i].Load(); v != 0 {
			if m == nil {
				m = make(map[string]uint64)
			}
			m[dropReasonNames[i]] = v
		}
	}
	return m
}

// DropReporter is a port that counts its own drops by reason.
type DropReporter interface {
	// Drops returns the count of each reason that happened.
	Drops() map[string]uint64
}

// PortDrops returns the drops p counts itself, by reason, looking through
// decorators (a port with an Inner method, such as an impairment) to the port they
// wrap; nil when it counts none.
func PortDrops(p Port) map[string]uint64 {
	for l := range layers(p) {
		if r, ok := l.(DropReporter); ok {
			return r.Drops()
		}
	}
	return nil
}

// layers yields p and then, through their Inner methods, the ports the decorators
// around it wrap, outermost first.
func layers(p Port) func(yield func(Port) bool) {
	return func(yield func(Port) bool) {
		for range 8 { // decorators nest a few deep at most
			if !yield(p) {
				return
			}
			w, ok := p.(interface{ Inner() Port })
			if !ok {
				return
			}
			p = w.Inner()
		}
	}
}

// DeviceState is a port that knows whether the device behind it is there (a TAP or
// host interface that was deleted and is being reopened reports false meanwhile).
type DeviceState interface {
	Up() bool
}

// DeviceUp reports whether every layer of p that knows (DeviceState), looking
// through decorators as PortDrops does, says its device is there; true when none
// knows.
func DeviceUp(p Port) bool {
	for l := range layers(p) {
		if s, ok := l.(DeviceState); ok && !s.Up() {
			return false
		}
	}
	return true
}
