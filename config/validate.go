package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/vnetd/vnetd/frame"
)

// EdgeMaxMACs is the default cap on the MACs a switch learns on a port a host or a
// VM plugs in (a TAP, a host interface, each VM of a socket), so one of them cannot
// fill the FDB and evict everyone else's entries. Namespace NICs, router and gateway
// ports are vnetd's own and have no cap unless the switch sets port_max_macs.
const EdgeMaxMACs = 256

var defaultListen = map[string]uint16{KindEcho: 7, KindDiscard: 9, KindHTTP: 80, KindDNS: 53, KindIperf3: 5201}

// builder carries what the steps of build share: the raw file, the Config being
// built and the names each section registers for the later ones to check against.
type builder struct {
	*validator
	raw *rawConfig
	c   *Config

	switchNames map[string]bool                 // [[switch]] names
	macs        map[string]map[frame.MAC]string // switch -> MAC -> owner
	nsNames     map[string]bool                 // [[namespace]] names
	nsByName    map[string]*Namespace           // into c.Namespaces, once they are all in
	hostIfNames map[string]bool                 // [[tap]] and [[host_interface]] share one name space
}

// build checks raw section by section and returns the Config; problems go to v.errs.
// The order of the steps is the order of the checks each later step relies on
// (switches before anything plugged into them, namespaces before forwards, ...).
func (v *validator) build(raw *rawConfig) *Config {
	b := &builder{validator: v, raw: raw, c: &Config{},
		switchNames: map[string]bool{}, macs: map[string]map[frame.MAC]string{},
		nsNames: map[string]bool{}, hostIfNames: map[string]bool{}}
	b.daemon()
	b.switches()
	b.namespaces()
	b.peers()
	b.routesAndServices()
	b.routers()
	b.routerLegs()
	b.taps()
	b.hostInterfaces()
	b.vxlans()
	b.sockets()
	b.forwards()
	b.gateways()
	b.impairs()
	b.expects()
	v.duplicateAddrs(b.c)
	v.empty(raw)
	return b.c
}

// daemon checks [daemon].
func (v *builder) daemon() {
	raw, c := v.raw, v.c
	c.Daemon = Daemon{Control: raw.Daemon.Control, Metrics: raw.Daemon.Metrics, Web: raw.Daemon.Web, LogLevel: raw.Daemon.LogLevel}
	switch c.Daemon.LogLevel {
	case "":
		c.Daemon.LogLevel = "info"
	case "debug", "info", "warn", "error":
	default:
		v.errf("daemon.log_level", "log_level %q: want debug, info, warn or error", c.Daemon.LogLevel)
	}
	if c.Daemon.Control != "" {
		v.socketPath("daemon.control", "control socket", c.Daemon.Control, true)
	}
	if c.Daemon.Web != "" {
		if _, err := netip.ParseAddrPort(c.Daemon.Web); err != nil {
			v.errf("daemon.web", "web %q: want HOST:PORT such as \"127.0.0.1:9576\"", c.Daemon.Web)
		}
	}
	if c.Daemon.Metrics != "" {
		if _, err := netip.ParseAddrPort(c.Daemon.Metrics); err != nil {
			v.errf("daemon.metrics", "metrics %q: want HOST:PORT such as \"127.0.0.1:9575\"", c.Daemon.Metrics)
		}
	}

	c.Daemon.CaptureRingBytes = v.ringBytes("daemon.capture_ring_bytes", &raw.Daemon.CaptureRingBytes, 0)
	c.Daemon.CaptureRingSeconds = v.ringSeconds("daemon.capture_ring_seconds", raw.Daemon.CaptureRingSeconds, 60)
}

// switches checks the [[switch]] tables; the daemon's capture ring is their default.
func (v *builder) switches() {
	c := v.c
	for i, r := range v.raw.Switch {
		p := fmt.Sprintf("switch.%d", i)
		v.name(p, "switch", r.Name, v.switchNames)
		s := Switch{Name: r.Name, MaxMACs: 8192, PortMaxMACs: r.PortMaxMACs}
		agingStr := ""
		if r.MACAging != nil {
			agingStr = *r.MACAging
		}
		s.MACAging = v.duration(p+".mac_aging", agingStr, 5*time.Minute)
		if r.MaxMACs != nil {
			if *r.MaxMACs <= 0 {
				v.errf(p+".max_macs", "max_macs %d must be positive", *r.MaxMACs)
			} else {
				s.MaxMACs = *r.MaxMACs
			}
		}
		if r.PortMaxMACs < 0 {
			v.errf(p+".port_max_macs", "port_max_macs %d must not be negative", r.PortMaxMACs)
		}
		switch r.PortMaxMACsViolation {
		case "", "drop":
		case "learn-only":
			s.PortMaxMACsLearnOnly = true
		default:
			v.errf(p+".port_max_macs_violation", "port_max_macs_violation %q: want drop or learn-only", r.PortMaxMACsViolation)
		}
		s.CaptureRingBytes = v.ringBytes(p+".capture_ring_bytes", r.CaptureRingBytes, c.Daemon.CaptureRingBytes)
		s.CaptureRingSeconds = v.ringSeconds(p+".capture_ring_seconds", r.CaptureRingSeconds, c.Daemon.CaptureRingSeconds)
		c.Switches = append(c.Switches, s)
	}
}

