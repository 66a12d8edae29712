package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"sync"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/portsec"
)

// links is the registry of every switch port and pair end's portsec decorator (port
// security and administrative link state), by the same targets as impairs:
// "SWITCH/PORT" and "NS:NIC".
type links struct {
	mu    sync.Mutex
	ports map[string]*linkPort
}

type linkPort struct {
	sw, port, ns, nic string
	p                 *portsec.Port
}

// LinkStatus is one port's link state, port security and their counters.
type LinkStatus struct {
	Target    string `json:"target"`
	Switch    string `json:"switch,omitempty"`
	Port      string `json:"port,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	NIC       string `json:"nic,omitempty"`
	// Security says what the port may send: "off", or the allowed MACs and addresses.
	Security string         `json:"security"`
	Status   portsec.Status `json:"status"`
}

// LinkSpec is a link state change, POST /v1/link: a namespace NIC (Namespace and
// NIC) or a switch port (Switch and Port), and State "up" or "down".
type LinkSpec struct {
	Namespace string `json:"namespace,omitempty"`
	NIC       string `json:"nic,omitempty"`
	Switch    string `json:"switch,omitempty"`
	Port      string `json:"port,omitempty"`
	State     string `json:"state"`
}

// ErrInvalidLink wraps a link request that names nothing or no state.
var ErrInvalidLink = errors.New("invalid link request")

// guard wraps p, attached as target, in its portsec decorator with policy pol.
func (d *Daemon) guard(target string, lp linkPort, pol portsec.Policy, p frame.Port) frame.Port {
	e := &lp
	e.p = portsec.Wrap(p, portsec.Options{Policy: pol, OnClose: func() {
		d.links.mu.Lock()
		if d.links.ports[target] == e {
			delete(d.links.ports, target)
		}
		d.links.mu.Unlock()
	}})
	d.links.mu.Lock()
	if d.links.ports == nil {
		d.links.ports = map[string]*linkPort{}
	}
	d.links.ports[target] = e
	d.links.mu.Unlock()
	return e.p.Attach()
}

// pairLinks joins the decorators of two pair ends, so what one sends while the other
// is down counts as its tx_dropped.
func (d *Daemon) pairLinks(a, b string) {
	d.links.mu.Lock()
	defer d.links.mu.Unlock()
	if x, y := d.links.ports[a], d.links.ports[b]; x != nil && y != nil {
		portsec.Pair(x.p, y.p)
	}
}

// forgetLink drops target from the registry: its port was not attached after all.
func (d *Daemon) forgetLink(target string) {
	d.links.mu.Lock()
	delete(d.links.ports, target)
	d.links.mu.Unlock()
}

// nicPolicy is a namespace NIC's port security: its own MAC and addresses plus the
// configured ones, unless turned off.
func nicPolicy(n config.NIC) portsec.Policy {
	if !n.Security.On {
		return portsec.Policy{}
	}
	pol := portsec.Policy{MACs: append([]frame.MAC{n.MAC}, n.Security.MACs...), IPs: hostPrefixes(n.Addresses)}
	pol.IPs = append(pol.IPs, n.Security.IPs...)
	return pol
}

// routerLegPolicy is a router interface's: its MAC, and its addresses in ARP and NDP;
// IP sources are not checked, a router forwards other hosts' packets. With proxy ARP
// the leg answers for addresses that are not its own, so IPv4 (ARP sender addresses)
// is left unchecked; the MAC and NDP claims still are.
func routerLegPolicy(ifc config.RouterInterface) portsec.Policy {
	ips := hostPrefixes(ifc.Addresses)
	if ifc.ProxyARP {
		ips = slices.DeleteFunc(ips, func(p netip.Prefix) bool { return p.Addr().Is4() })
	}
	return portsec.Policy{MACs: []frame.MAC{ifc.MAC}, IPs: ips, AnySource: true}
}

// securityPolicy is the policy of a socket, TAP or host interface's port.
func securityPolicy(s config.PortSecurity) portsec.Policy {
	if !s.On {
		return portsec.Policy{}
	}
	return portsec.Policy{MACs: s.MACs, IPs: s.IPs, DHCPSnooping: s.DHCPSnooping}
}

func hostPrefixes(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		out = append(out, netip.PrefixFrom(p.Addr(), p.Addr().BitLen()))
	}
	return out
}

// attachPolicy is the policy of the port an attachment (d.attach) puts on a switch
// as name.
func attachPolicy(cfg any, name string) portsec.Policy {
	switch c := cfg.(type) {
	case config.TAP:
		return securityPolicy(c.Security)
	case config.HostInterface:
		return securityPolicy(c.Security)
	case config.Router:
		for _, ifc := range c.Interfaces {
			if c.Name+"."+ifc.Name == name {
				return routerLegPolicy(ifc)
			}
		}
	}
	return portsec.Policy{} // gateways and VXLAN tunnels: link state only
}

// linkTarget resolves a LinkSpec to its registry target.
func (d *Daemon) linkTarget(s LinkSpec) (string, error) {
	switch {
	case s.Namespace != "" && s.NIC != "":
		d.mu.Lock()
		e := d.namespaces[s.Namespace]
		d.mu.Unlock()
		if e == nil {
			return "", fmt.Errorf("%w: namespace %q", ErrNoPort, s.Namespace)
		}
		for _, n := range e.cfg.NICs {
			if n.Name != s.NIC {
				continue
			}
			if n.Switch != "" {
				return n.Switch + "/" + s.Namespace + "." + s.NIC, nil
			}
			return s.Namespace + ":" + s.NIC, nil
		}
		return "", fmt.Errorf("%w: namespace %q has no nic %q", ErrNoPort, s.Namespace, s.NIC)
	case s.Switch != "" && s.Port != "":
		return s.Switch + "/" + s.Port, nil
	}
	return "", fmt.Errorf("%w: want namespace and nic, or switch and port", ErrInvalidLink)
}

// SetLink sets a port's administrative link state: a down port drops every frame
// both ways, counted (link_down_in, link_down_out; a pair end's peer counts what it
// sends as peer_down and tx_dropped).
func (d *Daemon) SetLink(s LinkSpec) (LinkStatus, error) {
	var up bool
	switch s.State {
	case "up":
		up = true
	case "down":
	default:
		return LinkStatus{}, fmt.Errorf("%w: state %q: want up or down", ErrInvalidLink, s.State)
	}
	target, err := d.linkTarget(s)
	if err != nil {
		return LinkStatus{}, err
	}
	d.links.mu.Lock()
	e := d.links.ports[target]
	d.links.mu.Unlock()
	if e == nil {
		return LinkStatus{}, fmt.Errorf("%w %s", ErrNoPort, target)
	}
	e.p.SetUp(up)
	d.log.Info("link set", "target", target, "state", s.State)
	return e.status(target), nil
}

func (e *linkPort) status(target string) LinkStatus {
	return LinkStatus{Target: target, Switch: e.sw, Port: e.port, Namespace: e.ns, NIC: e.nic,
		Security: policyString(e.p.Policy()), Status: e.p.Status()}
}

func policyString(p portsec.Policy) string {
	if p.IsZero() {
		return "off"
	}
	s := ""
	for _, m := range p.MACs {
		s += " mac " + m.String()
	}
	for _, a := range p.IPs {
		if a.IsSingleIP() {
			s += " ip " + a.Addr().String()
		} else {
			s += " ip " + a.String()
		}
	}
	if p.AnySource {
		s += " (any ip source)"
	}
	if p.DHCPSnooping {
		s += " dhcp-snooping"
	}
	return s[1:]
}

// Links lists every port's link state and port security, by target.
func (d *Daemon) Links() []LinkStatus {
	d.links.mu.Lock()
	defer d.links.mu.Unlock()
	out := make([]LinkStatus, 0, len(d.links.ports))
	for target, e := range d.links.ports {
		out = append(out, e.status(target))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Target < out[j].Target })
	return out
}

// DeletePair removes a pass-through pair given either end: both NICs leave their
// namespaces (the config is not changed: a reload that rebuilds either namespace
// brings the pair back).
func (d *Daemon) DeletePair(ns, nic string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.namespaces[ns]
	if e == nil {
		return fmt.Errorf("%w: namespace %q", ErrNoPort, ns)
	}
	var peerNS, peerNIC string
	for _, n := range e.cfg.NICs {
		if n.Name == nic {
			peerNS, peerNIC = n.PeerNamespace, n.PeerNIC
			if peerNS == "" {
				return fmt.Errorf("%w: %s.%s is not a pass-through pair end", ErrInvalidLink, ns, nic)
			}
		}
	}
	key := pairKey(ns, nic, peerNS, peerNIC)
	stop := d.pairs[key]
	if peerNS == "" || stop == nil {
		return fmt.Errorf("%w: no pair %s:%s", ErrNoPort, ns, nic)
	}
	stop()
	delete(d.pairs, key)
	for _, end := range [][2]string{{ns, nic}, {peerNS, peerNIC}} {
		if o := d.namespaces[end[0]]; o != nil {
			o.ns.RemoveNIC(end[1])
		}
	}
	d.log.Info("pair removed", "a", ns+":"+nic, "b", peerNS+":"+peerNIC)
	return nil
}

// pairKey names a pass-through pair the same from either end.
func pairKey(ns, nic, peerNS, peerNIC string) string {
	a, b := ns+":"+nic, peerNS+":"+peerNIC
	if b < a {
		a, b = b, a
	}
	return a + " " + b
}
