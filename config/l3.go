package config

import (
	"net/netip"
	"slices"
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
