package daemon

import (
	"fmt"
	"sort"
	"strings"
)

// Topology is the lab as a graph: what the web page draws and `vnetd graph` prints.
// Every switch port is a link between its switch and the node that owns the port; a
// pass-through pair is a link between two namespaces.
type Topology struct {
	Nodes []TopoNode `json:"nodes"`
	Links []TopoLink `json:"links"`
	// Aggregated is set when namespaces were folded into one node per switch because
	// the lab has more than the aggregation threshold.
	Aggregated bool `json:"aggregated,omitempty"`
}

// TopoNode is one switch, namespace, router, TAP, host interface, VM socket, gateway,
// tunnel, or (aggregated) group of namespaces.
type TopoNode struct {
	// ID is unique in the graph: "KIND:NAME", e.g. "switch:lan0", "ns:alpha".
	ID   string `json:"id"`
	Kind string `json:"kind"` // switch, ns, router, tap, hostif, vm, gateway, vxlan, group, port
	Name string `json:"name"`
	// Detail is a short line to show beside the name: addresses, a member count.
	Detail string `json:"detail,omitempty"`
}

// TopoLink is one switch port (or pair) with the counters its rates are computed from.
type TopoLink struct {
	ID     string `json:"id"` // "SWITCH/PORT", or "pair:NS.NIC-NS.NIC"
	From   string `json:"from"`
	To     string `json:"to"`
	Switch string `json:"switch,omitempty"` // set for switch ports: capture with Switch and Port
	Port   string `json:"port,omitempty"`
	Up     bool   `json:"up"`
	// Frames, bytes and drops summed over both directions (and over the members of an
	// aggregated group).
	Frames uint64 `json:"frames"`
	Bytes  uint64 `json:"bytes"`
	Drops  uint64 `json:"drops"`
	Ports  int    `json:"ports,omitempty"` // links folded into this one (aggregated)
}

// Topology returns the lab's graph. Namespaces are folded into one group node per
// switch when there are more than aggregateOver of them (0: never).
func (d *Daemon) Topology(aggregateOver int) Topology {
	st := d.Status()
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	t := Topology{Nodes: []TopoNode{}, Links: []TopoLink{}}
	aggregate := aggregateOver > 0 && len(st.Namespaces) > aggregateOver
	t.Aggregated = aggregate

	// Who owns which port: namespace NICs and router legs by their "OWNER.NIC" name.
	owner := map[string]string{}
	seen := map[string]bool{}
	add := func(n TopoNode) {
		if !seen[n.ID] {
			seen[n.ID] = true
			t.Nodes = append(t.Nodes, n)
		}
	}
	for _, n := range st.Namespaces {
		var addrs []string
		for _, i := range n.Interfaces {
			if i.Name == "lo" {
				continue
			}
			owner[n.Name+"."+i.Name] = "ns:" + n.Name
			for _, a := range i.Addresses {
				if a.Addr().Is4() && a.Bits() == 32 && a.Addr().As4() == [4]byte{255, 255, 255, 255} {
					continue
				}
				addrs = append(addrs, a.String())
			}
		}
		if !aggregate {
			add(TopoNode{ID: "ns:" + n.Name, Kind: "ns", Name: n.Name, Detail: strings.Join(addrs, " ")})
		}
	}
	for _, r := range st.Routers {
		for _, i := range r.Interfaces {
			owner[r.Name+"."+i.Name] = "router:" + r.Name
		}
		add(TopoNode{ID: "router:" + r.Name, Kind: "router", Name: r.Name, Detail: fmt.Sprintf("%d interfaces", len(r.Interfaces))})
	}
	groups := map[string]*TopoLink{}
	for _, s := range st.Switches {
		add(TopoNode{ID: "switch:" + s.Name, Kind: "switch", Name: s.Name, Detail: fmt.Sprintf("%d ports, %d MACs", len(s.Ports), s.Stats.FDBSize)})
		for _, p := range s.Ports {
			var drops uint64
			for _, n := range p.Drops {
				drops += n
			}
			l := TopoLink{ID: s.Name + "/" + p.Name, From: "switch:" + s.Name, Switch: s.Name, Port: p.Name, Up: p.Up,
				Frames: p.Counters.RxFrames + p.Counters.TxFrames, Bytes: p.Counters.RxBytes + p.Counters.TxBytes, Drops: drops}
			id, isNS := owner[p.Name], false
			if id != "" {
				isNS = strings.HasPrefix(id, "ns:")
			} else {
				id = portOwner(p.Name)
				kind, name, _ := strings.Cut(id, ":")
				add(TopoNode{ID: id, Kind: kind, Name: name})
			}
			if isNS && aggregate {
				g := groups[s.Name]
				if g == nil {
					g = &TopoLink{ID: s.Name + "/*", From: "switch:" + s.Name, To: "group:" + s.Name, Up: true}
					groups[s.Name] = g
				}
				g.Frames += l.Frames
				g.Bytes += l.Bytes
				g.Drops += l.Drops
				g.Ports++
				g.Up = g.Up && l.Up
				continue
			}
			l.To = id
			t.Links = append(t.Links, l)
		}
	}
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		g := groups[n]
		add(TopoNode{ID: g.To, Kind: "group", Name: fmt.Sprintf("%d namespaces on %s", g.Ports, n)})
		t.Links = append(t.Links, *g)
	}
	// Pass-through pairs, from the config (they have no switch port to count).
	if cfg != nil && !aggregate {
		for _, n := range cfg.Namespaces {
			for _, nic := range n.NICs {
				if nic.PeerNamespace == "" || n.Name+"."+nic.Name > nic.PeerNamespace+"."+nic.PeerNIC {
					continue
				}
				if !seen["ns:"+n.Name] || !seen["ns:"+nic.PeerNamespace] {
					continue
				}
				t.Links = append(t.Links, TopoLink{ID: "pair:" + n.Name + "." + nic.Name + "-" + nic.PeerNamespace + "." + nic.PeerNIC,
					From: "ns:" + n.Name, To: "ns:" + nic.PeerNamespace, Up: true})
			}
		}
		// Router legs to L3 NICs, also without a switch port.
		for _, r := range cfg.Routers {
			for _, ifc := range r.Interfaces {
				if !ifc.L3Leg() || !seen["router:"+r.Name] || !seen["ns:"+ifc.PeerNamespace] {
					continue
				}
				t.Links = append(t.Links, TopoLink{ID: "leg:" + r.Name + "." + ifc.Name + "-" + ifc.PeerNamespace + "." + ifc.PeerNIC,
					From: "router:" + r.Name, To: "ns:" + ifc.PeerNamespace, Up: true})
			}
		}
	}
	return t
}

