package daemon

import (
	"fmt"
	"io"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/portsec"
	l2switch "github.com/vnetd/vnetd/switch"
)

// RouterPorts is a running router as the daemon sees it: one port per configured
// interface, in config order, and Close.
type RouterPorts interface {
	Ports() []frame.Port
	io.Closer
}

// attachment is something outside namespaces that occupies switch ports: a TAP, a
// host interface, a VXLAN tunnel, a VM socket listener (its ports come and go with
// connections), a router or a gateway. It is rebuilt whole when its config or one of
// its switches changes.
type attachment struct {
	cfg    any
	ports  []portRef
	closer io.Closer
	// legs are a router's point-to-point legs to L3 NICs, joined to their NICs by
	// connectLegsLocked once the namespaces are up.
	legs []routerLeg
}

// routerLeg is a router interface whose other end is a namespace's L3 NIC, not a
// switch: the two are joined back to back like a pass-through pair.
type routerLeg struct {
	iface   string
	ns, nic string
	p       frame.Port
	stop    func() // the pumps, once joined
}

// attItem is one attachment a config asks for.
type attItem struct {
	kind *attKind
	key  string // the attachment's key in Daemon.attachments
	name string // as error messages name it
	cfg  any
}

// attKind is one kind of attachment: how a config lists it and how it is opened.
type attKind struct {
	noun string // error messages: NOUN "NAME": ...
	// exclusive: what open acquires can be held once (a TAP, a host interface, a
	// socket path, a UDP port), so a running one must be released before it is
	// opened again with a changed config.
	exclusive bool
	items     func(c *config.Config) []attItem
	// open acquires what the attachment needs outside the daemon (a device, a socket,
	// a router's goroutines) without touching anything running.
	open func(d *Daemon, cfg any) (*openAtt, error)
}

// openAtt is an attachment acquired by attKind.open but not yet on its switches.
type openAtt struct {
	closer io.Closer
	ports  []pendingPort
	legs   []routerLeg
	// attached runs once the ports are on their switches (a socket listener starts
	// handing its VMs' ports over then); nil for none.
	attached func(d *Daemon)
	up       []any // the "... up" log line: message, then attributes
}

// pendingPort is a switch port an attachment will occupy.
type pendingPort struct {
	sw string
	p  frame.Port
	pc l2switch.PortConfig
}

// nsPort is a namespace NIC's pending switch port with its port security policy.
type nsPort struct {
	pendingPort
	pol portsec.Policy
}

// attKinds lists the kinds of attachment in the order a config brings them up.
var attKinds = []attKind{
	{noun: "tap", exclusive: true, items: func(c *config.Config) (out []attItem) {
		for _, t := range c.TAPs {
			out = append(out, attItem{key: "tap:" + t.Name, name: t.Name, cfg: t})
		}
		return out
	}, open: openTAPAtt},
	{noun: "host_interface", exclusive: true, items: func(c *config.Config) (out []attItem) {
		for _, h := range c.HostInterfaces {
			out = append(out, attItem{key: "hostif:" + h.Name, name: h.Name, cfg: h})
		}
		return out
	}, open: openHostIfAtt},
	{noun: "vxlan", exclusive: true, items: func(c *config.Config) (out []attItem) {
		for _, x := range c.VXLANs {
			out = append(out, attItem{key: x.Key(), name: x.Name, cfg: x})
		}
		return out
	}, open: openVXLANAtt},
	{noun: "socket", exclusive: true, items: func(c *config.Config) (out []attItem) {
		for _, s := range c.Sockets {
			out = append(out, attItem{key: "socket:" + s.Path, name: s.Path, cfg: s})
		}
		return out
	}, open: openSocketAtt},
	{noun: "router", items: func(c *config.Config) (out []attItem) {
		for _, r := range c.Routers {
			out = append(out, attItem{key: "router:" + r.Name, name: r.Name, cfg: r})
		}
		return out
	}, open: openRouterAtt},
	{noun: "gateway", items: func(c *config.Config) (out []attItem) {
		for _, g := range c.Gateways {
			out = append(out, attItem{key: "gateway:" + g.Name, name: g.Name, cfg: g})
		}
		return out
	}, open: openGatewayAtt},
}

// attItems lists the attachments c asks for, in the order they come up.
func attItems(c *config.Config) []attItem {
	var out []attItem
	for i := range attKinds {
		k := &attKinds[i]
		for _, it := range k.items(c) {
			it.kind = k
			out = append(out, it)
		}
	}
	return out
}