// edgeMACs is the MAC cap of a port a host or VM plugs in: its own max_macs, else
// the switch's port_max_macs, else EdgeMaxMACs.
func (v *builder) edgeMACs(path string, n *int, sw string) int {
	if n != nil {
		if *n <= 0 {
			v.errf(path, "max_macs %d must be positive", *n)
			return EdgeMaxMACs
		}
		return *n
	}
	for _, s := range v.c.Switches {
		if s.Name == sw && s.PortMaxMACs > 0 {
			return s.PortMaxMACs
		}
	}
	return EdgeMaxMACs
}

// needSwitch checks that the table at path names a defined switch.
func (v *builder) needSwitch(path, s string) {
	if s == "" {
		v.errf(path, "switch is required")
	} else if !v.switchNames[s] {
		v.errf(path+".switch", "switch %q is not defined", s)
	}
}

// claimMAC registers m on switch sw for owner, or reports who has it already.
func (v *builder) claimMAC(path, sw string, m frame.MAC, owner string) {
	if sw == "" {
		return
	}
	if v.macs[sw] == nil {
		v.macs[sw] = map[frame.MAC]string{}
	}
	if other, ok := v.macs[sw][m]; ok {
		v.errf(path, "MAC %s of %s is already used by %s on switch %q", m, owner, other, sw)
		return
	}
	v.macs[sw][m] = owner
}

// namespaces checks the [[namespace]] tables and their NICs; NICs first, so peers
// and routes can refer to any of them.
func (v *builder) namespaces() {
	c := v.c
	rawNS, rawRouters := map[string]bool{}, map[string]bool{}
	for _, r := range v.raw.Namespace {
		rawNS[r.Name] = true
	}
	for _, r := range v.raw.Router {
		rawRouters[r.Name] = true
	}
	for i, r := range v.raw.Namespace {
		p := fmt.Sprintf("namespace.%d", i)
		v.name(p, "namespace", r.Name, v.nsNames)
		ns := Namespace{Name: r.Name}
		nics := map[string]bool{}
		for j, rn := range r.NIC {
			np := fmt.Sprintf("%s.nic.%d", p, j)
			v.name(np, "nic", rn.Name, nics)
			n := NIC{Name: rn.Name, Switch: rn.Switch, MTU: v.mtu(np+".mtu", rn.MTU), VLAN: v.vlan(np+".vlan", rn.VLAN)}
			n.MAC = v.mac(np+".mac", rn.MAC, r.Name+"."+rn.Name)
			n.Addresses = v.prefixes(np+".addresses", rn.Addresses)
			n.Security = v.nicPortSecurity(np, rn.PortSecurity, rn.AllowMACs, rn.AllowIPs)
			n.Kind = v.nicKind(np, r.Name, rn)
			switch {
			case n.Kind == NICKindL3 && rn.Switch != "":
				v.errf(np+".switch", "nic %s.%s is kind = \"l3\" (no Ethernet): it cannot be on a switch; join it to another l3 nic with peer = \"NAMESPACE:NIC\"", r.Name, rn.Name)
			case n.Kind == NICKindL3 && rn.Peer == "":
				v.errf(np, "nic %s.%s is kind = \"l3\": it needs peer = \"NAMESPACE:NIC\" (another l3 nic) or \"ROUTER:INTERFACE\" (a router leg)", r.Name, rn.Name)
			case rn.Switch != "" && rn.Peer != "":
				v.errf(np+".peer", "nic %s.%s sets both switch and peer; pick one", r.Name, rn.Name)
			case rn.Switch != "":
				v.needSwitch(np, rn.Switch)
				v.claimMAC(np+".mac", rn.Switch, n.MAC, "nic "+r.Name+"."+rn.Name)
			case rn.Peer != "":
				a, b, ok := strings.Cut(rn.Peer, ":")
				if !ok || a == "" || b == "" {
					v.errf(np+".peer", "peer %q: want \"NAMESPACE:NIC\"", rn.Peer)
				}
				switch {
				case rawRouters[a] && rawNS[a]:
					v.errf(np+".peer", "peer %q: %q names both a namespace and a router; rename one", rn.Peer, a)
				case rawRouters[a] && n.Kind != NICKindL3:
					v.errf(np+".peer", "nic %s.%s peers router interface %s:%s: only a kind = \"l3\" nic can be a router leg (put an l2 nic on a switch the router is on)", r.Name, rn.Name, a, b)
				case rawRouters[a]:
					n.PeerRouter, n.PeerIface = a, b
				default:
					n.PeerNamespace, n.PeerNIC = a, b
				}
				if rn.VLAN != 0 {
					v.errf(np+".vlan", "vlan is only meaningful on a switch port")
				}
			default:
				v.errf(np, "nic %s.%s needs switch or peer", r.Name, rn.Name)
			}
			ns.NICs = append(ns.NICs, n)
		}
		c.Namespaces = append(c.Namespaces, ns)
	}
	v.nsByName = map[string]*Namespace{}
	for i := range c.Namespaces {
		v.nsByName[c.Namespaces[i].Name] = &c.Namespaces[i]
	}
}

