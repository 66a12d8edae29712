package portsec

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vnetd/vnetd/frame"
)

// Lease is an address DHCP snooping allows until Expires.
type Lease struct {
	Addr    netip.Addr `json:"addr"`
	MAC     frame.MAC  `json:"mac"`
	Expires time.Time  `json:"expires"`
}

// snooper is DHCP snooping's state: the MACs that asked for an address through the
// port and the leases seen granted to them.
type snooper struct {
	mu      sync.Mutex
	clients []frame.MAC // guarded by mu; recent DHCP clients, at most maxClients
	leases  atomic.Pointer[[]Lease]
	max     atomic.Int64 // cap on leases (the policy's MaxLearned)

	learned, evicted atomic.Uint64
}

// maxClients bounds the DHCP client MACs remembered per port.
const maxClients = 16

// watchClient notes the source MAC of a DHCP request read from the port (UDP to port
// 67): an ACK written back is learned only for a MAC that asked through this port, not
// for one flooded to every port. b is the frame (its head), off its IPv4 header.
func (s *snooper) watchClient(b []byte, off int) {
	ihl := int(b[off]&0x0f) * 4
	if len(b) < off+ihl+4 || binary.BigEndian.Uint16(b[off+ihl+2:]) != 67 {
		return
	}
	m := frame.MAC(b[6:12])
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.clients, m) {
		return
	}
	if len(s.clients) >= maxClients {
		s.clients = slices.Delete(s.clients, 0, 1)
	}
	s.clients = append(s.clients, m)
}

// watchAck learns the address a DHCPACK written to the port assigns.
func (s *snooper) watchAck(f *frame.Frame, now func() time.Time) {
	b := f.Buf[:min(f.N, len(f.Buf))]
	off := 12
	if len(b) < off+2 {
		return
	}
	et := binary.BigEndian.Uint16(b[off:])
	if et == etherVLAN && len(b) >= off+6 {
		off += 4
		et = binary.BigEndian.Uint16(b[off:])
	}
	off += 2
	if et != etherIPv4 || len(b) < off+20 || b[off+9] != protoUDP {
		return
	}
	ihl := int(b[off]&0x0f) * 4
	udp := off + ihl
	if len(b) < udp+4 || binary.BigEndian.Uint16(b[udp:]) != 67 || binary.BigEndian.Uint16(b[udp+2:]) != 68 {
		return
	}
	// A DHCP reply: rare, so copying it out is fine.
	whole := b
	if f.Pkt != nil {
		buf := frame.GetBuf(f.N)
		defer buf.Release()
		g := frame.Frame{Buf: buf.B, N: f.N, Pkt: f.Pkt}
		copy(g.Buf, f.Buf[:min(f.N, frame.PacketHead)])
		g.Fill()
		whole = g.Bytes()
	}
	if len(whole) < udp+8 {
		return
	}
	msg, err := dhcpv4.FromBytes(whole[udp+8:])
	if err != nil || msg.MessageType() != dhcpv4.MessageTypeAck || len(msg.ClientHWAddr) != 6 {
		return
	}
	ip, ok := netip.AddrFromSlice(msg.YourIPAddr.To4())
	if !ok || ip.IsUnspecified() {
		return
	}
	mac := frame.MAC(msg.ClientHWAddr)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.clients, mac) {
		return
	}
	s.addLocked(Lease{Addr: ip, MAC: mac, Expires: now().Add(msg.IPAddressLeaseTime(time.Hour))}, now())
}

// addLocked learns l, replacing a lease of the same address or MAC, and forgetting
// the expired ones and, at the cap, the one expiring first.
func (s *snooper) addLocked(l Lease, now time.Time) {
	var cur []Lease
	if p := s.leases.Load(); p != nil {
		cur = *p
	}
	next := make([]Lease, 0, len(cur)+1)
	for _, o := range cur {
		if o.Addr != l.Addr && o.MAC != l.MAC && o.Expires.After(now) {
			next = append(next, o)
		}
	}
	max := int(s.max.Load())
	if max <= 0 {
		max = DefaultMaxLearned
	}
	for len(next) >= max {
		i := 0
		for j := range next {
			if next[j].Expires.Before(next[i].Expires) {
				i = j
			}
		}
		next = slices.Delete(next, i, i+1)
		s.evicted.Add(1)
	}
	next = append(next, l)
	s.leases.Store(&next)
	s.learned.Add(1)
}

// holds reports whether a is a lease not yet expired.
func (s *snooper) holds(a netip.Addr, now func() time.Time) bool {
	p := s.leases.Load()
	if p == nil {
		return false
	}
	for _, l := range *p {
		if l.Addr == a {
			return l.Expires.After(now())
		}
	}
	return false
}

// list returns the leases not yet expired.
func (s *snooper) list(now time.Time) []Lease {
	p := s.leases.Load()
	if p == nil {
		return nil
	}
	var out []Lease
	for _, l := range *p {
		if l.Expires.After(now) {
			out = append(out, l)
		}
	}
	return out
}

// Learn adds a snooped lease as if its DHCPACK had been seen through the port (an
// imported namespace's learnings); an expired one is ignored.
func (p *Port) Learn(l Lease) {
	now := p.now()
	if !l.Expires.After(now) {
		return
	}
	p.snoop.mu.Lock()
	defer p.snoop.mu.Unlock()
	p.snoop.addLocked(l, now)
}
