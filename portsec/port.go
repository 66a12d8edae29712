package portsec

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/vnetd/vnetd/frame"
)

// Drop reasons, the keys of Status.Drops.
const (
	DropSrcMAC     = "src_mac"       // a source MAC the policy does not allow
	DropARP        = "arp_spoof"     // an ARP packet claiming another MAC or address
	DropND         = "nd_spoof"      // an NDP message claiming another MAC or address
	DropIPSource   = "ip_source"     // an IP source address outside the allowed set
	DropLinkDownIn = "link_down_in"  // sent by the port while it was down
	DropLinkDown   = "link_down_out" // written to the port while it was down
	DropPeerDown   = "peer_down"     // sent by a pair end while its peer was down
)

const (
	dropSrcMAC = iota
	dropARP
	dropND
	dropIPSource
	dropLinkDownIn
	dropLinkDownOut
	dropPeerDown
	numDrops
	pass = -1
)

var dropNames = [numDrops]string{DropSrcMAC, DropARP, DropND, DropIPSource, DropLinkDownIn, DropLinkDown, DropPeerDown}

// Options configure a Port.
type Options struct {
	// Policy is what the port may send; the zero Policy allows everything.
	Policy Policy
	// Now is the clock of DHCP snooping's leases; default time.Now.
	Now func() time.Time
	// OnClose, when set, runs once after the Port has closed.
	OnClose func()
}

// Port is a frame.Port that enforces a Policy on the frames read from the port it
// wraps and carries its administrative link state. Attach Port.Attach(), not the Port
// itself: it keeps the wrapped port's frame.PacketReader.
//
// Port advertises the wrapped port's Info unchanged; its WriteFrames is as concurrent
// as the wrapped port's.
type Port struct {
	inner frame.Port
	pr    frame.PacketReader // inner as one, or nil
	pol   atomic.Pointer[compiled]
	now   func() time.Time

	down atomic.Bool // administratively down (the zero value is up)
	peer atomic.Pointer[Port]

	drops     [numDrops]atomic.Uint64
	txDropped atomic.Uint64 // pair end: frames it sent that were dropped for link state

	snoop snooper

	closeOnce sync.Once
	onClose   func()
}

var _ frame.Port = (*Port)(nil)

// Wrap returns p wrapped with o's policy, link up.
func Wrap(p frame.Port, o Options) *Port {
	if o.Now == nil {
		o.Now = time.Now
	}
	w := &Port{inner: p, now: o.Now, onClose: o.OnClose}
	w.pr, _ = p.(frame.PacketReader)
	w.SetPolicy(o.Policy)
	return w
}

// packetPort is a Port whose wrapped port is a frame.PacketReader.
type packetPort struct{ *Port }

// ReadPackets implements frame.PacketReader.
func (p packetPort) ReadPackets(frames []frame.Frame) (int, error) { return p.read(frames, true) }

// Attach returns the port to attach in place of the wrapped one: p, or p with
// ReadPackets when the wrapped port has it.
func (p *Port) Attach() frame.Port {
	if p.pr != nil {
		return packetPort{p}
	}
	return p
}

// Pair joins two Ports as the ends of a pass-through pair: what one sends while the
// other is down is dropped and counted as the sender's tx_dropped.
func Pair(a, b *Port) {
	a.peer.Store(b)
	b.peer.Store(a)
}

// Peer returns the other end of p's pair, or nil.
func (p *Port) Peer() *Port { return p.peer.Load() }

// SetPolicy replaces the policy. Addresses learned by snooping stay.
func (p *Port) SetPolicy(pol Policy) {
	c := compile(pol)
	if c != nil {
		p.snoop.max.Store(int64(c.maxLearned))
	}
	p.pol.Store(c)
}

// Policy returns the policy in force.
func (p *Port) Policy() Policy {
	if c := p.pol.Load(); c != nil {
		return c.pol
	}
	return Policy{}
}

// SetUp sets the administrative link state.
func (p *Port) SetUp(up bool) { p.down.Store(!up) }

// IsUp reports the administrative link state.
func (p *Port) IsUp() bool { return !p.down.Load() }

// Status is a Port's state and counters.
type Status struct {
	// Up is the administrative link state.
	Up bool `json:"up"`
	// PeerUp is the pair peer's state; absent when the port is not a pair end.
	PeerUp *bool `json:"peer_up,omitempty"`
	// TxDropped counts the frames a pair end sent that were dropped because it or its
	// peer was down.
	TxDropped uint64 `json:"tx_dropped"`
	// Drops counts dropped frames by reason (only reasons that happened).
	Drops map[string]uint64 `json:"drops"`
	// Learned are the addresses DHCP snooping allows now.
	Learned []Lease `json:"learned,omitempty"`
	// SnoopLearned counts the leases snooping learned; SnoopEvicted those it forgot
	// early because MaxLearned were held.
	SnoopLearned uint64 `json:"snoop_learned,omitempty"`
	SnoopEvicted uint64 `json:"snoop_evicted,omitempty"`
}