// findNIC returns namespace ns's NIC nic, or nil.
func (v *builder) findNIC(ns, nic string) *NIC {
	n := v.nsByName[ns]
	if n == nil {
		return nil
	}
	for k := range n.NICs {
		if n.NICs[k].Name == nic {
			return &n.NICs[k]
		}
	}
	return nil
}

// peers checks that every NIC's peer exists and names it back.
func (v *builder) peers() {
	c := v.c
	for i := range c.Namespaces {
		ns := &c.Namespaces[i]
		for j, n := range ns.NICs {
			if n.PeerNamespace == "" {
				continue
			}
			np := fmt.Sprintf("namespace.%d.nic.%d.peer", i, j)
			if n.PeerNamespace == ns.Name && n.PeerNIC == n.Name {
				v.errf(np, "nic %s.%s is its own peer", ns.Name, n.Name)
				continue
			}
			other := v.findNIC(n.PeerNamespace, n.PeerNIC)
			switch {
			case v.nsByName[n.PeerNamespace] == nil:
				v.errf(np, "peer %s:%s: namespace %q is not defined", n.PeerNamespace, n.PeerNIC, n.PeerNamespace)
			case other == nil:
				v.errf(np, "peer %s:%s: namespace %q has no nic %q", n.PeerNamespace, n.PeerNIC, n.PeerNamespace, n.PeerNIC)
			case other.PeerNamespace != ns.Name || other.PeerNIC != n.Name:
				v.errf(np, "peer %s:%s is not mutual: %s.%s must set peer = \"%s:%s\"", n.PeerNamespace, n.PeerNIC, n.PeerNamespace, n.PeerNIC, ns.Name, n.Name)
			case other.Kind != n.Kind && n.Kind == NICKindL3:
				v.errf(fmt.Sprintf("namespace.%d.nic.%d.kind", i, j), "nic %s.%s is kind = \"l3\" but its peer %s:%s is %s: both ends of a pair have the same kind", ns.Name, n.Name, n.PeerNamespace, n.PeerNIC, other.Kind)
			case n.Kind == NICKindL3:
				ns.NICs[j].PeerRoutes = l3PeerRoutes(n.Addresses, other.Addresses)
			}
		}
	}
}

// routesAndServices checks each namespace's routes and services, against its NICs.
func (v *builder) routesAndServices() {
	c := v.c
	for i, r := range v.raw.Namespace {
		p := fmt.Sprintf("namespace.%d", i)
		ns := &c.Namespaces[i]
		for j, rr := range r.Route {
			rp := fmt.Sprintf("%s.route.%d", p, j)
			if rt, ok := v.route(rp, rr, nsNICAddrs(ns)); ok {
				ns.Routes = append(ns.Routes, rt)
			}
		}
		listens := map[string]bool{}
		for j, rs := range r.Service {
			sp := fmt.Sprintf("%s.service.%d", p, j)
			if s, ok := v.service(sp, rs, ns, listens); ok {
				ns.Services = append(ns.Services, s)
			}
		}
	}
}

