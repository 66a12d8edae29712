package daemon

import (
	"fmt"
	"log/slog"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/router"
)

// routerPorts adapts a *router.Router to RouterPorts.
type routerPorts struct {
	r     *router.Router
	ports []frame.Port
}

func (rp *routerPorts) Ports() []frame.Port { return rp.ports }
func (rp *routerPorts) Close() error        { return rp.r.Close() }

// NewRouter builds a package router Router from its config section; it is the
// default for Options.NewRouter.
func NewRouter(c config.Router, log *slog.Logger) (RouterPorts, error) {
	r := router.New(router.Options{Name: c.Name, Logger: log})
	rp := &routerPorts{r: r}
	for _, i := range c.Interfaces {
		ic := router.IfaceConfig{Name: i.Name, MAC: i.MAC, MTU: i.MTU, VLAN: i.VLAN, Addresses: i.Addresses, Advertise: i.RA, ProxyARP: i.ProxyARP}
		if i.L3Leg() {
			ic.L3Peer = &router.L3Peer{MAC: i.PeerMAC, Addresses: i.PeerAddresses}
		}
		p, err := r.AddInterface(ic)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("interface %s: %w", i.Name, err)
		}
		rp.ports = append(rp.ports, p)
	}
	for _, rt := range c.Routes {
		if err := r.AddRoute(router.Route{To: rt.To, Via: rt.Via}); err != nil {
			r.Close()
			return nil, fmt.Errorf("route %s via %s: %w", rt.To, rt.Via, err)
		}
	}
	return rp, nil
}
