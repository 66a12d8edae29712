package daemon

import (
	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/gateway"
	l2switch "github.com/vnetd/vnetd/switch"
)

// GatewayStatus is one gateway with its counters.
type GatewayStatus struct {
	Name   string        `json:"name"`
	Switch string        `json:"switch"`
	Stats  gateway.Stats `json:"stats"`
}

// openGatewayAtt builds a gateway: an attachment ("gateway:NAME") with one switch
// port, "NAME.SWITCH".
func openGatewayAtt(d *Daemon, cfg any) (*openAtt, error) {
	gc := cfg.(config.Gateway)
	g, err := gateway.New(gateway.Options{Name: gc.Name, NIC: gc.Switch, Logger: d.log, MAC: gc.MAC, MTU: gc.MTU,
		Addresses: gc.Addresses, Host: gc.Host, Host6: gc.Host6, Allow: gc.Allow, Deny: gc.Deny,
		MaxFlows: gc.MaxFlows, UDPIdleTimeout: gc.UDPIdleTimeout})
	if err != nil {
		return nil, err
	}
	name := gc.Name + "." + gc.Switch
	return &openAtt{closer: g, ports: []pendingPort{{gc.Switch, g.Port(), l2switch.PortConfig{Name: name, VLAN: gc.VLAN}}},
		up: []any{"gateway up", "gateway", gc.Name, "switch", gc.Switch}}, nil
}

// gatewayStatusLocked lists the running gateways in config order.
func (d *Daemon) gatewayStatusLocked() []GatewayStatus {
	out := []GatewayStatus{}
	for _, gc := range d.cfg.Gateways {
		if a := d.attachments["gateway:"+gc.Name]; a != nil {
			if g, ok := a.closer.(*gateway.Gateway); ok {
				out = append(out, GatewayStatus{Name: gc.Name, Switch: gc.Switch, Stats: g.Stats()})
			}
		}
	}
	return out
}