// routers checks the [[router]] tables: interfaces, then routes over them.
func (v *builder) routers() {
	c := v.c
	routers := map[string]bool{}
	for i, r := range v.raw.Router {
		p := fmt.Sprintf("router.%d", i)
		v.name(p, "router", r.Name, routers)
		rt := Router{Name: r.Name}
		ifNames := map[string]bool{}
		ifSwitch := map[string]bool{}
		addrs := map[string][]netip.Prefix{}
		for j, ri := range r.Interface {
			ip := fmt.Sprintf("%s.interface.%d", p, j)
			name := ri.Name
			var peerNS, peerNIC string
			if ri.Peer != "" {
				peerNS, peerNIC = v.routerLegPeer(ip, r.Name, ri)
			}
			if name == "" {
				name = ri.Switch
				if ri.Peer != "" {
					name = peerNS
				}
			}
			if name != "" {
				v.name(ip, "router interface", name, ifNames)
			}
			if ri.Peer == "" {
				v.needSwitch(ip, ri.Switch)
			}
			if ri.Switch != "" && ifSwitch[ri.Switch] && ri.VLAN == 0 {
				v.errf(ip+".switch", "router %s has two untagged interfaces on switch %q", r.Name, ri.Switch)
			}
			if ri.Switch != "" {
				ifSwitch[ri.Switch] = true
			}
			ifc := RouterInterface{Name: name, Switch: ri.Switch, MTU: v.mtu(ip+".mtu", ri.MTU), VLAN: v.vlan(ip+".vlan", ri.VLAN), ProxyARP: ri.ProxyARP,
				PeerNamespace: peerNS, PeerNIC: peerNIC}
			ifc.MAC = v.mac(ip+".mac", ri.MAC, r.Name+"."+name)
			ifc.Addresses = v.prefixes(ip+".addresses", ri.Addresses)
			for _, a := range ifc.Addresses {
				ifc.RA = ifc.RA || a.Addr().Is6() && a.Bits() == 64
			}
			if ri.RA != nil {
				ifc.RA = *ri.RA
			}
			if ifc.L3Leg() {
				ifc.RA = false // no link layer to advertise on; routerLegPeer refused ra = true
			}
			if len(ri.Addresses) == 0 {
				v.errf(ip, "router interface %s.%s needs addresses", r.Name, name)
			}
			v.claimMAC(ip+".mac", ri.Switch, ifc.MAC, "router interface "+r.Name+"."+name)
			addrs[name] = ifc.Addresses
			rt.Interfaces = append(rt.Interfaces, ifc)
		}
		for j, rr := range r.Route {
			rp := fmt.Sprintf("%s.route.%d", p, j)
			if route, ok := v.route(rp, rr, addrs); ok {
				rt.Routes = append(rt.Routes, route)
			}
		}
		c.Routers = append(c.Routers, rt)
	}
}

// taps checks the [[tap]] tables.
func (v *builder) taps() {
	c := v.c
	for i, r := range v.raw.TAP {
		p := fmt.Sprintf("tap.%d", i)
		v.name(p, "tap", r.Name, v.hostIfNames)
		v.ifName(p, "tap", r.Name)
		v.needSwitch(p, r.Switch)
		t := TAP{Name: r.Name, Switch: r.Switch, Create: true, Offload: true, MTU: v.mtu(p+".mtu", r.MTU), VLAN: v.vlan(p+".vlan", r.VLAN), MaxMACs: v.edgeMACs(p+".max_macs", r.MaxMACs, r.Switch)}
		if r.Create != nil {
			t.Create = *r.Create
		}
		if r.Offload != nil {
			t.Offload = *r.Offload
		}
		t.Queues = 1
		if r.Queues != nil {
			if *r.Queues < 1 || *r.Queues > MaxTAPQueues {
				v.errf(p+".queues", "queues %d out of range 1-%d", *r.Queues, MaxTAPQueues)
			} else {
				t.Queues = *r.Queues
			}
		}
		t.Security = v.portSecurity(p, r.rawPortSecurity)
		t.Trunk, t.Native = v.trunk(p, r.Trunk, r.Native, r.VLAN)
		c.TAPs = append(c.TAPs, t)
	}
}

// hostInterfaces checks the [[host_interface]] tables; their names may not repeat a
// TAP's.
func (v *builder) hostInterfaces() {
	c := v.c
	for i, r := range v.raw.HostInterface {
		p := fmt.Sprintf("host_interface.%d", i)
		v.name(p, "host_interface", r.Name, v.hostIfNames)
		v.ifName(p, "host_interface", r.Name)
		v.needSwitch(p, r.Switch)
		h := HostInterface{Name: r.Name, Switch: r.Switch, VLAN: v.vlan(p+".vlan", r.VLAN), Ring: r.Ring,
			MaxMACs: v.edgeMACs(p+".max_macs", r.MaxMACs, r.Switch), Security: v.portSecurity(p, r.rawPortSecurity)}
		h.Trunk, h.Native = v.trunk(p, r.Trunk, r.Native, r.VLAN)
		c.HostInterfaces = append(c.HostInterfaces, h)
	}
}

// vxlans checks the [[vxlan]] tables (config/vxlan.go).
func (v *builder) vxlans() {
	v.c.VXLANs = v.validator.vxlans(v.raw.VXLAN, v.needSwitch)
}

// sockets checks the [[socket]] tables: VM sockets, one path each.
func (v *builder) sockets() {
	c := v.c
	paths := map[string]bool{}
	for i, r := range v.raw.Socket {
		p := fmt.Sprintf("socket.%d", i)
		if r.Path == "" {
			v.errf(p, "socket needs a path")
		} else if paths[r.Path] {
			v.errf(p+".path", "duplicate socket path %q", r.Path)
		} else {
			v.socketPath(p+".path", "socket", r.Path, false)
		}
		paths[r.Path] = true
		v.needSwitch(p, r.Switch)
		s := Socket{Path: r.Path, Switch: r.Switch, Protocol: r.Protocol, Security: v.portSecurity(p, r.rawPortSecurity),
			MaxConns: r.MaxConns, FrameTimeout: r.FrameTimeout, MaxPeers: r.MaxPeers, PeerIdle: r.PeerIdle,
			MaxMACs: v.edgeMACs(p+".max_macs", r.MaxMACs, r.Switch), VLAN: v.vlan(p+".vlan", r.VLAN)}
		s.Trunk, s.Native = v.trunk(p, r.Trunk, r.Native, r.VLAN)
		switch s.Protocol {
		case "":
			s.Protocol = "stream"
		case "stream", "dgram":
		default:
			v.errf(p+".protocol", "protocol %q: want stream or dgram", r.Protocol)
		}
		v.socketLimits(p, s)
		c.Sockets = append(c.Sockets, s)
	}
}

