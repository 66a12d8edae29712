package daemon

import (
	"fmt"
	"net/netip"
	"reflect"
	"sort"

	"github.com/vnetd/vnetd/config"
	l2switch "github.com/vnetd/vnetd/switch"
	"github.com/vnetd/vnetd/vxlan"
)

// VXLANStatus is one [[vxlan]] tunnel as `vnetd vxlan SWITCH` shows it.
type VXLANStatus struct {
	Name        string               `json:"name"`
	Switch      string               `json:"switch"`
	Port        string               `json:"port"`
	Local       netip.AddrPort       `json:"local"`
	VNI         uint32               `json:"vni"`
	DstPort     uint16               `json:"dstport"`
	MTU         int                  `json:"mtu"`
	UnderlayMTU int                  `json:"underlay_mtu"`
	SourcePorts []uint16             `json:"source_ports"`
	Stats       vxlan.Stats          `json:"stats"`
	Remotes     []vxlan.RemoteStatus `json:"remotes"`
	MACs        []vxlan.MACEntry     `json:"macs"`
}

func openVXLAN(x config.VXLAN, d *Daemon) (*vxlan.Port, error) {
	return vxlan.Open(vxlan.Options{
		Name: x.Key(), Local: x.Local, VNI: x.VNI, DstPort: x.DstPort, Remotes: x.Remotes,
		UnderlayMTU: x.UnderlayMTU, MTU: x.MTU, MaxMACs: x.MaxMACs, MACAging: x.MACAging,
		SourcePorts: x.SourcePorts, Logger: d.log.With("vxlan", x.Name),
	})
}

func (d *Daemon) addVXLANsLocked(c *config.Config) error {
	for _, x := range c.VXLANs {
		key := x.Key()
		if _, ok := d.attachments[key]; ok {
			continue
		}
		p, err := openVXLAN(x, d)
		if err != nil {
			return fmt.Errorf("vxlan %q: %w", x.Name, err)
		}
		a := &attachment{cfg: x, closer: p}
		d.attachments[key] = a
		if err := d.attach(a, x.Switch, key, p, l2switch.PortConfig{Name: key, VLAN: x.VLAN, MaxMACs: x.MaxMACs}); err != nil {
			d.removeAttachmentLocked(key)
			return fmt.Errorf("vxlan %q: %w", x.Name, err)
		}
		d.log.Info("vxlan up", "vxlan", x.Name, "switch", x.Switch, "local", x.Local, "vni", x.VNI, "remotes", len(x.Remotes))
	}
	return nil
}

// updateVXLANLocked applies a changed [[vxlan]] whose only change is its remotes to
// the running tunnel (SetRemotes), so a reload disturbs neither it nor other ports.
// It reports whether it did.
func (d *Daemon) updateVXLANLocked(a *attachment, want any) bool {
	cur, ok1 := a.cfg.(config.VXLAN)
	next, ok2 := want.(config.VXLAN)
	p, ok3 := a.closer.(*vxlan.Port)
	if !ok1 || !ok2 || !ok3 {
		return false
	}
	cmp := next
	cmp.Remotes = cur.Remotes
	if !reflect.DeepEqual(cmp, cur) {
		return false
	}
	if err := p.SetRemotes(next.Remotes); err != nil {
		return false
	}
	a.cfg = next
	d.log.Info("vxlan remotes updated", "vxlan", next.Name, "remotes", len(next.Remotes))
	return true
}

// VXLANs lists the tunnels on switch sw, or every tunnel when sw is "".
func (d *Daemon) VXLANs(sw string) ([]VXLANStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if sw != "" && d.switches[sw] == nil {
		return nil, fmt.Errorf("no switch %q", sw)
	}
	out := []VXLANStatus{}
	for _, a := range d.attachments {
		x, ok := a.cfg.(config.VXLAN)
		p, ok2 := a.closer.(*vxlan.Port)
		if !ok || !ok2 || (sw != "" && x.Switch != sw) {
			continue
		}
		rs := p.Remotes()
		if rs == nil {
			rs = []vxlan.RemoteStatus{}
		}
		out = append(out, VXLANStatus{
			Name: x.Name, Switch: x.Switch, Port: x.Key(), Local: p.LocalAddr(), VNI: x.VNI, DstPort: x.DstPort,
			MTU: p.Info().MTU, UnderlayMTU: x.UnderlayMTU, SourcePorts: p.SourcePorts(), Stats: p.Stats(),
			Remotes: rs, MACs: p.MACs(),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
