package config

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/vnetd/vnetd/frame"
)

// PortSecurity is a port's source checks (package portsec): frames from another
// source MAC, ARP or NDP claiming another address and IP sources outside the allowed
// set are dropped and counted.
type PortSecurity struct {
	// On: the checks apply. A namespace NIC has them by default, allowing its own MAC
	// and addresses (port_security = false turns them off); a socket, TAP or host
	// interface has them when it sets allow_macs, allow_ips or dhcp_snooping.
	On bool
	// MACs are the source MACs allowed; empty: any (on a NIC: its own plus these).
	MACs []frame.MAC
	// IPs are the source addresses allowed (on a NIC: its own plus these). A family
	// is checked only when some address of it is allowed.
	IPs []netip.Prefix
	// DHCPSnooping allows the IPv4 addresses the DHCP server leases to the port's
	// clients, for their lease.
	DHCPSnooping bool
}

// rawPortSecurity is the port security keys of [[socket]], [[tap]] and
// [[host_interface]].
type rawPortSecurity struct {
	AllowMACs    []string `toml:"allow_macs"`
	AllowIPs     []string `toml:"allow_ips"`
	DHCPSnooping bool     `toml:"dhcp_snooping"`
}

// portSecurity checks the port security keys at path p.
func (v *validator) portSecurity(p string, r rawPortSecurity) PortSecurity {
	s := PortSecurity{DHCPSnooping: r.DHCPSnooping}
	s.MACs, s.IPs = v.allowMACs(p, r.AllowMACs), v.allowIPs(p, r.AllowIPs)
	s.On = len(r.AllowMACs) > 0 || len(r.AllowIPs) > 0 || r.DHCPSnooping
	return s
}

// nicPortSecurity checks a namespace NIC's keys: on unless port_security = false.
func (v *validator) nicPortSecurity(p string, on *bool, macs, ips []string) PortSecurity {
	s := PortSecurity{On: on == nil || *on, MACs: v.allowMACs(p, macs), IPs: v.allowIPs(p, ips)}
	if !s.On && (len(macs) > 0 || len(ips) > 0) {
		v.errf(p+".port_security", "allow_macs and allow_ips need port_security on")
	}
	return s
}

func (v *validator) allowMACs(p string, ss []string) []frame.MAC {
	var out []frame.MAC
	for _, s := range ss {
		m, err := frame.ParseMAC(s)
		if err != nil || m.IsMulticast() || m.IsZero() {
			v.errf(p+".allow_macs", "allow_macs: %q is not a unicast MAC", s)
			continue
		}
		out = append(out, m)
	}
	return out
}

func (v *validator) allowIPs(p string, ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		pf, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				v.errf(p+".allow_ips", "allow_ips: %q is not an address or CIDR prefix", s)
				continue
			}
			pf = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, pf.Masked())
	}
	return out
}

// segmentAddr is an address configured on one L2 segment, with where it was set.
type segmentAddr struct {
	owner, path string
}

// duplicateAddrs reports an address configured twice on one L2 segment (a switch and
// VLAN, or the two ends of a pass-through pair), giving both positions.
func (v *validator) duplicateAddrs(c *Config) {
	seen := map[string]map[netip.Addr]segmentAddr{}
	claim := func(seg, segName, owner, path string, ps []netip.Prefix) {
		if seen[seg] == nil {
			seen[seg] = map[netip.Addr]segmentAddr{}
		}
		for _, p := range ps {
			a := p.Addr()
			if o, ok := seen[seg][a]; ok {
				at := v.loc.find(o.path)
				v.errf(path, "address %s of %s is already used by %s (%s:%d:%d) on %s", a, owner, o.owner, v.file, at.line, at.col, segName)
				continue
			}
			seen[seg][a] = segmentAddr{owner, path}
		}
	}
	onSwitch := func(sw string, vlan uint16) (string, string) {
		if vlan == 0 {
			vlan = 1
		}
		name := fmt.Sprintf("switch %q", sw)
		if vlan != 1 {
			name += fmt.Sprintf(" vlan %d", vlan)
		}
		return fmt.Sprintf("sw\x00%s\x00%d", sw, vlan), name
	}
	for i, ns := range c.Namespaces {
		for j, n := range ns.NICs {
			path := fmt.Sprintf("namespace.%d.nic.%d.addresses", i, j)
			owner := fmt.Sprintf("nic %s.%s", ns.Name, n.Name)
			switch {
			case n.Switch != "":
				seg, name := onSwitch(n.Switch, n.VLAN)
				claim(seg, name, owner, path, n.Addresses)
			case n.PeerNamespace != "":
				ends := []string{ns.Name + ":" + n.Name, n.PeerNamespace + ":" + n.PeerNIC}
				sort.Strings(ends)
				claim("pair\x00"+strings.Join(ends, "\x00"), "pass-through pair "+ends[0]+" <-> "+ends[1], owner, path, n.Addresses)
			case n.PeerRouter != "":
				seg, name := legSegment(n.PeerRouter, n.PeerIface, ns.Name, n.Name)
				claim(seg, name, owner, path, n.Addresses)
			}
		}
	}
	for i, r := range c.Routers {
		for j, ifc := range r.Interfaces {
			seg, name := onSwitch(ifc.Switch, ifc.VLAN)
			if ifc.L3Leg() {
				seg, name = legSegment(r.Name, ifc.Name, ifc.PeerNamespace, ifc.PeerNIC)
			}
			claim(seg, name, fmt.Sprintf("router interface %s.%s", r.Name, ifc.Name), fmt.Sprintf("router.%d.interface.%d.addresses", i, j), ifc.Addresses)
		}
	}
	for i, g := range c.Gateways {
		seg, name := onSwitch(g.Switch, g.VLAN)
		claim(seg, name, "gateway "+g.Name, fmt.Sprintf("gateway.%d.addresses", i), g.Addresses)
	}
}

// empty reports a file that defines nothing to run.
func (v *validator) empty(raw *rawConfig) {
	if len(raw.Switch)+len(raw.Namespace)+len(raw.Router)+len(raw.TAP)+len(raw.HostInterface)+len(raw.VXLAN)+len(raw.Socket)+len(raw.Gateway) == 0 {
		v.errs = append(v.errs, Error{v.file, 1, 1, "the config is empty: it defines no [[switch]], [[namespace]] or other part to run (see config.toml.example)"})
	}
}

// legSegment names the segment of a router leg to an L3 NIC: its two ends.
func legSegment(router, iface, ns, nic string) (string, string) {
	return "leg\x00" + router + "\x00" + iface + "\x00" + ns + "\x00" + nic, "router leg " + router + ":" + iface + " <-> " + ns + ":" + nic
}
