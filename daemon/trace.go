package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/router"
	l2switch "github.com/vnetd/vnetd/switch"
)

// TraceSpec is a synthetic IPv4 packet to trace: where it enters and what it is.
type TraceSpec struct {
	// Switch and Port are where the frame enters, e.g. "lan0" and "alpha.eth0".
	Switch string `json:"switch"`
	Port   string `json:"port"`
	// Src and Dst are the IPv4 addresses.
	Src string `json:"src"`
	Dst string `json:"dst"`
	// SrcMAC and DstMAC default to the port's own MAC and the next hop the sending
	// namespace would resolve (the destination on its subnet, else its gateway).
	SrcMAC string `json:"src_mac,omitempty"`
	DstMAC string `json:"dst_mac,omitempty"`
	// Proto is icmp (an echo request, the default), tcp or udp; DPort the port.
	Proto string `json:"proto,omitempty"`
	DPort int    `json:"dport,omitempty"`
	// TTL defaults to 64, Size (the IP packet's length) to 84; DF sets don't-fragment.
	TTL  int  `json:"ttl,omitempty"`
	Size int  `json:"size,omitempty"`
	DF   bool `json:"df,omitempty"`
}

// TraceStep is one decision on the way.
type TraceStep struct {
	// Where is "switch NAME", "router NAME" or "impair TARGET".
	Where string `json:"where"`
	// What is the decision in words.
	What string `json:"what"`
	// Switch and Router hold the decision itself.
	Switch *l2switch.Explanation `json:"switch,omitempty"`
	Router *router.Decision      `json:"router,omitempty"`
}

// Trace is a traced packet's path.
type Trace struct {
	Steps []TraceStep `json:"steps"`
	// Final are the ports ("SWITCH/PORT") the frame would leave by; empty when it is
	// dropped or ends at a router.
	Final []string `json:"final"`
}

// ErrInvalidTrace wraps a trace request that cannot be built.
var ErrInvalidTrace = errors.New("invalid trace")

// maxTraceHops bounds the switches and routers a trace crosses.
const maxTraceHops = 16

// Trace pushes a synthetic frame through the switches' and routers' lookup code
// without sending it, and reports each decision.
func (d *Daemon) Trace(s TraceSpec) (Trace, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cfg == nil {
		return Trace{}, errors.New("no lab running")
	}
	bad := func(format string, a ...any) (Trace, error) {
		return Trace{}, fmt.Errorf("%w: %s", ErrInvalidTrace, fmt.Sprintf(format, a...))
	}
	src, err1 := netip.ParseAddr(s.Src)
	dst, err2 := netip.ParseAddr(s.Dst)
	if err1 != nil || err2 != nil || !src.Is4() || !dst.Is4() {
		return bad("src %q and dst %q must be IPv4 addresses", s.Src, s.Dst)
	}
	proto := map[string]byte{"": 1, "icmp": 1, "tcp": 6, "udp": 17}
	ipProto, ok := proto[s.Proto]
	if !ok {
		return bad("proto %q: want icmp, tcp or udp", s.Proto)
	}
	if s.DPort < 0 || s.DPort > 65535 || s.TTL < 0 || s.TTL > 255 || s.Size < 0 || s.Size > 65535 {
		return bad("dport, ttl or size out of range")
	}
	if s.TTL == 0 {
		s.TTL = 64
	}
	if s.Size == 0 {
		s.Size = 84
	}
	if d.switches[s.Switch] == nil {
		return Trace{}, fmt.Errorf("%w: switch %q", ErrNoPort, s.Switch)
	}
	smac, err := d.traceMAC(s.SrcMAC, func() (frame.MAC, error) { return d.portMAC(s.Switch, s.Port) })
	if err != nil {
		return bad("src mac: %v", err)
	}
	dmac, err := d.traceMAC(s.DstMAC, func() (frame.MAC, error) { return d.nextHopMAC(s.Switch, s.Port, dst) })
	if err != nil {
		return bad("dst mac: %v", err)
	}
	t := Trace{Steps: []TraceStep{}, Final: []string{}}
	sw, port, ttl := s.Switch, s.Port, byte(s.TTL)
	for range maxTraceHops {
		pkt := traceFrame(dmac, smac, src, dst, ipProto, s.DPort, ttl)
		ex, err := d.switches[sw].sw.Explain(port, pkt)
		if err != nil {
			return Trace{}, fmt.Errorf("%w: %v", ErrNoPort, err)
		}
		t.impairStep(d, sw+"/"+port, "in")
		t.Steps = append(t.Steps, TraceStep{Where: "switch " + sw, What: explainWords(ex), Switch: &ex})
		if ex.Drop != "" || len(ex.Out) == 0 {
			return t, nil
		}
		for _, o := range ex.Out {
			t.impairStep(d, sw+"/"+o, "out")
		}
		rname, ifname, r := d.routerPort(sw, ex.Out[0])
		if !ex.Known || r == nil {
			for _, o := range ex.Out {
				t.Final = append(t.Final, sw+"/"+o)
			}
			return t, nil
		}
		dec, err := r.Explain(ifname, dst, ttl, s.Size, s.DF, ipProto == 1)
		if err != nil {
			return Trace{}, err
		}
		t.Steps = append(t.Steps, TraceStep{Where: "router " + rname, What: decisionWords(dec), Router: &dec})
		if dec.Verdict != "forward" || !dec.Resolved {
			return t, nil
		}
		outSw, leg := "", ""
		for _, rc := range d.cfg.Routers {
			for _, ifc := range rc.Interfaces {
				if rc.Name == rname && ifc.Name == dec.Out {
					outSw = ifc.Switch
					if ifc.L3Leg() {
						leg = ifc.PeerNamespace + ":" + ifc.PeerNIC
					}
				}
			}
		}
		if leg != "" { // a router leg: the L3 NIC at its end takes the packet
			t.Final = append(t.Final, leg)
			return t, nil
		}
		sw, port, ttl = outSw, rname+"."+dec.Out, ttl-1
		smac, dmac = dec.SrcMAC, dec.NeighborMAC
	}
	return t, nil
}