// forwards checks the [[forward]] tables, each against the namespaces and the
// forwards before it.
func (v *builder) forwards() {
	for i, r := range v.raw.Forward {
		v.c.Forwards = append(v.c.Forwards, v.forward(fmt.Sprintf("forward.%d", i), r, v.nsByName, v.c.Forwards))
	}
}

// gateways checks the [[gateway]] tables (config/gateway.go).
func (v *builder) gateways() {
	v.validator.gateways(v.raw.Gateway, v.c, v.needSwitch, v.claimMAC, v.nsNames)
}

// impairs checks the [[impair]] tables (config/impair.go).
func (v *builder) impairs() { v.validator.impairs(v.raw.Impair, v.c) }

// expects checks the [[expect]] tables (config/expect.go).
func (v *builder) expects() { v.validator.expects(v.raw.Expect, v.c) }

// forward checks one [[forward]] at path p against the namespaces and the forwards
// before it.
func (v *validator) forward(p string, r rawForward, nsByName map[string]*Namespace, prior []Forward) Forward {
	f := Forward{Namespace: r.Namespace, Protocol: r.Protocol}
	switch f.Protocol {
	case "":
		f.Protocol = "tcp"
	case "tcp", "udp":
	default:
		v.errf(p+".protocol", "protocol %q: want tcp or udp", r.Protocol)
	}
	var err error
	if f.Listen, err = netip.ParseAddrPort(r.Listen); err != nil || f.Listen.Port() == 0 {
		v.errf(p+".listen", "listen %q: want HOST:PORT such as \"127.0.0.1:8080\"", r.Listen)
	} else {
		for _, o := range prior {
			if o.Name() == f.Name() {
				v.errf(p+".listen", "duplicate forward %s", f.Name())
				break
			}
			if o.Protocol == f.Protocol && listensOverlap(o.Listen, f.Listen) {
				v.errf(p+".listen", "forward %s overlaps forward %s: a wildcard address takes the port on every address it covers", f.Name(), o.Name())
				break
			}
		}
	}
	ns := nsByName[r.Namespace]
	if r.Namespace == "" {
		v.errf(p, "forward needs a namespace")
	} else if ns == nil {
		v.errf(p+".namespace", "namespace %q is not defined", r.Namespace)
	}
	if f.Target, err = netip.ParseAddrPort(r.Target); err != nil || f.Target.Port() == 0 {
		v.errf(p+".target", "target %q: want ADDRESS:PORT such as \"10.0.0.10:80\"", r.Target)
	} else if ns != nil && !reachable(ns, f.Target.Addr()) {
		v.errf(p+".target", "target %s is not reachable from namespace %q (no address, subnet or route covers it)", f.Target.Addr(), ns.Name)
	}
	limit := func(key string, n *int, def int, proto string) int {
		if n == nil {
			if f.Protocol == proto {
				return def
			}
			return 0
		}
		if f.Protocol != proto {
			v.errf(p+"."+key, "%s applies to %s forwards; this one is %s", key, proto, f.Protocol)
			return 0
		}
		if *n < 1 || *n > maxForwardLimit {
			v.errf(p+"."+key, "%s %d out of range 1-%d", key, *n, maxForwardLimit)
			return def
		}
		return *n
	}
	f.MaxConns = limit("max_conns", r.MaxConns, DefaultForwardMaxConns, "tcp")
	f.MaxFlows = limit("max_flows", r.MaxFlows, DefaultForwardMaxFlows, "udp")
	switch {
	case f.Protocol == "udp":
		f.UDPIdle = v.duration(p+".udp_idle", r.UDPIdle, DefaultForwardUDPIdle)
		if f.UDPIdle < time.Second {
			v.errf(p+".udp_idle", "udp_idle %s is shorter than 1s", f.UDPIdle)
		}
	case r.UDPIdle != "":
		v.errf(p+".udp_idle", "udp_idle applies to udp forwards; this one is %s", f.Protocol)
	}
	return f
}

