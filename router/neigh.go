package router

import (
	"net/netip"
	"sync"
	"time"

	"github.com/vnetd/vnetd/frame"
)

type neighKey struct {
	ifc  *iface
	addr netip.Addr
}

type nentry struct {
	mac       frame.MAC
	complete  bool
	updated   time.Time // last confirmation (complete) or creation (incomplete)
	lastProbe time.Time
	pending   []*frame.Buf
}

// neighbors is the bounded neighbour cache (ARP and NDP).
type neighbors struct {
	mu  sync.RWMutex
	m   map[neighKey]*nentry // guarded by mu
	max int
}

func (n *neighbors) init(max int) {
	n.m = make(map[neighKey]*nentry, max)
	n.max = max
}

// evictLocked makes room for one entry: it removes the least recently updated entry.
func (n *neighbors) evictLocked() {
	var oldK neighKey
	var old *nentry
	for k, e := range n.m {
		if old == nil || e.updated.Before(old.updated) {
			oldK, old = k, e
		}
	}
	if old != nil {
		for _, b := range old.pending {
			oldK.ifc.drop(dropNeighEvicted)
			b.Release()
		}
		delete(n.m, oldK)
	}
}

// lookup returns the MAC for addr on ifc when resolved. stale reports that the entry
// should be re-probed.
func (n *neighbors) lookup(ifc *iface, addr netip.Addr, now time.Time, ttl time.Duration) (mac frame.MAC, ok, stale bool) {
	n.mu.RLock()
	e := n.m[neighKey{ifc, addr}]
	if e != nil && e.complete {
		mac, ok = e.mac, true
		stale = now.Sub(e.updated) > ttl && now.Sub(e.lastProbe) > time.Second
	}
	n.mu.RUnlock()
	return mac, ok, stale
}

// markProbed records a probe of a stale entry, reporting whether the caller should send it.
func (n *neighbors) markProbed(ifc *iface, addr netip.Addr, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.m[neighKey{ifc, addr}]
	if e == nil || now.Sub(e.lastProbe) <= time.Second {
		return false
	}
	e.lastProbe = now
	return true
}

// enqueue parks b on the incomplete entry for addr, creating it. It reports whether the
// caller should send a probe now. When the queue is full b is released and counted.
// If the entry became complete meanwhile it returns the MAC and resolved=true, leaving
// b with the caller.
func (n *neighbors) enqueue(ifc *iface, addr netip.Addr, b *frame.Buf, now time.Time, maxPending int) (mac frame.MAC, resolved, probe bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := neighKey{ifc, addr}
	e := n.m[k]
	if e != nil && e.complete {
		return e.mac, true, false
	}
	if e == nil {
		if len(n.m) >= n.max {
			n.evictLocked()
		}
		e = &nentry{updated: now, lastProbe: now}
		n.m[k] = e
		probe = true
	}
	if len(e.pending) >= maxPending {
		ifc.drop(dropNeighQueueFull)
		b.Release()
		return mac, false, probe
	}
	e.pending = append(e.pending, b)
	return mac, false, probe
}

// learn records addr at mac on ifc and returns the frames that waited for it. With
// create=false it only updates an existing entry.
func (n *neighbors) learn(ifc *iface, addr netip.Addr, mac frame.MAC, now time.Time, create bool, out []*frame.Buf) []*frame.Buf {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := neighKey{ifc, addr}
	e := n.m[k]
	if e == nil {
		if !create {
			return out
		}
		if len(n.m) >= n.max {
			n.evictLocked()
		}
		e = &nentry{}
		n.m[k] = e
	}
	e.mac, e.complete, e.updated = mac, true, now
	out = append(out, e.pending...)
	clear(e.pending)
	e.pending = e.pending[:0]
	return out
}

// expire drops incomplete entries past the resolve timeout and re-probes the rest.
func (n *neighbors) expire(r *Router, now time.Time) {
	type probe struct {
		ifc  *iface
		addr netip.Addr
	}
	var probes []probe
	n.mu.Lock()
	for k, e := range n.m {
		if e.complete {
			if now.Sub(e.updated) > 4*r.opts.NeighborTTL {
				delete(n.m, k)
			}
			continue
		}
		if now.Sub(e.updated) > r.opts.ResolveTimeout {
			for _, b := range e.pending {
				k.ifc.drop(dropNeighTimeout)
				b.Release()
			}
			delete(n.m, k)
			continue
		}
		if now.Sub(e.lastProbe) >= time.Second {
			e.lastProbe = now
			probes = append(probes, probe(k))
		}
	}
	n.mu.Unlock()
	for _, p := range probes {
		p.ifc.probe(p.addr)
	}
}

func (n *neighbors) list() []NeighborInfo {
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := make([]NeighborInfo, 0, len(n.m))
	for k, e := range n.m {
		out = append(out, NeighborInfo{Addr: k.addr, MAC: e.mac, Iface: k.ifc.cfg.Name, Complete: e.complete, Pending: len(e.pending), Updated: e.updated})
	}
	return out
}

func (n *neighbors) clear() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, e := range n.m {
		frame.ReleaseBufs(e.pending)
		delete(n.m, k)
	}
}
