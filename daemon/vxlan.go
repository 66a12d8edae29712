package daemon

import (
	"fmt"
	"net/netip"
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

func openVXLANAtt(d *Daemon, cfg any) (*openAtt, error) {
	x := cfg.(config.VXLAN)
	p, err := openVXLAN(x, d)
	if err != nil {
		return nil, err
	}
	return &openAtt{closer: p, ports: []pendingPort{{x.Switch, p, l2switch.PortConfig{Name: x.Key(), VLAN: x.VLAN, Trunk: x.Trunk, Native: x.Native, MaxMACs: x.MaxMACs}}},
		up: []any{"vxlan up", "vxlan", x.Name, "switch", x.Switch, "local", x.Local, "vni", x.VNI, "remotes", len(x.Remotes)}}, nil
}

// updateVXLANLocked applies a changed [[vxlan]] whose only change is its remotes
// (planChanges' remotesOnly) to the running tunnel, so a reload disturbs neither it
// nor other ports.
func (d *Daemon) updateVXLANLocked(next config.VXLAN) error {
	a := d.attachments[next.Key()]
	p, ok := a.closer.(*vxlan.Port)
	if !ok {
		return fmt.Errorf("vxlan %q: not a tunnel", next.Name)
	}
	if err := p.SetRemotes(next.Remotes); err != nil {
		return err
	}
	a.cfg = next
	d.log.Info("vxlan remotes updated", "vxlan", next.Name, "remotes", len(next.Remotes))
	return nil
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