// CheckForward checks a forward given at run time exactly as a [[forward]] table
// added to the file c came from would be checked: against c's namespaces and routes
// and against the forwards running (running, which includes c's own). Errors name
// the key, without a file position.
func CheckForward(c *Config, s ForwardSpec, running []Forward) (Forward, error) {
	v := &validator{file: "forward", loc: newLocator(nil)}
	nsByName := map[string]*Namespace{}
	for i := range c.Namespaces {
		nsByName[c.Namespaces[i].Name] = &c.Namespaces[i]
	}
	f := v.forward("forward", s, nsByName, running)
	if len(v.errs) > 0 {
		msgs := make([]string, len(v.errs))
		for i, e := range v.errs {
			msgs[i] = e.Msg
		}
		return Forward{}, errors.New(strings.Join(msgs, "; "))
	}
	return f, nil
}

// listensOverlap reports whether host sockets bound to a and b (same port) collide:
// 0.0.0.0 covers every IPv4 address, and [::] every address of both families (Go
// listens dual-stack on it).
func listensOverlap(a, b netip.AddrPort) bool {
	if a.Port() != b.Port() {
		return false
	}
	x, y := a.Addr().Unmap(), b.Addr().Unmap()
	switch {
	case x == y:
		return true
	case x == netip.IPv6Unspecified() || y == netip.IPv6Unspecified():
		return true
	case x == netip.IPv4Unspecified():
		return y.Is4()
	case y == netip.IPv4Unspecified():
		return x.Is4()
	}
	return false
}

func nsNICAddrs(ns *Namespace) map[string][]netip.Prefix {
	m := map[string][]netip.Prefix{}
	for _, n := range ns.NICs {
		m[n.Name] = n.Addresses
	}
	return m
}

// reachable reports whether a namespace can send to a: its own address, loopback,
// a connected subnet or a route.
func reachable(ns *Namespace, a netip.Addr) bool {
	if a.IsLoopback() {
		return true
	}
	for _, n := range ns.NICs {
		for _, p := range n.Addresses {
			if p.Contains(a) {
				return true
			}
		}
	}
	for _, r := range ns.Routes {
		if r.To.Contains(a) {
			return true
		}
	}
	return false
}

func (v *validator) route(p string, rr rawRoute, nics map[string][]netip.Prefix) (Route, bool) {
	var r Route
	var err error
	if r.To, err = netip.ParsePrefix(rr.To); err != nil {
		v.errf(p+".to", "bad route destination %q: want CIDR such as \"0.0.0.0/0\"", rr.To)
		return r, false
	}
	if r.To != r.To.Masked() {
		v.errf(p+".to", "route destination %s has host bits set (did you mean %s?)", r.To, r.To.Masked())
	}
	r.NIC = rr.NIC
	if rr.NIC != "" {
		if _, ok := nics[rr.NIC]; !ok {
			v.errf(p+".nic", "interface %q is not defined here", rr.NIC)
			return r, false
		}
	}
	if rr.Via == "" {
		if rr.NIC == "" {
			v.errf(p, "route to %s needs via or nic", r.To)
			return r, false
		}
		return r, true
	}
	r.Via = v.addr(p+".via", "next hop", rr.Via)
	if !r.Via.IsValid() {
		return r, false
	}
	if r.Via.Is4() != r.To.Addr().Is4() {
		v.errf(p+".via", "next hop %s and destination %s are different IP families", r.Via, r.To)
	}
	for name, ps := range nics {
		if rr.NIC != "" && name != rr.NIC {
			continue
		}
		for _, pf := range ps {
			if pf.Contains(r.Via) {
				return r, true
			}
		}
	}
	v.errf(p+".via", "next hop %s is not on a connected subnet", r.Via)
	return r, false
}