func (d *Daemon) traceMAC(given string, derive func() (frame.MAC, error)) (frame.MAC, error) {
	if given == "" {
		return derive()
	}
	return frame.ParseMAC(given)
}

func (t *Trace) impairStep(d *Daemon, target, dir string) {
	d.impairs.mu.Lock()
	e := d.impairs.ports[target]
	d.impairs.mu.Unlock()
	if e == nil {
		return
	}
	st := e.status(target)
	p := st.Out
	if dir == "in" {
		p = st.In
	}
	if p != "" {
		t.Steps = append(t.Steps, TraceStep{Where: "impair " + target, What: dir + ": " + p})
	}
}

// routerPort returns the router and interface attached to switch sw as port, if any.
func (d *Daemon) routerPort(sw, port string) (string, string, *router.Router) {
	for _, rc := range d.cfg.Routers {
		for _, ifc := range rc.Interfaces {
			if ifc.Switch == sw && rc.Name+"."+ifc.Name == port {
				if a := d.attachments["router:"+rc.Name]; a != nil {
					if rp, ok := a.closer.(*routerPorts); ok {
						return rc.Name, ifc.Name, rp.r
					}
				}
			}
		}
	}
	return "", "", nil
}

// portMAC is the MAC of the namespace NIC or router interface attached to sw as port.
func (d *Daemon) portMAC(sw, port string) (frame.MAC, error) {
	if nic := d.nicOnPort(sw, port); nic != nil {
		return nic.MAC, nil
	}
	for _, rc := range d.cfg.Routers {
		for _, ifc := range rc.Interfaces {
			if ifc.Switch == sw && rc.Name+"."+ifc.Name == port {
				return ifc.MAC, nil
			}
		}
	}
	return frame.MAC{}, fmt.Errorf("port %q of switch %q is not a namespace NIC or router interface: give the MAC", port, sw)
}

func (d *Daemon) nicOnPort(sw, port string) *config.NIC {
	for i := range d.cfg.Namespaces {
		ns := &d.cfg.Namespaces[i]
		for j := range ns.NICs {
			if n := &ns.NICs[j]; n.Switch == sw && ns.Name+"."+n.Name == port {
				return n
			}
		}
	}
	return nil
}

