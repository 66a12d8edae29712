package daemon

import (
	"fmt"

	"github.com/vnetd/vnetd/router"
)

// RouterStatus is one router as status and `vnetd router NAME` show it.
type RouterStatus struct {
	Name string `json:"name"`
	// Interfaces are the router's legs with their addresses and counters; Up and
	// Switch come from the switch port each leg occupies.
	Interfaces []RouterInterface `json:"interfaces"`
	// Routes and Neighbors are filled by Router only (status leaves them out).
	Routes    []router.RouteInfo    `json:"routes,omitempty"`
	Neighbors []router.NeighborInfo `json:"neighbors,omitempty"`
}

// RouterInterface is a router leg: the router's own view plus its switch port's state.
type RouterInterface struct {
	router.IfaceInfo
	Switch string `json:"switch"`
	// Peer is, for a leg of Kind "l3", the L3 NIC at its other end ("NS:NIC");
	// Switch is then "" and Up says whether the two are joined.
	Peer string `json:"peer,omitempty"`
	Up   bool   `json:"up"`
}

// routerIntrospection is what a RouterPorts may offer for listing; package router's
// does, tests' stand-ins need not.
type routerIntrospection interface {
	Interfaces() []router.IfaceInfo
	Routes() []router.RouteInfo
	Neighbors() []router.NeighborInfo
}

func (rp *routerPorts) Interfaces() []router.IfaceInfo   { return rp.r.Interfaces() }
func (rp *routerPorts) Routes() []router.RouteInfo       { return rp.r.Routes() }
func (rp *routerPorts) Neighbors() []router.NeighborInfo { return rp.r.Neighbors() }

// Router lists one router's interfaces, routes and neighbour cache.
func (d *Daemon) Router(name string) (RouterStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rs, ri, ok := d.routerStatusLocked(name)
	if !ok {
		return RouterStatus{}, fmt.Errorf("no router %q", name)
	}
	if ri != nil {
		rs.Routes = ri.Routes()
		rs.Neighbors = ri.Neighbors()
	}
	if rs.Routes == nil {
		rs.Routes = []router.RouteInfo{}
	}
	if rs.Neighbors == nil {
		rs.Neighbors = []router.NeighborInfo{}
	}
	return rs, nil
}

// routerStatusLocked is a running router's name and interfaces; ok is false when no
// router of that name runs. d.mu must be held.
func (d *Daemon) routerStatusLocked(name string) (RouterStatus, routerIntrospection, bool) {
	a := d.attachments["router:"+name]
	if a == nil {
		return RouterStatus{}, nil, false
	}
	rs := RouterStatus{Name: name, Interfaces: []RouterInterface{}}
	ri, _ := a.closer.(routerIntrospection)
	if ri == nil {
		return rs, nil, true
	}
	for _, info := range ri.Interfaces() {
		leg := RouterInterface{IfaceInfo: info}
		for _, l := range a.legs {
			if l.iface == info.Name {
				leg.Peer, leg.Up = l.ns+":"+l.nic, l.stop != nil
			}
		}
		portName := name + "." + info.Name
		for _, p := range a.ports {
			if p.port != portName {
				continue
			}
			leg.Switch = p.sw
			if e := d.switches[p.sw]; e != nil {
				for _, ps := range e.sw.Ports() {
					if ps.Name == portName {
						leg.Up = ps.Up
					}
				}
			}
		}
		rs.Interfaces = append(rs.Interfaces, leg)
	}
	return rs, ri, true
}
