package daemon

import (
	"fmt"
	"io"

	"reflect"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/frame"
	l2switch "github.com/vnetd/vnetd/switch"
)

// RouterPorts is a running router as the daemon sees it: one port per configured
// interface, in config order, and Close.
type RouterPorts interface {
	Ports() []frame.Port
	io.Closer
}

// attachment is something outside namespaces that occupies switch ports: a TAP, a
// host interface, a VM socket listener (its ports come and go with connections) or a
// router. It is rebuilt whole when its config or one of its switches changes.
type attachment struct {
	cfg    any
	ports  []portRef
	closer io.Closer
}

func attKeys(c *config.Config) map[string]any {
	m := map[string]any{}
	for _, t := range c.TAPs {
		m["tap:"+t.Name] = t
	}
	for _, r := range c.Routers {
		m["router:"+r.Name] = r
	}
	for _, h := range c.HostInterfaces {
		m["hostif:"+h.Name] = h
	}
	for _, s := range c.Sockets {
		m["socket:"+s.Path] = s
	}
	for _, g := range c.Gateways {
		m["gateway:"+g.Name] = g
	}
	for _, x := range c.VXLANs {
		m[x.Key()] = x
	}
	return m
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
			out = append(out, i.Switch)
		}
		return out
	}
	return nil
}

// removeAttachmentsLocked tears down attachments that are gone, changed, or sit on a
// switch about to be rebuilt.
func (d *Daemon) removeAttachmentsLocked(want map[string]any, rebuildSw map[string]bool) {
	for key, a := range d.attachments {
		w, ok := want[key]
		drop := !ok || !reflect.DeepEqual(w, a.cfg)
		for _, s := range attSwitches(a.cfg) {
			drop = drop || rebuildSw[s]
		}
		if drop && ok && !rebuildSwitches(a.cfg, rebuildSw) && d.updateVXLANLocked(a, w) {
			continue
		}
		if drop {
			d.removeAttachmentLocked(key)
		}
	}
}

// rebuildSwitches reports whether an attachment sits on a switch about to be rebuilt.
func rebuildSwitches(cfg any, rebuildSw map[string]bool) bool {
	for _, s := range attSwitches(cfg) {
		if rebuildSw[s] {
			return true
		}
	}
	return false
}

func (d *Daemon) removeAttachmentLocked(key string) {
	a := d.attachments[key]
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

func (d *Daemon) addAttachmentsLocked(c *config.Config) error {
	for _, t := range c.TAPs {
		key := "tap:" + t.Name
		if _, ok := d.attachments[key]; ok {
			continue
		}
		if d.openTAP == nil {
			return fmt.Errorf("tap %q: tap support %w", t.Name, ErrUnavailable)
		}
		p, err := d.openTAP(t, d.log.With("tap", t.Name))
		if err != nil {
			return fmt.Errorf("tap %q: %w", t.Name, err)
		}
		a := &attachment{cfg: t, closer: p}
		d.attachments[key] = a
		if err := d.attach(a, t.Switch, key, p, l2switch.PortConfig{Name: key, VLAN: t.VLAN, Trunk: t.Trunk, MaxMACs: t.MaxMACs}); err != nil {
			d.removeAttachmentLocked(key)
			return fmt.Errorf("tap %q: %w", t.Name, err)
		}
		d.log.Info("tap up", "tap", t.Name, "switch", t.Switch)
	}
	for _, h := range c.HostInterfaces {
		key := "hostif:" + h.Name
		if _, ok := d.attachments[key]; ok {
			continue
		}
		if d.openHostIf == nil {
			return fmt.Errorf("host_interface %q: host interface support %w", h.Name, ErrUnavailable)
		}
		p, err := d.openHostIf(h, d.log.With("host_interface", h.Name))
		if err != nil {
			return fmt.Errorf("host_interface %q: %w", h.Name, err)
		}
		a := &attachment{cfg: h, closer: p}
		d.attachments[key] = a
		if err := d.attach(a, h.Switch, key, p, l2switch.PortConfig{Name: key, VLAN: h.VLAN, MaxMACs: h.MaxMACs}); err != nil {
			d.removeAttachmentLocked(key)
			return fmt.Errorf("host_interface %q: %w", h.Name, err)
		}
		d.log.Info("host interface up", "host_interface", h.Name, "switch", h.Switch)
	}
	if err := d.addVXLANsLocked(c); err != nil {
		return err
	}
	for _, s := range c.Sockets {
		key := "socket:" + s.Path
		if _, ok := d.attachments[key]; ok {
			continue
		}
		if err := d.listenSocket(key, s); err != nil {
			return fmt.Errorf("socket %q: %w", s.Path, err)
		}
	}
	for _, r := range c.Routers {
		key := "router:" + r.Name
		if _, ok := d.attachments[key]; ok {
			continue
		}
		if d.newRouter == nil {
			return fmt.Errorf("router %q: router support %w", r.Name, ErrUnavailable)
		}
		rp, err := d.newRouter(r, d.log)
		if err != nil {
			return fmt.Errorf("router %q: %w", r.Name, err)
		}
		a := &attachment{cfg: r, closer: rp}
		d.attachments[key] = a
		ports := rp.Ports()
		if len(ports) != len(r.Interfaces) {
			d.removeAttachmentLocked(key)
			return fmt.Errorf("router %q: %d ports for %d interfaces", r.Name, len(ports), len(r.Interfaces))
		}
		for i, ifc := range r.Interfaces {
			name := r.Name + "." + ifc.Name
			if err := d.attach(a, ifc.Switch, name, ports[i], l2switch.PortConfig{Name: name, VLAN: ifc.VLAN}); err != nil {
				d.removeAttachmentLocked(key)
				return fmt.Errorf("router %q: %w", r.Name, err)
			}
		}
		d.log.Info("router up", "router", r.Name, "interfaces", len(r.Interfaces))
	}
	return d.addGatewaysLocked(c)
}

func (d *Daemon) attach(a *attachment, sw, name string, p frame.Port, pc l2switch.PortConfig) error {
	e := d.switches[sw]
	if e == nil {
		return fmt.Errorf("switch %q is not running", sw)
	}
	if err := e.sw.AddPort(d.wrapSwitchPort(sw, pc.Name, p), pc); err != nil {
		d.impairs.forget(sw + "/" + pc.Name)
		return fmt.Errorf("attach %s to %s: %w", name, sw, err)
	}
	a.ports = append(a.ports, portRef{sw, name})
	return nil
}
