package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// nicKind checks a [[namespace.nic]]'s kind: "l2" (the default) or "l3".
func (v *validator) nicKind(path, ns string, rn rawNIC) string {
	switch rn.Kind {
	case "", NICKindL2:
		return NICKindL2
	case NICKindL3:
		return NICKindL3
	}
	v.errf(path+".kind", "nic %s.%s: kind %q: want \"l2\" or \"l3\"", ns, rn.Name, rn.Kind)
	return NICKindL2
}

// l3PeerRoutes returns the host prefixes of peer's addresses that none of own's
// subnets holds: an L3 NIC's namespace routes them out of the NIC, so a pair of host
// addresses (10.0.0.1/32 and 10.0.0.2/32) needs no route in the config.
func l3PeerRoutes(own, peer []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range peer {
		a := p.Addr()
		if slices.ContainsFunc(own, func(o netip.Prefix) bool { return o.Masked().Contains(a) }) {
			continue
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}

// routerLegPeer checks the keys of a [[router.interface]] with peer = "NS:NIC" (a
// point-to-point L3 leg) and returns the peer's namespace and NIC.
func (v *validator) routerLegPeer(path, router string, ri rawRouterIf) (ns, nic string) {
	ns, nic, ok := strings.Cut(ri.Peer, ":")
	if !ok || ns == "" || nic == "" {
		v.errf(path+".peer", "peer %q: want \"NAMESPACE:NIC\" (a kind = \"l3\" nic)", ri.Peer)
		return "", ""
	}
	if ri.Switch != "" {
		v.errf(path+".peer", "router %s interface sets both switch and peer; pick one", router)
	}
	if ri.VLAN != 0 {
		v.errf(path+".vlan", "vlan is only meaningful on a switch port, not on a leg to an l3 nic")
	}
	if ri.ProxyARP {
		v.errf(path+".proxy_arp", "proxy_arp needs a switch: a leg to an l3 nic has no ARP")
	}
	if ri.RA != nil && *ri.RA {
		v.errf(path+".ra", "ra needs a switch: a leg to an l3 nic has no link layer to advertise on (the nic gets a default route instead)")
	}
	return ns, nic
}

// routerLegs checks that both ends of every router leg (a [[router.interface]] with
// peer = "NS:NIC" and a kind = "l3" nic with peer = "ROUTER:INTERFACE") name each
// other, and gives each end what it needs of the other: the leg the NIC's MAC and
// addresses (connected host routes), the NIC the leg's MAC (its framing) and its
// routes (the leg's addresses and a default route per family, see NIC.PeerRoutes).
func (v *builder) routerLegs() {
	c := v.c
	for i := range c.Routers {
		r := &c.Routers[i]
		for j := range r.Interfaces {
			ifc := &r.Interfaces[j]
			if !ifc.L3Leg() {
				continue
			}
			ip := fmt.Sprintf("router.%d.interface.%d.peer", i, j)
			other := v.findNIC(ifc.PeerNamespace, ifc.PeerNIC)
			switch {
			case v.nsByName[ifc.PeerNamespace] == nil:
				v.errf(ip, "peer %s:%s: namespace %q is not defined", ifc.PeerNamespace, ifc.PeerNIC, ifc.PeerNamespace)
			case other == nil:
				v.errf(ip, "peer %s:%s: namespace %q has no nic %q", ifc.PeerNamespace, ifc.PeerNIC, ifc.PeerNamespace, ifc.PeerNIC)
			case other.Kind != NICKindL3:
				v.errf(ip, "peer %s:%s is kind = %q: a router leg peers only a kind = \"l3\" nic (put an l2 nic on a switch the router is on)", ifc.PeerNamespace, ifc.PeerNIC, other.Kind)
			case other.PeerRouter != r.Name || other.PeerIface != ifc.Name:
				v.errf(ip, "peer %s:%s is not mutual: %s.%s must set peer = \"%s:%s\"", ifc.PeerNamespace, ifc.PeerNIC, ifc.PeerNamespace, ifc.PeerNIC, r.Name, ifc.Name)
			default:
				ifc.PeerMAC = other.MAC
				ifc.PeerAddresses = nil
				for _, p := range other.Addresses {
					ifc.PeerAddresses = append(ifc.PeerAddresses, p.Addr())
				}
				ns := v.nsByName[ifc.PeerNamespace]
				other.PeerMAC = ifc.MAC
				other.PeerRoutes = append(l3PeerRoutes(other.Addresses, ifc.Addresses), legDefaults(other.Addresses, ns.Routes)...)
			}
		}
	}
	for i, ns := range c.Namespaces {
		for j, n := range ns.NICs {
			if !n.L3Leg() {
				continue
			}
			np := fmt.Sprintf("namespace.%d.nic.%d.peer", i, j)
			var ifc *RouterInterface
			for k := range c.Routers {
				if c.Routers[k].Name != n.PeerRouter {
					continue
				}
				for l := range c.Routers[k].Interfaces {
					if c.Routers[k].Interfaces[l].Name == n.PeerIface {
						ifc = &c.Routers[k].Interfaces[l]
					}
				}
			}
			switch {
			case ifc == nil:
				v.errf(np, "peer %s:%s: router %q has no interface %q", n.PeerRouter, n.PeerIface, n.PeerRouter, n.PeerIface)
			case !ifc.L3Leg():
				v.errf(np, "peer %s:%s: router interface %s.%s is on switch %q, not a leg: it must set peer = \"%s:%s\" instead of switch", n.PeerRouter, n.PeerIface, n.PeerRouter, n.PeerIface, ifc.Switch, ns.Name, n.Name)
			case ifc.PeerNamespace != ns.Name || ifc.PeerNIC != n.Name:
				v.errf(np, "peer %s:%s is not mutual: router interface %s.%s must set peer = \"%s:%s\"", n.PeerRouter, n.PeerIface, n.PeerRouter, n.PeerIface, ns.Name, n.Name)
			}
		}
	}
}

// legDefaults returns the default routes an L3 NIC on a router leg gets: one per
// family it has an address in, unless the namespace's own routes have that default.
func legDefaults(own []netip.Prefix, routes []Route) []netip.Prefix {
	var out []netip.Prefix
	for _, d := range []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")} {
		has := slices.ContainsFunc(own, func(p netip.Prefix) bool { return p.Addr().Is4() == d.Addr().Is4() })
		declared := slices.ContainsFunc(routes, func(r Route) bool { return r.To == d })
		if has && !declared {
			out = append(out, d)
		}
	}
	return out
}