// nextHopMAC is the MAC the namespace on port would send dst to: dst's own when it is
// on the NIC's subnet, else its route's gateway's; the owner found on switch sw.
func (d *Daemon) nextHopMAC(sw, port string, dst netip.Addr) (frame.MAC, error) {
	nic := d.nicOnPort(sw, port)
	if nic == nil {
		return frame.MAC{}, fmt.Errorf("port %q of switch %q is not a namespace NIC: give the MAC", port, sw)
	}
	nh, ns := netip.Addr{}, strings.SplitN(port, ".", 2)[0]
	for _, p := range nic.Addresses {
		if p.Contains(dst) {
			nh = dst
		}
	}
	if !nh.IsValid() {
		best := -1
		for _, n := range d.cfg.Namespaces {
			for _, r := range n.Routes {
				if n.Name == ns && r.To.Contains(dst) && r.To.Bits() > best && r.Via.IsValid() {
					nh, best = r.Via, r.To.Bits()
				}
			}
		}
	}
	if !nh.IsValid() {
		return frame.MAC{}, fmt.Errorf("namespace %q has no route to %s", ns, dst)
	}
	for _, n := range d.cfg.Namespaces {
		for _, c := range n.NICs {
			for _, p := range c.Addresses {
				if c.Switch == sw && p.Addr() == nh {
					return c.MAC, nil
				}
			}
		}
	}
	for _, rc := range d.cfg.Routers {
		for _, ifc := range rc.Interfaces {
			for _, p := range ifc.Addresses {
				if ifc.Switch == sw && p.Addr() == nh {
					return ifc.MAC, nil
				}
			}
		}
	}
	return frame.MAC{}, fmt.Errorf("no host on switch %q has %s (the sender's ARP would go unanswered)", sw, nh)
}

// traceFrame builds the synthetic frame: Ethernet, IPv4 (checksum left 0: the lookup
// code does not read it) and the first bytes of the L4 header.
func traceFrame(dmac, smac frame.MAC, src, dst netip.Addr, proto byte, dport int, ttl byte) []byte {
	b := make([]byte, 14+20+20)
	copy(b[0:6], dmac[:])
	copy(b[6:12], smac[:])
	binary.BigEndian.PutUint16(b[12:14], 0x0800)
	ip := b[14:]
	ip[0], ip[8], ip[9] = 0x45, ttl, proto
	binary.BigEndian.PutUint16(ip[2:4], 40)
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	if proto == 1 {
		ip[20] = 8 // echo request
	} else {
		binary.BigEndian.PutUint16(ip[22:24], uint16(dport))
	}
	return b
}

func explainWords(e l2switch.Explanation) string {
	w := fmt.Sprintf("in %s, vlan %d", e.In, e.VLAN)
	if e.TaggedIn {
		w += " (tagged)"
	}
	switch {
	case e.Drop != "":
		return w + ", dropped: " + e.Drop
	case e.Known:
		return w + ", FDB hit -> " + strings.Join(e.Out, ", ")
	case len(e.Out) == 0:
		return w + ", flood: no other port carries the VLAN"
	}
	return w + ", unknown destination: flood -> " + strings.Join(e.Out, ", ")
}

func decisionWords(d router.Decision) string {
	w := "in " + d.In + ": " + d.Verdict
	if d.Route != nil {
		via := "connected"
		if d.Route.Via.IsValid() {
			via = "via " + d.Route.Via.String()
		}
		w += fmt.Sprintf(", route %s %s dev %s", d.Route.To, via, d.Route.Iface)
	}
	if d.Verdict == "forward" {
		if d.Resolved {
			w += fmt.Sprintf(", neighbour %s is %s", d.NextHop, d.NeighborMAC)
		} else {
			w += fmt.Sprintf(", neighbour %s unresolved: would ARP on %s and queue the packet", d.NextHop, d.Out)
		}
	}
	if d.ICMP != "" {
		w += ", would send ICMP " + d.ICMP
	}
	return w
}