// portOwner names the node behind a port that is not a namespace NIC or a router leg,
// from the port's name: "tap:vnet0" is a TAP, "hostif:eth1" a host interface,
// "sock:/path#3" a VM on a socket, and a "KIND:NAME" prefix is taken as it is.
func portOwner(port string) string {
	kind, name, ok := strings.Cut(port, ":")
	if !ok {
		return "port:" + port
	}
	switch kind {
	case "sock":
		return "vm:" + name
	case "gw":
		return "gateway:" + name
	}
	return kind + ":" + name
}

// DOT renders the topology for Graphviz.
func (t Topology) DOT() string {
	var b strings.Builder
	b.WriteString("graph vnetd {\n  node [fontname=\"sans-serif\"];\n")
	shape := map[string]string{"switch": "box", "router": "diamond", "ns": "ellipse", "group": "folder"}
	for _, n := range t.Nodes {
		s := shape[n.Kind]
		if s == "" {
			s = "hexagon"
		}
		label := n.Name
		if n.Detail != "" {
			label += "\\n" + n.Detail
		}
		fmt.Fprintf(&b, "  %q [shape=%s, label=%q];\n", n.ID, s, label)
	}
	for _, l := range t.Links {
		style := ""
		if !l.Up {
			style = ", style=dashed"
		}
		fmt.Fprintf(&b, "  %q -- %q [label=%q%s];\n", l.From, l.To, linkLabel(l), style)
	}
	b.WriteString("}\n")
	return b.String()
}

// Mermaid renders the topology as a Mermaid flowchart.
func (t Topology) Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	id := map[string]string{}
	for i, n := range t.Nodes {
		id[n.ID] = fmt.Sprintf("n%d", i)
		label := strings.ReplaceAll(n.Name, `"`, "'")
		switch n.Kind {
		case "switch":
			fmt.Fprintf(&b, "  %s[\"%s\"]\n", id[n.ID], label)
		case "router":
			fmt.Fprintf(&b, "  %s{\"%s\"}\n", id[n.ID], label)
		default:
			fmt.Fprintf(&b, "  %s([\"%s\"])\n", id[n.ID], label)
		}
	}
	for _, l := range t.Links {
		arrow := "---"
		if !l.Up {
			arrow = "-.-"
		}
		fmt.Fprintf(&b, "  %s %s|\"%s\"| %s\n", id[l.From], arrow, strings.ReplaceAll(linkLabel(l), `"`, "'"), id[l.To])
	}
	return b.String()
}

func linkLabel(l TopoLink) string {
	if l.Port != "" {
		return l.Port
	}
	if l.Ports > 0 {
		return fmt.Sprintf("%d ports", l.Ports)
	}
	return strings.TrimPrefix(l.ID, "pair:")
}
