package nsstack

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"

	"github.com/vnetd/vnetd/frame"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Route is a static route in a namespace.
type Route struct {
	// To is the destination prefix (0.0.0.0/0 or ::/0 for a default route).
	To netip.Prefix `json:"to"`
	// Via is the next hop; invalid (zero) for an on-link route.
	Via netip.Addr `json:"via,omitzero"`
	// NIC is the outgoing NIC; empty picks the NIC whose subnet holds Via.
	NIC string `json:"nic"`
	// Connected marks a route that exists because of an address (listings only).
	Connected bool `json:"connected,omitempty"`
}

func (ns *Namespace) nicLocked(name string) (*NIC, error) {
	if ns.closed {
		return nil, ErrClosed
	}
	n, ok := ns.nics[name]
	if !ok {
		return nil, fmt.Errorf("namespace %q: %w %q", ns.name, errNoNIC, name)
	}
	return n, nil
}

func (ns *Namespace) addAddress(id tcpip.NICID, p netip.Prefix) error {
	pa := tcpip.ProtocolAddress{
		Protocol:          protoOf(p.Addr()),
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: toTCPIP(p.Addr()), PrefixLen: p.Bits()},
	}
	if e := ns.st.AddProtocolAddress(id, pa, stack.AddressProperties{}); e != nil {
		return fmt.Errorf("namespace %q: add address %v: %s", ns.name, p, e)
	}
	ns.st.AddRoute(tcpip.Route{Destination: pa.AddressWithPrefix.Subnet(), NIC: id})
	return nil
}

// AddAddress adds an IPv4 or IPv6 address with its prefix to a NIC, and the connected
// route of its subnet.
func (ns *Namespace) AddAddress(nic string, p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("namespace %q: add address: invalid prefix", ns.name)
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	n, err := ns.nicLocked(nic)
	if err != nil {
		return err
	}
	return ns.addAddress(n.id, p)
}

// RemoveAddress removes an address (and its connected route) from a NIC.
func (ns *Namespace) RemoveAddress(nic string, p netip.Prefix) error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	n, err := ns.nicLocked(nic)
	if err != nil {
		return err
	}
	if e := ns.st.RemoveAddress(n.id, toTCPIP(p.Addr())); e != nil {
		return fmt.Errorf("namespace %q: remove address %v from %q: %s", ns.name, p, nic, e)
	}
	sub := tcpip.AddressWithPrefix{Address: toTCPIP(p.Addr()), PrefixLen: p.Bits()}.Subnet()
	ns.st.RemoveRoutes(func(r tcpip.Route) bool {
		return r.NIC == n.id && r.Gateway.Len() == 0 && r.Destination == sub
	})
	return nil
}

