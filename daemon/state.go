package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/forward"
	"github.com/vnetd/vnetd/nsstack"
	"github.com/vnetd/vnetd/service"
	l2switch "github.com/vnetd/vnetd/switch"
)

// Status is the whole lab at a glance, what `vnetd status` prints.
type Status struct {
	Switches   []SwitchStatus    `json:"switches"`
	Namespaces []NamespaceStatus `json:"namespaces"`
	Routers    []RouterStatus    `json:"routers"`
	Forwards   []ForwardStatus   `json:"forwards"`
	Gateways   []GatewayStatus   `json:"gateways"`
	// Sockets are the VM socket listeners with their caps and counters, and the
	// drops no VM port counts.
	Sockets []SocketStatus `json:"sockets"`
	// Impairments are the ports with an impairment set or counted.
	Impairments []ImpairStatus `json:"impairments"`
	// Links are every switch port and pair end's link state and port security.
	Links []LinkStatus `json:"links"`
	// API is what the control API refused at its caps.
	API APIStatus `json:"api"`
}

// SwitchStatus is one switch with its ports.
type SwitchStatus struct {
	Name  string                `json:"name"`
	Stats l2switch.Stats        `json:"stats"`
	Ports []l2switch.PortStatus `json:"ports"`
}

// NamespaceStatus is one namespace's interfaces and services.
type NamespaceStatus struct {
	Name string `json:"name"`
	// Origin is OriginConfig, or OriginImported for one `vnetd import` added (a
	// reload keeps it while it still fits the file; see docs/daemon.md).
	Origin     string              `json:"origin"`
	Interfaces []nsstack.Interface `json:"interfaces"`
	Services   []string            `json:"services"`
	DNS        []DNSStatus         `json:"dns,omitempty"`
	Iperf3     []IperfStatus       `json:"iperf3,omitempty"`
	// Echo is each UDP echo service's counters: answered, and refused as a
	// reflector's or over the per-source rate.
	Echo []service.Stats `json:"echo,omitempty"`
	DHCP []DHCPStatus    `json:"dhcp,omitempty"`
}

// ForwardStatus is one forward with its counters.
type ForwardStatus struct {
	Name      string        `json:"name"`
	Origin    string        `json:"origin"` // OriginConfig or OriginRuntime
	Namespace string        `json:"namespace"`
	Target    string        `json:"target"`
	Stats     forward.Stats `json:"stats"`
}

// Status snapshots the lab.
func (d *Daemon) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := Status{Switches: []SwitchStatus{}, Namespaces: []NamespaceStatus{}, Routers: []RouterStatus{}, Forwards: []ForwardStatus{}, Gateways: []GatewayStatus{}, Sockets: []SocketStatus{}, Impairments: d.Impairments(), Links: d.Links()}
	st.API = d.APIStatus()
	if d.cfg == nil {
		return st
	}
	for _, s := range d.cfg.Switches {
		if e := d.switches[s.Name]; e != nil {
			ports := e.sw.Ports()
			sort.Slice(ports, func(i, j int) bool { return ports[i].Name < ports[j].Name })
			st.Switches = append(st.Switches, SwitchStatus{Name: s.Name, Stats: e.sw.Stats(), Ports: ports})
		}
	}
	for _, n := range d.cfg.Namespaces {
		if e := d.namespaces[n.Name]; e != nil {
			ns := NamespaceStatus{Name: n.Name, Origin: nsOrigin(d.cfg, n.Name), Interfaces: e.ns.Interfaces(), Services: []string{}, DNS: e.dnsStatus(), Iperf3: e.iperfStatus(), DHCP: e.dhcpStatus()}
			for _, s := range n.Services {
				ns.Services = append(ns.Services, ServiceString(s))
			}
			for _, c := range e.services {
				if svc, ok := c.(*service.Service); ok && svc.Kind() == "echo" {
					ns.Echo = append(ns.Echo, svc.Stats())
				}
			}
			st.Namespaces = append(st.Namespaces, ns)
		}
	}
	for _, r := range d.cfg.Routers {
		if rs, _, ok := d.routerStatusLocked(r.Name); ok {
			st.Routers = append(st.Routers, rs)
		}
	}
	st.Forwards = d.forwardStatusLocked()
	st.Gateways = d.gatewayStatusLocked()
	st.Sockets = d.socketStatusLocked()
	return st
}

// FDB lists a switch's learned MACs sorted by VLAN and MAC.
func (d *Daemon) FDB(name string) ([]l2switch.FDBEntry, error) {
	d.mu.Lock()
	e := d.switches[name]
	d.mu.Unlock()
	if e == nil {
		return nil, fmt.Errorf("no switch %q", name)
	}
	fdb := e.sw.FDB()
	sort.Slice(fdb, func(i, j int) bool {
		if fdb[i].VLAN != fdb[j].VLAN {
			return fdb[i].VLAN < fdb[j].VLAN
		}
		return fdb[i].MAC.String() < fdb[j].MAC.String()
	})
	return fdb, nil
}

// Namespace returns a running namespace.
func (d *Daemon) Namespace(name string) (*nsstack.Namespace, error) {
	ns, ok := d.live.Load(name)
	if !ok {
		return nil, fmt.Errorf("no namespace %q", name)
	}
	return ns.(*nsstack.Namespace), nil
}

// Switch returns a running switch.
func (d *Daemon) Switch(name string) (*l2switch.Switch, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.switches[name]
	if e == nil {
		return nil, fmt.Errorf("no switch %q", name)
	}
	return e.sw, nil
}

// PingResult is one echo reply (or its absence).
type PingResult struct {
	Seq   int     `json:"seq"`
	RTTms float64 `json:"rtt_ms,omitempty"`
	Error string  `json:"error,omitempty"`
	// From and ICMPError are set when an ICMP error came back instead of a reply:
	// the router or host that sent it and what it said ("Destination Net Unreachable").
	From      string `json:"from,omitempty"`
	ICMPError string `json:"icmp_error,omitempty"`
}

// Ping sends count echo requests from a namespace, one a second, calling each with
// every result as it comes.
func (d *Daemon) Ping(ctx context.Context, nsName string, dst netip.Addr, count int, interval time.Duration, each func(PingResult)) error {
	ns, err := d.Namespace(nsName)
	if err != nil {
		return err
	}
	payload := make([]byte, 56)
	for seq := 1; seq <= count; seq++ {
		if seq > 1 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(interval):
			}
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		rtt, err := ns.Ping(pctx, dst, seq, payload)
		cancel()
		r := PingResult{Seq: seq}
		var ie *nsstack.ICMPError
		switch {
		case errors.As(err, &ie):
			r.Error, r.From, r.ICMPError = ie.Error(), ie.From.String(), ie.Text()
		case err != nil:
			r.Error = err.Error()
		default:
			r.RTTms = float64(rtt.Microseconds()) / 1000
		}
		each(r)
	}
	return nil
}

// ServiceString names a service as status shows it: "http :80", or "dhcp on eth0" for
// a service that serves a NIC rather than listening on a port.
func ServiceString(s config.Service) string {
	if s.Listen.Port() == 0 {
		if s.NIC != "" {
			return s.Kind + " on " + s.NIC
		}
		return s.Kind
	}
	return s.Kind + " " + listenString(s.Listen)
}

func listenString(ap netip.AddrPort) string {
	if !ap.Addr().IsValid() {
		return fmt.Sprintf(":%d", ap.Port())
	}
	return ap.String()
}

func nsOrigin(c *config.Config, name string) string {
	if c.Imported(name) {
		return OriginImported
	}
	return OriginConfig
}
