package config

import (
	"fmt"
	"net/netip"
	"time"
)

// VXLAN is one [[vxlan]]: a tunnel port on a switch (see package vxlan).
type VXLAN struct {
	// Name is unique among vxlan tunnels; the switch port is "vxlan:NAME".
	Name string
	// Switch is the switch the tunnel plugs into.
	Switch string
	// Local is the address and port vnetd's UDP socket binds; the port defaults to
	// DstPort.
	Local netip.AddrPort
	// VNI is the VXLAN network identifier, 0-16777215.
	VNI uint32
	// DstPort is the UDP port of the remote VTEPs; default 4789.
	DstPort uint16
	// Remotes are the static remote VTEPs (head-end replication targets), of Local's
	// address family.
	Remotes []netip.Addr
	// UnderlayMTU is the MTU of the path between VTEPs; default 1500.
	UnderlayMTU int
	// MTU is the inner MTU; default UnderlayMTU minus 50 (IPv4) or 70 (IPv6).
	MTU int
	// VLAN is the access VLAN on the switch port.
	VLAN uint16
	// Trunk, when set, makes the switch port a trunk carrying these VLANs tagged
	// (inside the tunnel).
	Trunk []uint16
	// Native is a trunk's untagged VLAN; 0: untagged frames are dropped.
	Native uint16
	// MaxMACs caps the MACs learned behind remotes; default 4096.
	MaxMACs int
	// MACAging is how long a learned MAC stays without being heard; default 5m.
	MACAging time.Duration
	// SourcePorts is how many outer UDP source ports the inner flow hash spreads over;
	// default 4.
	SourcePorts int
}

type rawVXLAN struct {
	Name        string   `toml:"name"`
	Switch      string   `toml:"switch"`
	Local       string   `toml:"local"`
	Port        int      `toml:"port"`
	VNI         *int     `toml:"vni"`
	DstPort     int      `toml:"dstport"`
	Remotes     []string `toml:"remotes"`
	UnderlayMTU int      `toml:"underlay_mtu"`
	MTU         int      `toml:"mtu"`
	VLAN        int      `toml:"vlan"`
	Trunk       []int    `toml:"trunk"`
	Native      int      `toml:"native"`
	MaxMACs     *int     `toml:"max_macs"`
	MACAging    string   `toml:"mac_aging"`
	SourcePorts int      `toml:"source_ports"`
}

// vxlans validates the [[vxlan]] tables.
func (v *validator) vxlans(raw []rawVXLAN, needSwitch func(path, sw string)) []VXLAN {
	var out []VXLAN
	names := map[string]bool{}
	locals := map[netip.AddrPort]string{}
	for i, r := range raw {
		p := fmt.Sprintf("vxlan.%d", i)
		v.name(p, "vxlan", r.Name, names)
		needSwitch(p, r.Switch)
		x := VXLAN{Name: r.Name, Switch: r.Switch, DstPort: 4789, UnderlayMTU: 1500, VLAN: v.vlan(p+".vlan", r.VLAN), MaxMACs: 4096, SourcePorts: 4}
		x.Trunk, x.Native = v.trunk(p, r.Trunk, r.Native, r.VLAN)
		x.MACAging = v.duration(p+".mac_aging", r.MACAging, 5*time.Minute)
		if r.DstPort != 0 {
			if r.DstPort < 1 || r.DstPort > 65535 {
				v.errf(p+".dstport", "dstport %d out of range 1-65535", r.DstPort)
			} else {
				x.DstPort = uint16(r.DstPort)
			}
		}
		if r.VNI == nil {
			v.errf(p, "vxlan needs a vni")
		} else if *r.VNI < 0 || *r.VNI > 1<<24-1 {
			v.errf(p+".vni", "vni %d out of range 0-16777215", *r.VNI)
		} else {
			x.VNI = uint32(*r.VNI)
		}
		// local = "ADDR:PORT", "[ADDR6]:PORT" or "ADDR" (with port, or dstport).
		var local netip.Addr
		port := int(x.DstPort)
		if ap, err := netip.ParseAddrPort(r.Local); err == nil {
			local, port = ap.Addr(), int(ap.Port())
			if r.Port != 0 {
				v.errf(p+".port", "port given twice: in local %q and as port", r.Local)
			}
		} else if a, err := netip.ParseAddr(r.Local); err == nil {
			local = a
			if r.Port != 0 {
				port = r.Port
			}
		} else if r.Local == "" {
			v.errf(p, "vxlan needs local = \"ADDR\" or \"ADDR:PORT\" (the underlay address vnetd binds)")
		} else {
			v.errf(p+".local", "local %q: want ADDR or ADDR:PORT such as \"192.0.2.1:4789\" or \"[2001:db8::1]:4789\"", r.Local)
		}
		if port < 1 || port > 65535 {
			v.errf(p+".port", "port %d out of range 1-65535", port)
			port = int(x.DstPort)
		}
		local = local.Unmap()
		x.Local = netip.AddrPortFrom(local, uint16(port))
		if local.IsValid() {
			if other, ok := locals[x.Local]; ok {
				v.errf(p+".local", "local %s is already used by vxlan %q", x.Local, other)
			}
			locals[x.Local] = r.Name
		}
		seen := map[netip.Addr]bool{}
		for _, s := range r.Remotes {
			a, err := netip.ParseAddr(s)
			switch {
			case err != nil:
				v.errf(p+".remotes", "remote %q is not an IP address", s)
				continue
			case a.Unmap().IsUnspecified() || a.IsMulticast():
				v.errf(p+".remotes", "remote %s is not a unicast address", a)
				continue
			case local.IsValid() && a.Unmap().Is4() != local.Is4():
				v.errf(p+".remotes", "remote %s is not of local %s's address family", a, local)
				continue
			case seen[a.Unmap()]:
				v.errf(p+".remotes", "duplicate remote %s", a)
				continue
			}
			seen[a.Unmap()] = true
			x.Remotes = append(x.Remotes, a.Unmap())
		}
		if r.UnderlayMTU != 0 {
			if r.UnderlayMTU < 576 || r.UnderlayMTU > 65535 {
				v.errf(p+".underlay_mtu", "underlay_mtu %d out of range 576-65535", r.UnderlayMTU)
			} else {
				x.UnderlayMTU = r.UnderlayMTU
			}
		}
		overhead := 50
		if local.IsValid() && !local.Is4() {
			overhead = 70
		}
		x.MTU = x.UnderlayMTU - overhead
		if r.MTU != 0 {
			if r.MTU < 576 || r.MTU > x.UnderlayMTU-overhead {
				v.errf(p+".mtu", "mtu %d out of range 576-%d (underlay_mtu %d minus %d of VXLAN headers; raise underlay_mtu for more)", r.MTU, x.UnderlayMTU-overhead, x.UnderlayMTU, overhead)
			} else {
				x.MTU = r.MTU
			}
		}
		if r.MaxMACs != nil {
			if *r.MaxMACs <= 0 {
				v.errf(p+".max_macs", "max_macs %d must be positive", *r.MaxMACs)
			} else {
				x.MaxMACs = *r.MaxMACs
			}
		}
		if r.SourcePorts != 0 {
			if r.SourcePorts < 1 || r.SourcePorts > 64 {
				v.errf(p+".source_ports", "source_ports %d out of range 1-64", r.SourcePorts)
			} else {
				x.SourcePorts = r.SourcePorts
			}
		}
		out = append(out, x)
	}
	return out
}

// Key is the tunnel's switch port name.
func (x VXLAN) Key() string { return "vxlan:" + x.Name }