// AddRoute adds a static route. Without a NIC the route goes out of the NIC whose
// connected subnet holds Via.
func (ns *Namespace) AddRoute(r Route) error {
	if !r.To.IsValid() {
		return fmt.Errorf("namespace %q: add route: invalid destination", ns.name)
	}
	r.To = r.To.Masked()
	if r.Via.IsValid() && r.Via.Is4() != r.To.Addr().Is4() {
		return fmt.Errorf("namespace %q: add route %v via %v: address families differ", ns.name, r.To, r.Via)
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.closed {
		return ErrClosed
	}
	var id tcpip.NICID
	if r.NIC != "" {
		n, err := ns.nicLocked(r.NIC)
		if err != nil {
			return err
		}
		id = n.id
	} else {
		if !r.Via.IsValid() {
			return fmt.Errorf("namespace %q: add route %v: needs a NIC or a via", ns.name, r.To)
		}
		id, r.NIC = ns.nicForLocked(r.Via)
		if id == 0 {
			return fmt.Errorf("namespace %q: add route %v via %v: %v is not on any connected subnet", ns.name, r.To, r.Via, r.Via)
		}
	}
	sub, err := tcpip.NewSubnet(toTCPIP(r.To.Addr()), tcpip.MaskFromBytes(maskBytes(r.To)))
	if err != nil {
		return fmt.Errorf("namespace %q: add route %v: %v", ns.name, r.To, err)
	}
	tr := tcpip.Route{Destination: sub, NIC: id}
	if r.Via.IsValid() {
		tr.Gateway = toTCPIP(r.Via)
	}
	ns.st.AddRoute(tr)
	ns.routes = append(ns.routes, r)
	return nil
}

// RemoveRoute removes a static route added with AddRoute (matched on To and Via).
func (ns *Namespace) RemoveRoute(r Route) error {
	r.To = r.To.Masked()
	ns.mu.Lock()
	defer ns.mu.Unlock()
	i := slices.IndexFunc(ns.routes, func(x Route) bool { return x.To == r.To && x.Via == r.Via })
	if i < 0 {
		return fmt.Errorf("namespace %q: remove route %v via %v: no such route", ns.name, r.To, r.Via)
	}
	ns.routes = slices.Delete(ns.routes, i, i+1)
	gw := tcpip.Address{}
	if r.Via.IsValid() {
		gw = toTCPIP(r.Via)
	}
	ns.st.RemoveRoutes(func(x tcpip.Route) bool {
		return x.Gateway == gw && fromTCPIP(x.Destination.ID()) == r.To.Addr() && x.Destination.Prefix() == r.To.Bits()
	})
	return nil
}

func removeRoutesOf(rs []Route, nic string) []Route {
	return slices.DeleteFunc(rs, func(r Route) bool { return r.NIC == nic })
}

func maskBytes(p netip.Prefix) []byte {
	n := p.Addr().BitLen() / 8
	m := make([]byte, n)
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// nicForLocked returns the NIC whose connected subnet holds a.
func (ns *Namespace) nicForLocked(a netip.Addr) (tcpip.NICID, string) {
	for id, addrs := range ns.st.AllAddresses() {
		for _, pa := range addrs {
			p := netip.PrefixFrom(fromTCPIP(pa.AddressWithPrefix.Address), pa.AddressWithPrefix.PrefixLen)
			if p.Masked().Contains(a) && id != loopbackNIC {
				for name, n := range ns.nics {
					if n.id == id {
						return id, name
					}
				}
			}
		}
	}
	return 0, ""
}

// SetMTU changes a NIC's MTU.
func (ns *Namespace) SetMTU(nic string, mtu int) error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	n, err := ns.nicLocked(nic)
	if err != nil {
		return err
	}
	if e := ns.st.SetNICMTU(n.id, uint32(mtu)); e != nil {
		return fmt.Errorf("namespace %q: set MTU of %q to %d: %s", ns.name, nic, mtu, e)
	}
	return nil
}

// Address is one address of a namespace, for listings.
type Address struct {
	NIC    string       `json:"nic"`
	Prefix netip.Prefix `json:"prefix"`
}

// Interface is one interface of a namespace with its addresses, for `ns NAME addr`.
type Interface struct {
	Name string `json:"name"`
	// Kind is "l2" or "l3" for a NIC (see NICKind), empty for the loopback.
	Kind      string         `json:"kind,omitempty"`
	MAC       string         `json:"mac,omitempty"`
	MTU       int            `json:"mtu"`
	Addresses []netip.Prefix `json:"addresses"`
	// Counters are a NIC's, like `ip -s link`: frames and bytes the namespace received
	// (rx) and sent (tx), and what its queues dropped. None for the loopback.
	Counters *NICCounters `json:"counters,omitempty"`
}

// NICCounters is a snapshot of a NIC's counters.
type NICCounters struct {
	frame.CounterSnapshot
	// RxByReference: received frames that came by reference (sharing the sender's
	// buffers, see frame.Packet) rather than copied.
	RxByReference uint64 `json:"rx_by_reference"`
}

func (ns *Namespace) nicNamesLocked() map[tcpip.NICID]*NIC {
	m := make(map[tcpip.NICID]*NIC, len(ns.nics))
	for _, n := range ns.nics {
		m[n.id] = n
	}
	return m
}

// Interfaces lists the loopback and every NIC with their addresses, like `ip addr`.
func (ns *Namespace) Interfaces() []Interface {
	ns.mu.Lock()
	byID := ns.nicNamesLocked()
	ns.mu.Unlock()
	all := ns.st.AllAddresses()
	var out []Interface
	ids := make([]int, 0, len(all))
	for id := range ns.st.NICInfo() {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	for _, i := range ids {
		id := tcpip.NICID(i)
		it := Interface{Name: "lo", MTU: 65536}
		if n, ok := byID[id]; ok {
			it = Interface{Name: n.name, Kind: n.Kind().String(), MAC: n.mac.String(), MTU: int(n.mtu.Load()),
				Counters: &NICCounters{CounterSnapshot: n.stats.Snapshot(), RxByReference: n.RxByReference()}}
		} else if id != loopbackNIC {
			continue
		}
		for _, pa := range all[id] {
			a := fromTCPIP(pa.AddressWithPrefix.Address)
			if a == limitedBroadcast {
				continue // gVisor's own IPv4 broadcast endpoint, not a configured address
			}
			it.Addresses = append(it.Addresses, netip.PrefixFrom(a, pa.AddressWithPrefix.PrefixLen))
		}
		// Stable order for listings: IPv4 before IPv6, then by address.
		slices.SortFunc(it.Addresses, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
		out = append(out, it)
	}
	return out
}

// Addresses lists every address of every interface, loopback included.
func (ns *Namespace) Addresses() []Address {
	var out []Address
	for _, it := range ns.Interfaces() {
		for _, p := range it.Addresses {
			out = append(out, Address{NIC: it.Name, Prefix: p})
		}
	}
	return out
}

// Routes lists the routing table, like `ip route`: connected and static routes.
func (ns *Namespace) Routes() []Route {
	ns.mu.Lock()
	byID := ns.nicNamesLocked()
	ns.mu.Unlock()
	var out []Route
	for _, r := range ns.st.GetRouteTable() {
		name := "lo"
		if n, ok := byID[r.NIC]; ok {
			name = n.name
		} else if r.NIC != loopbackNIC {
			continue
		}
		rt := Route{To: netip.PrefixFrom(fromTCPIP(r.Destination.ID()), r.Destination.Prefix()), NIC: name}
		if r.Gateway.Len() > 0 {
			rt.Via = fromTCPIP(r.Gateway)
		} else {
			rt.Connected = true
		}
		out = append(out, rt)
	}
	return out
}

// Neighbor is one neighbour-table entry, like a line of `ip neigh`.
type Neighbor struct {
	NIC   string     `json:"nic"`
	Addr  netip.Addr `json:"addr"`
	MAC   string     `json:"mac"`
	State string     `json:"state"`
}

// Neighbors lists the ARP and NDP caches of every NIC.
func (ns *Namespace) Neighbors() []Neighbor {
	ns.mu.Lock()
	nics := make([]*NIC, 0, len(ns.nics))
	for _, n := range ns.nics {
		nics = append(nics, n)
	}
	ns.mu.Unlock()
	var out []Neighbor
	for _, n := range nics {
		for _, proto := range []tcpip.NetworkProtocolNumber{protoOf(netip.IPv4Unspecified()), protoOf(netip.IPv6Unspecified())} {
			entries, e := ns.st.Neighbors(n.id, proto)
			if e != nil {
				continue
			}
			for _, en := range entries {
				out = append(out, Neighbor{NIC: n.name, Addr: fromTCPIP(en.Addr), MAC: en.LinkAddr.String(), State: en.State.String()})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Less(out[j].Addr) })
	return out
}

// limitedBroadcast is 255.255.255.255, which gVisor adds to every IPv4 NIC.
var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})