// Status returns p's state and counters.
func (p *Port) Status() Status {
	st := Status{Up: p.IsUp(), TxDropped: p.txDropped.Load(), Drops: map[string]uint64{}}
	if q := p.peer.Load(); q != nil {
		up := q.IsUp()
		st.PeerUp = &up
	}
	for i := range p.drops {
		if n := p.drops[i].Load(); n > 0 {
			st.Drops[dropNames[i]] = n
		}
	}
	st.Learned = p.snoop.list(p.now())
	st.SnoopLearned, st.SnoopEvicted = p.snoop.learned.Load(), p.snoop.evicted.Load()
	return st
}

// Drops returns the count of one drop reason.
func (p *Port) Drops(reason string) uint64 {
	for i, n := range dropNames {
		if n == reason {
			return p.drops[i].Load()
		}
	}
	return 0
}

// DropReasons lists every drop reason, in a fixed order.
func DropReasons() []string { return dropNames[:] }

// Info implements frame.Port: the wrapped port's.
func (p *Port) Info() frame.Info { return p.inner.Info() }

// Inner returns the wrapped port.
func (p *Port) Inner() frame.Port { return p.inner }

// WriteFrames implements frame.Port. Frames written while the link is down are
// dropped and counted (returned as not accepted: the writer counts them as its
// tx_dropped too).
func (p *Port) WriteFrames(frames []frame.Frame) (int, error) {
	if p.down.Load() {
		p.drops[dropLinkDownOut].Add(uint64(len(frames)))
		return 0, nil
	}
	if c := p.pol.Load(); c != nil && c.pol.DHCPSnooping {
		for i := range frames {
			p.snoop.watchAck(&frames[i], p.now)
		}
	}
	return p.inner.WriteFrames(frames)
}

// ReadFrames implements frame.Port.
func (p *Port) ReadFrames(frames []frame.Frame) (int, error) { return p.read(frames, false) }

func (p *Port) read(frames []frame.Frame, byRef bool) (int, error) {
	for {
		var n int
		var err error
		if byRef && p.pr != nil {
			n, err = p.pr.ReadPackets(frames)
		} else {
			n, err = p.inner.ReadFrames(frames)
		}
		if err != nil || n == 0 {
			return n, err
		}
		c := p.pol.Load()
		peer := p.peer.Load()
		if c == nil && !p.down.Load() && (peer == nil || !peer.down.Load()) {
			return n, nil
		}
		if k := p.filter(c, peer, frames[:n]); k > 0 {
			return k, nil
		}
		// Every frame was dropped: read again (a closed wrapped port ends this).
	}
}

// filter drops the frames of fs that fail, moving the others to its front, and
// returns how many are left.
func (p *Port) filter(c *compiled, peer *Port, fs []frame.Frame) int {
	reason := pass
	switch {
	case p.down.Load():
		reason = dropLinkDownIn
	case peer != nil && peer.down.Load():
		reason = dropPeerDown
	}
	if reason != pass {
		p.drops[reason].Add(uint64(len(fs)))
		if peer != nil {
			p.txDropped.Add(uint64(len(fs)))
		}
		for i := range fs {
			if fs[i].Pkt != nil {
				fs[i].Pkt.Release()
				fs[i].Pkt = nil
			}
		}
		return 0
	}
	k := 0
	for i := range fs {
		f := &fs[i]
		if r := p.check(c, f); r != pass {
			p.drops[r].Add(1)
			if f.Pkt != nil {
				f.Pkt.Release()
				f.Pkt = nil
			}
			continue
		}
		if k != i && !moveFrame(&fs[k], f) {
			continue // the caller's buffers differ in size: lost, never seen in practice
		}
		k++
	}
	return k
}

// moveFrame copies src (its head, for a frame by reference) into dst's buffer: the
// caller's buffers stay where the caller put them.
func moveFrame(dst, src *frame.Frame) bool {
	h := src.N
	if src.Pkt != nil {
		h = min(src.N, frame.PacketHead, len(src.Buf))
	}
	if len(dst.Buf) < h {
		if src.Pkt != nil {
			src.Pkt.Release()
			src.Pkt = nil
		}
		return false
	}
	copy(dst.Buf, src.Buf[:h])
	dst.N, dst.Meta, dst.Pkt = src.N, src.Meta, src.Pkt
	src.Pkt = nil
	return true
}

// Close implements frame.Port: it closes the wrapped port.
func (p *Port) Close() error {
	err := p.inner.Close()
	p.closeOnce.Do(func() {
		if p.onClose != nil {
			p.onClose()
		}
	})
	return err
}
