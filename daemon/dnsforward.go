package daemon

import (
	"fmt"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/dnsserver"
)

// DNSStatus is one dns service of a namespace; Forward is set when it forwards
// names outside its zone.
type DNSStatus struct {
	Listen  string                  `json:"listen"`
	Zone    string                  `json:"zone"`
	Forward *dnsserver.ForwardStats `json:"forward,omitempty"`
}

// dnsForwarder is the forwarder of a dns service with forward = true, else nil.
func dnsForwarder(ns string, s config.Service) (*dnsserver.Forwarder, error) {
	if !s.Forward {
		return nil, nil
	}
	f, err := dnsserver.NewForwarder(dnsserver.ForwarderOptions{ResolvConf: s.ResolvConf, MaxInFlight: s.ForwardMaxInFlight})
	if err != nil {
		return nil, fmt.Errorf("namespace %q: %w", ns, err)
	}
	return f, nil
}

func (e *nsEntry) dnsStatus() []DNSStatus {
	var out []DNSStatus
	for _, ds := range e.dns {
		st := DNSStatus{Listen: ds.listen, Zone: ds.zone}
		if ds.fwd != nil {
			fs := ds.fwd.Stats()
			st.Forward = &fs
		}
		out = append(out, st)
	}
	return out
}
