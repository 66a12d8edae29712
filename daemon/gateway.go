package daemon

import (
	"fmt"

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

// addGatewaysLocked starts the gateways not running yet; each is an attachment
// ("gateway:NAME") with one switch port, "NAME.SWITCH".
func (d *Daemon) addGatewaysLocked(c *config.Config) error {
	for _, gc := range c.Gateways {
		key := "gateway:" + gc.Name
		if _, ok := d.attachments[key]; ok {
			continue
		}
		g, err := gateway.New(gateway.Options{Name: gc.Name, NIC: gc.Switch, Logger: d.log, MAC: gc.MAC, MTU: gc.MTU,
			Addresses: gc.Addresses, Host: gc.Host, Host6: gc.Host6, Allow: gc.Allow, Deny: gc.Deny,
			MaxFlows: gc.MaxFlows, UDPIdleTimeout: gc.UDPIdleTimeout})
		if err != nil {
			return err
		}
		a := &attachment{cfg: gc, closer: g}
		d.attachments[key] = a
		name := gc.Name + "." + gc.Switch
		if err := d.attach(a, gc.Switch, name, g.Port(), l2switch.PortConfig{Name: name, VLAN: gc.VLAN}); err != nil {
			d.removeAttachmentLocked(key)
			return fmt.Errorf("gateway %q: %w", gc.Name, err)
		}
		d.log.Info("gateway up", "gateway", gc.Name, "switch", gc.Switch)
	}
	return nil
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
