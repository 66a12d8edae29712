package config

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/vnetd/vnetd/frame"
)

// Gateway defaults (docs/daemon.md).
const (
	DefaultGatewayMaxFlows       = 1024
	DefaultGatewayUDPIdleTimeout = 60 * time.Second
)

// Gateway is one [[gateway]]: an egress gateway on a switch that relays the TCP and
// UDP flows guests send to foreign addresses through host sockets (package gateway).
type Gateway struct {
	// Name is unique among gateways and namespaces.
	Name string
	// Switch is the switch its one interface plugs into; its port is "NAME.SWITCH".
	Switch string
	// MAC is explicit or derived from "NAME.SWITCH".
	MAC frame.MAC
	// Addresses are the gateway's own addresses; guests route through one of them.
	Addresses []netip.Prefix
	// MTU defaults to 1500.
	MTU int
	// VLAN is the access VLAN; 0 = untagged.
	VLAN uint16
	// Host and Host6 are the host loopback aliases (to 127.0.0.1 and ::1); zero = none.
	Host, Host6 netip.Addr
	// Allow and Deny are destination prefixes (after alias mapping); an empty
	// Allow allows all, Deny wins.
	Allow, Deny []netip.Prefix
	// MaxFlows caps the flows open at once; default DefaultGatewayMaxFlows.
	MaxFlows int
	// UDPIdleTimeout closes an idle UDP flow; default DefaultGatewayUDPIdleTimeout.
	UDPIdleTimeout time.Duration
}

type rawGateway struct {
	Name           string   `toml:"name"`
	Switch         string   `toml:"switch"`
	MAC            string   `toml:"mac"`
	Addresses      []string `toml:"addresses"`
	MTU            *int     `toml:"mtu"`
	VLAN           int      `toml:"vlan"`
	Host           string   `toml:"host"`
	Host6          string   `toml:"host6"`
	Allow          []string `toml:"allow"`
	Deny           []string `toml:"deny"`
	MaxFlows       *int     `toml:"max_flows"`
	UDPIdleTimeout string   `toml:"udp_idle_timeout"`
}

// gateways validates the [[gateway]] tables. names holds the namespace names (a
// gateway's port name must not collide with a namespace NIC's).
func (v *validator) gateways(raws []rawGateway, c *Config, needSwitch func(path, sw string), claimMAC func(path, sw string, m frame.MAC, owner string), names map[string]bool) {
	seen := map[string]bool{}
	for i, r := range raws {
		p := fmt.Sprintf("gateway.%d", i)
		v.name(p, "gateway", r.Name, seen)
		if names[r.Name] {
			v.errf(p+".name", "gateway name %q is also a namespace name", r.Name)
		}
		needSwitch(p, r.Switch)
		g := Gateway{Name: r.Name, Switch: r.Switch, MTU: v.mtu(p+".mtu", r.MTU), VLAN: v.vlan(p+".vlan", r.VLAN),
			MaxFlows: DefaultGatewayMaxFlows}
		g.MAC = v.mac(p+".mac", r.MAC, r.Name+"."+r.Switch)
		claimMAC(p+".mac", r.Switch, g.MAC, "gateway "+r.Name)
		g.Addresses = v.prefixes(p+".addresses", r.Addresses)
		if len(r.Addresses) == 0 {
			v.errf(p, "gateway %s needs addresses", r.Name)
		}
		g.Host = v.addr(p+".host", "host", r.Host)
		if g.Host.IsValid() && !g.Host.Is4() {
			v.errf(p+".host", "host %s must be an IPv4 address (host6 takes the IPv6 alias)", g.Host)
		}
		g.Host6 = v.addr(p+".host6", "host6", r.Host6)
		if g.Host6.IsValid() && !g.Host6.Is6() {
			v.errf(p+".host6", "host6 %s must be an IPv6 address", g.Host6)
		} else if a := g.Host6; a.IsValid() && (a.Is4In6() || a.IsMulticast() || a.IsUnspecified() || a.IsLoopback()) {
			// The gateway answers neighbour solicitations for it: a unicast address.
			v.errf(p+".host6", "host6 %s must be a unicast IPv6 address (not multicast, unspecified, loopback or IPv4-mapped)", a)
		}
		for _, a := range []netip.Addr{g.Host, g.Host6} {
			for _, own := range g.Addresses {
				if a.IsValid() && own.Addr() == a {
					v.errf(p+".host", "host alias %s is also an address of gateway %s", a, r.Name)
				}
			}
		}
		g.Allow = v.destPrefixes(p+".allow", r.Allow)
		g.Deny = v.destPrefixes(p+".deny", r.Deny)
		if r.MaxFlows != nil {
			if *r.MaxFlows <= 0 {
				v.errf(p+".max_flows", "max_flows %d must be positive", *r.MaxFlows)
			} else {
				g.MaxFlows = *r.MaxFlows
			}
		}
		g.UDPIdleTimeout = v.duration(p+".udp_idle_timeout", r.UDPIdleTimeout, DefaultGatewayUDPIdleTimeout)
		if g.UDPIdleTimeout == 0 {
			g.UDPIdleTimeout = DefaultGatewayUDPIdleTimeout
		}
		c.Gateways = append(c.Gateways, g)
	}
}

// destPrefixes parses a policy list: prefixes such as "127.0.0.0/8" or bare
// addresses (a host prefix).
func (v *validator) destPrefixes(path string, ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				v.errf(path, "bad prefix %q: want CIDR such as \"127.0.0.0/8\" or an address", s)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p != p.Masked() {
			v.errf(path, "prefix %s has host bits set (did you mean %s?)", p, p.Masked())
			continue
		}
		out = append(out, p)
	}
	return out
}