func (v *validator) service(p string, rs rawService, ns *Namespace, listens map[string]bool) (Service, bool) {
	s := Service{Kind: rs.Kind, NIC: rs.NIC, Zone: rs.Zone}
	switch rs.Kind {
	case KindEcho, KindDiscard, KindHTTP, KindDNS, KindDHCP, KindIperf3:
	case "":
		v.errf(p, "service needs a kind")
		return s, false
	default:
		v.errf(p+".kind", "unknown service kind %q (want echo, discard, http, dhcp, dns or iperf3)", rs.Kind)
		return s, false
	}
	if rs.Kind != KindDHCP {
		port := defaultListen[rs.Kind]
		if rs.Listen != "" {
			ap, err := parseHostPort(rs.Listen)
			if err != nil || ap.Port() == 0 {
				v.errf(p+".listen", "listen %q: want \":PORT\" or \"ADDRESS:PORT\"", rs.Listen)
				return s, false
			}
			s.Listen = ap
		} else {
			s.Listen = netip.AddrPortFrom(netip.Addr{}, port)
		}
		if a := s.Listen.Addr(); a.IsValid() && !a.IsUnspecified() && !a.IsLoopback() && !ownsAddr(ns, a) {
			v.errf(p+".listen", "listen address %s is not an address of namespace %q", a, ns.Name)
		}
		protos := []string{"tcp"}
		switch rs.Kind {
		case KindEcho, KindDiscard, KindIperf3:
			protos = []string{"tcp", "udp"}
		case KindDNS:
			protos = []string{"udp", "tcp"}
		}
		for _, proto := range protos {
			key := fmt.Sprintf("%s/%d", proto, s.Listen.Port())
			if listens[key] {
				v.errf(p+".listen", "%s port %d is already used by another service in namespace %q", proto, s.Listen.Port(), ns.Name)
				break
			}
			listens[key] = true
		}
	}
	v.dnsForward(p, rs, &s)
	v.iperfLimits(p, rs, &s)
	if rs.Kind == KindDNS {
		if s.Zone == "" {
			s.Zone = "lab."
		}
		if !strings.HasSuffix(s.Zone, ".") {
			v.errf(p+".zone", "zone %q must end with a dot", s.Zone)
		}
		for _, r := range rs.Records {
			rec := Record{Name: r.Name}
			switch {
			case r.Name == "":
				v.errf(p+".records", "dns record needs a name")
			case strings.IndexFunc(r.Name, spaceOrControl) >= 0:
				v.errf(p+".records", "dns record name %q may not contain whitespace or control characters", r.Name)
			case r.A != "" && r.AAAA != "":
				v.errf(p+".records", "dns record %q sets both a and aaaa", r.Name)
			case r.A != "":
				rec.Addr = v.addr(p+".records", "A address", r.A)
				if rec.Addr.IsValid() && !rec.Addr.Is4() {
					v.errf(p+".records", "A record %q needs an IPv4 address", r.Name)
				}
			case r.AAAA != "":
				rec.Addr = v.addr(p+".records", "AAAA address", r.AAAA)
				if rec.Addr.IsValid() && !rec.Addr.Is6() {
					v.errf(p+".records", "AAAA record %q needs an IPv6 address", r.Name)
				}
			default:
				v.errf(p+".records", "dns record %q needs a or aaaa", r.Name)
			}
			s.Records = append(s.Records, rec)
		}
	}
	if rs.MaxLeases != nil {
		switch {
		case rs.Kind != KindDHCP:
			v.errf(p+".max_leases", "max_leases is a dhcp service key, not a %s one", rs.Kind)
		case *rs.MaxLeases < 1 || *rs.MaxLeases > 1_000_000:
			v.errf(p+".max_leases", "max_leases %d: want 1-1000000", *rs.MaxLeases)
		default:
			s.MaxLeases = *rs.MaxLeases
		}
	}
	if rs.Kind == KindDHCP {
		var nic *NIC
		switch {
		case rs.NIC != "":
			for k := range ns.NICs {
				if ns.NICs[k].Name == rs.NIC {
					nic = &ns.NICs[k]
				}
			}
			if nic == nil {
				v.errf(p+".nic", "namespace %q has no nic %q", ns.Name, rs.NIC)
				return s, false
			}
		case len(ns.NICs) == 1:
			nic = &ns.NICs[0]
			s.NIC = nic.Name
		default:
			v.errf(p, "dhcp service in namespace %q needs nic (it has %d)", ns.Name, len(ns.NICs))
			return s, false
		}
		var subnet netip.Prefix
		for _, a := range nic.Addresses {
			if a.Addr().Is4() {
				subnet = a
				break
			}
		}
		if !subnet.IsValid() {
			v.errf(p+".nic", "dhcp nic %s.%s has no IPv4 address", ns.Name, nic.Name)
		}
		lo, hi, ok := strings.Cut(rs.Range, "-")
		if !ok {
			v.errf(p+".range", "range %q: want \"FIRST-LAST\"", rs.Range)
		} else {
			s.RangeStart = v.addr(p+".range", "range start", strings.TrimSpace(lo))
			s.RangeEnd = v.addr(p+".range", "range end", strings.TrimSpace(hi))
			if s.RangeStart.IsValid() && s.RangeEnd.IsValid() {
				if s.RangeEnd.Less(s.RangeStart) {
					v.errf(p+".range", "range %q ends before it starts", rs.Range)
				}
				if subnet.IsValid() && (!subnet.Contains(s.RangeStart) || !subnet.Contains(s.RangeEnd)) {
					v.errf(p+".range", "range %q is outside %s's subnet %s", rs.Range, nic.Name, subnet.Masked())
				}
			}
		}
		s.Router = v.addr(p+".router", "router", rs.Router)
		for _, d := range rs.DNS {
			if a := v.addr(p+".dns", "dns server", d); a.IsValid() {
				s.DNS = append(s.DNS, a)
			}
		}
		s.Lease = v.duration(p+".lease", rs.Lease, time.Hour)
		for _, st := range rs.Static {
			m, err := frame.ParseMAC(st.MAC)
			if err != nil {
				v.errf(p+".static", "bad static MAC %q", st.MAC)
			}
			a := v.addr(p+".static", "static address", st.Address)
			if a.IsValid() && subnet.IsValid() && !subnet.Contains(a) {
				v.errf(p+".static", "static address %s is outside subnet %s", a, subnet.Masked())
			}
			s.Static = append(s.Static, StaticLease{MAC: m, Address: a})
		}
	}
	return s, true
}