func openTAPAtt(d *Daemon, cfg any) (*openAtt, error) {
	t := cfg.(config.TAP)
	if d.openTAP == nil {
		return nil, fmt.Errorf("tap support %w", ErrUnavailable)
	}
	p, err := d.openTAP(t, d.log.With("tap", t.Name))
	if err != nil {
		return nil, err
	}
	key := "tap:" + t.Name
	return &openAtt{closer: p, ports: []pendingPort{{t.Switch, p, l2switch.PortConfig{Name: key, VLAN: t.VLAN, Trunk: t.Trunk, Native: t.Native, MaxMACs: t.MaxMACs}}},
		up: []any{"tap up", "tap", t.Name, "switch", t.Switch}}, nil
}

func openHostIfAtt(d *Daemon, cfg any) (*openAtt, error) {
	h := cfg.(config.HostInterface)
	if d.openHostIf == nil {
		return nil, fmt.Errorf("host interface support %w", ErrUnavailable)
	}
	p, err := d.openHostIf(h, d.log.With("host_interface", h.Name))
	if err != nil {
		return nil, err
	}
	key := "hostif:" + h.Name
	return &openAtt{closer: p, ports: []pendingPort{{h.Switch, p, l2switch.PortConfig{Name: key, VLAN: h.VLAN, Trunk: h.Trunk, Native: h.Native, MaxMACs: h.MaxMACs}}},
		up: []any{"host interface up", "host_interface", h.Name, "switch", h.Switch}}, nil
}

func openRouterAtt(d *Daemon, cfg any) (*openAtt, error) {
	r := cfg.(config.Router)
	if d.newRouter == nil {
		return nil, fmt.Errorf("router support %w", ErrUnavailable)
	}
	rp, err := d.newRouter(r, d.log)
	if err != nil {
		return nil, err
	}
	ports := rp.Ports()
	if len(ports) != len(r.Interfaces) {
		rp.Close()
		return nil, fmt.Errorf("%d ports for %d interfaces", len(ports), len(r.Interfaces))
	}
	o := &openAtt{closer: rp, up: []any{"router up", "router", r.Name, "interfaces", len(r.Interfaces)}}
	for i, ifc := range r.Interfaces {
		if ifc.L3Leg() {
			o.legs = append(o.legs, routerLeg{iface: ifc.Name, ns: ifc.PeerNamespace, nic: ifc.PeerNIC, p: ports[i]})
			continue
		}
		o.ports = append(o.ports, pendingPort{ifc.Switch, ports[i], l2switch.PortConfig{Name: r.Name + "." + ifc.Name, VLAN: ifc.VLAN}})
	}
	return o, nil
}

func attSwitches(cfg any) []string {
	switch c := cfg.(type) {
	case config.TAP:
		return []string{c.Switch}
	case config.HostInterface:
		return []string{c.Switch}
	case config.Socket:
		return []string{c.Switch}
	case config.Gateway:
		return []string{c.Switch}
	case config.VXLAN:
		return []string{c.Switch}
	case config.Router:
		var out []string
		for _, i := range c.Interfaces {
			if !i.L3Leg() {
				out = append(out, i.Switch)
			}
		}
		return out
	}
	return nil
}

func (d *Daemon) removeAttachmentLocked(key string) {
	a := d.attachments[key]
	for _, l := range a.legs {
		if l.stop != nil {
			l.stop()
		}
	}
	for _, p := range a.ports {
		if sw := d.switches[p.sw]; sw != nil {
			sw.sw.RemovePort(p.port)
		}
	}
	if a.closer != nil {
		a.closer.Close()
	}
	delete(d.attachments, key)
	d.log.Info("removed", "what", key)
}

// attachLocked puts an opened attachment on its switches and records it as key. A
// port a switch refuses is logged and closed (with the plan's checks it cannot
// happen); the error says which.
func (d *Daemon) attachLocked(it attItem, o *openAtt) error {
	a := &attachment{cfg: it.cfg, closer: o.closer, legs: o.legs}
	d.attachments[it.key] = a
	var err error
	for _, pp := range o.ports {
		if e := d.attach(a, pp.sw, pp.p, pp.pc); e != nil && err == nil {
			err = fmt.Errorf("%s %q: %w", it.kind.noun, it.name, e)
		}
	}
	if o.attached != nil {
		o.attached(d)
	}
	if err != nil {
		d.removeAttachmentLocked(it.key)
		return err
	}
	d.log.Info(o.up[0].(string), o.up[1:]...)
	return nil
}

func (d *Daemon) attach(a *attachment, sw string, p frame.Port, pc l2switch.PortConfig) error {
	e := d.switches[sw]
	if e == nil {
		p.Close()
		return fmt.Errorf("switch %q is not running", sw)
	}
	if err := e.sw.AddPort(d.wrapSwitchPort(sw, pc.Name, p, attachPolicy(a.cfg, pc.Name)), pc); err != nil {
		d.impairs.forget(sw + "/" + pc.Name)
		d.forgetLink(sw + "/" + pc.Name)
		return fmt.Errorf("attach %s to %s: %w", pc.Name, sw, err)
	}
	a.ports = append(a.ports, portRef{sw, pc.Name})
	return nil
}
