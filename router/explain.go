package router

import (
	"fmt"
	"net/netip"

	"github.com/vnetd/vnetd/frame"
)

// Decision is what the router would do with an IPv4 packet arriving on an interface,
// decided by the code that forwards packets (decide4, the route table, the neighbour
// cache), without sending anything.
type Decision struct {
	// In is the ingress interface.
	In string `json:"in"`
	// Verdict is forward, echo-reply (the router answers a ping), local (for the
	// router or a broadcast: not forwarded), or drop.
	Verdict string `json:"verdict"`
	// ICMP is the ICMP error the router would send back, "" for none.
	ICMP string `json:"icmp,omitempty"`
	// Route is the route chosen, when one was.
	Route *RouteInfo `json:"route,omitempty"`
	// Out is the egress interface and NextHop the address resolved on it.
	Out     string     `json:"out,omitempty"`
	NextHop netip.Addr `json:"next_hop,omitzero"`
	// NeighborMAC is the next hop's MAC from the neighbour cache; Resolved is false
	// when the router would first send an ARP request (and queue the packet).
	NeighborMAC frame.MAC `json:"neighbor_mac,omitzero"`
	Resolved    bool      `json:"resolved"`
	// SrcMAC is the egress interface's MAC (the forwarded frame's source).
	SrcMAC frame.MAC `json:"src_mac,omitzero"`
}

// Explain reports what the router would do with an IPv4 packet to dst of size bytes
// (IP header included) with the given TTL and DF bit, arriving on interface in
// addressed to the interface's MAC. echo says it is an ICMP echo request.
func (r *Router) Explain(in string, dst netip.Addr, ttl byte, size int, df, echo bool) (Decision, error) {
	r.mu.RLock()
	i := r.byName[in]
	r.mu.RUnlock()
	if i == nil {
		return Decision{}, fmt.Errorf("router %q: no interface %q", r.opts.Name, in)
	}
	if !dst.Is4() {
		return Decision{}, fmt.Errorf("router %q: explain handles IPv4 only", r.opts.Name)
	}
	v, rt := i.decide4(dst, true, echo, ttl, size, df)
	d := Decision{In: in}
	if rt != nil {
		d.Route = &RouteInfo{To: rt.to, Via: rt.via, Iface: rt.iface.cfg.Name, Connected: rt.connected}
	}
	switch v {
	case verdictEcho:
		d.Verdict = "echo-reply"
	case verdictLocal:
		d.Verdict = "local"
	case verdictTTL:
		d.Verdict, d.ICMP = "drop", "time exceeded (TTL 1)"
	case verdictNoRoute:
		d.Verdict, d.ICMP = "drop", "destination net unreachable"
	case verdictTooBig:
		d.Verdict = "drop"
	case verdictTooBigDF:
		d.Verdict, d.ICMP = "drop", fmt.Sprintf("fragmentation needed (MTU %d)", rt.iface.cfg.MTU)
	case verdictForward:
		d.Verdict, d.Out, d.SrcMAC = "forward", rt.iface.cfg.Name, rt.iface.mac
		d.NextHop = dst
		if rt.via.IsValid() {
			d.NextHop = rt.via
		}
		if rt.iface.p2p {
			d.NeighborMAC, d.Resolved = rt.iface.peerMAC, true // nothing to resolve on an L3 leg
		} else {
			d.NeighborMAC, d.Resolved, _ = r.neigh.lookup(rt.iface, d.NextHop, r.now(), r.opts.NeighborTTL)
		}
	}
	return d, nil
}