// iperfLimits checks an iperf3 service's caps: only an iperf3 service takes them.
func (v *validator) iperfLimits(p string, rs rawService, s *Service) {
	for _, k := range []struct {
		key      string
		raw      *int
		to       *int
		def, max int
	}{{"max_tests", rs.MaxTests, &s.MaxTests, 4, 1024}, {"max_streams", rs.MaxStreams, &s.MaxStreams, 16, 128}} {
		switch {
		case rs.Kind != KindIperf3:
			if k.raw != nil {
				v.errf(p+"."+k.key, "%s applies to iperf3 services; this one is %s", k.key, rs.Kind)
			}
		case k.raw == nil:
			*k.to = k.def
		case *k.raw < 1 || *k.raw > k.max:
			v.errf(p+"."+k.key, "%s %d out of range 1-%d", k.key, *k.raw, k.max)
		default:
			*k.to = *k.raw
		}
	}
}

// dnsForward checks the forwarding keys of a service: only a dns service takes them.
func (v *validator) dnsForward(p string, rs rawService, s *Service) {
	if rs.Kind != KindDNS {
		for key, set := range map[string]bool{"forward": rs.Forward, "resolv_conf": rs.ResolvConf != "", "forward_max_inflight": rs.ForwardMaxInFlight != nil} {
			if set {
				v.errf(p+"."+key, "%s applies to dns services; this one is %s", key, rs.Kind)
			}
		}
		return
	}
	s.Forward = rs.Forward
	s.ResolvConf, s.ForwardMaxInFlight = rs.ResolvConf, DefaultForwardMaxInFlight
	if s.ResolvConf == "" {
		s.ResolvConf = DefaultResolvConf
	}
	if n := rs.ForwardMaxInFlight; n != nil {
		if *n < 1 || *n > 65536 {
			v.errf(p+".forward_max_inflight", "forward_max_inflight %d out of range 1-65536", *n)
		} else {
			s.ForwardMaxInFlight = *n
		}
	}
	if !rs.Forward && (rs.ResolvConf != "" || rs.ForwardMaxInFlight != nil) {
		v.errf(p+".forward", "resolv_conf and forward_max_inflight need forward = true")
	}
}

func ownsAddr(ns *Namespace, a netip.Addr) bool {
	for _, n := range ns.NICs {
		for _, p := range n.Addresses {
			if p.Addr() == a {
				return true
			}
		}
	}
	return false
}

// socketLimits checks a [[socket]]'s limits: not negative, timeouts of at least a
// tenth of a second (a bare integer is read as nanoseconds), and each key on the protocol it
// belongs to (stream: max_conns, frame_timeout; dgram: max_peers, peer_idle).
func (v *validator) socketLimits(p string, s Socket) {
	for _, k := range []struct {
		key    string
		n      int64
		dur    bool
		stream bool
	}{
		{"max_conns", int64(s.MaxConns), false, true},
		{"frame_timeout", int64(s.FrameTimeout), true, true},
		{"max_peers", int64(s.MaxPeers), false, false},
		{"peer_idle", int64(s.PeerIdle), true, false},
	} {
		switch {
		case k.n == 0:
			continue
		case k.n < 0:
			v.errf(p+"."+k.key, "%s may not be negative", k.key)
		case k.dur && time.Duration(k.n) < 100*time.Millisecond:
			v.errf(p+"."+k.key, "%s %v: want at least 100ms (write a unit: \"10s\")", k.key, time.Duration(k.n))
		}
		if k.stream != (s.Protocol == "stream") {
			v.errf(p+"."+k.key, "%s applies to %s sockets only; this one is %s", k.key, map[bool]string{true: "stream", false: "dgram"}[k.stream], s.Protocol)
		}
	}
}

// ringBytes checks a capture_ring_bytes key: 0 (no ring) or
// MinCaptureRingBytes-MaxCaptureRingBytes; nil means def.
func (v *validator) ringBytes(path string, n *int, def int) int {
	if n == nil {
		return def
	}
	if *n != 0 && (*n < MinCaptureRingBytes || *n > MaxCaptureRingBytes) {
		v.errf(path, "capture_ring_bytes %d: want 0 (no ring) or %d-%d", *n, MinCaptureRingBytes, MaxCaptureRingBytes)
		return def
	}
	return *n
}

// ringSeconds checks a capture_ring_seconds key (1-86400); nil means def.
func (v *validator) ringSeconds(path string, n *int, def int) int {
	if n == nil {
		return def
	}
	if *n < 1 || *n > 86400 {
		v.errf(path, "capture_ring_seconds %d: want 1-86400", *n)
		return def
	}
	return *n
}
