package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/dhcpserver"
	"github.com/vnetd/vnetd/dnsserver"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/nsstack"
)

// netService is a DHCP or DNS server running on a namespace socket.
type netService struct {
	cancel context.CancelFunc
	done   chan struct{}
	close  func() error // closes the socket
}

func (s *netService) Close() error {
	s.cancel()
	err := s.close()
	<-s.done
	return err
}

// serve runs fn in the background until the returned service is closed.
func serve(closeConn func() error, fn func(ctx context.Context) error, onErr func(error)) *netService {
	ctx, cancel := context.WithCancel(context.Background())
	s := &netService{cancel: cancel, done: make(chan struct{}), close: closeConn}
	go func() {
		defer close(s.done)
		if err := fn(ctx); err != nil {
			onErr(err)
		}
	}()
	return s
}

// startDHCP serves DHCPv4 on the service's NIC: the server identifier is the NIC's
// first IPv4 address and the pool lies in that address's subnet (config checked both).
func (d *Daemon) startDHCP(e *nsEntry, c config.Namespace, s config.Service) error {
	var subnet netip.Prefix
	for _, n := range c.NICs {
		if n.Name != s.NIC {
			continue
		}
		for _, a := range n.Addresses {
			if a.Addr().Is4() {
				subnet = a
				break
			}
		}
	}
	if !subnet.IsValid() {
		return fmt.Errorf("namespace %q: dhcp: nic %q has no IPv4 address", c.Name, s.NIC)
	}
	static := map[frame.MAC]netip.Addr{}
	for _, st := range s.Static {
		static[st.MAC] = st.Address
	}
	log := d.log.With("namespace", c.Name, "service", "dhcp", "nic", s.NIC)
	srv, err := dhcpserver.New(dhcpserver.Config{
		ServerIP: subnet.Addr(), Subnet: subnet, RangeStart: s.RangeStart, RangeEnd: s.RangeEnd,
		Router: s.Router, DNS: s.DNS, Lease: s.Lease, Static: static, Logger: log, MaxLeases: s.MaxLeases,
	})
	if err != nil {
		return fmt.Errorf("namespace %q: dhcp: %w", c.Name, err)
	}
	// Bound to the NIC so a namespace with several NICs serves only the one
	// configured; broadcast because clients without an address get their offer so.
	conn, err := e.ns.ListenPacketWith("udp4", "0.0.0.0:67", nsstack.PacketOptions{NIC: s.NIC, Broadcast: true})
	if err != nil {
		return fmt.Errorf("namespace %q: dhcp: %w", c.Name, err)
	}
	e.services = append(e.services, serve(conn.Close, func(ctx context.Context) error { return srv.Serve(ctx, conn) },
		func(err error) { log.Error("dhcp server stopped", "err", err) }))
	if e.dhcp == nil {
		e.dhcp = map[string]*dhcpserver.Server{}
	}
	e.dhcp[s.NIC] = srv
	log.Info("dhcp up", "range", s.RangeStart.String()+"-"+s.RangeEnd.String())
	return nil
}

// dnsService is a running DNS server and the zone it answers for.
type dnsService struct {
	srv     *dnsserver.Server
	zone    string
	listen  string
	records []config.Record
	fwd     *dnsserver.Forwarder // nil unless forward = true
}

// startDNS serves DNS over UDP and TCP on the service's listen address. Its records
// are filled by refreshDNSLocked from the whole config.
func (d *Daemon) startDNS(e *nsEntry, c config.Namespace, s config.Service) error {
	log := d.log.With("namespace", c.Name, "service", "dns")
	fwd, err := dnsForwarder(c.Name, s)
	if err != nil {
		return err
	}
	srv := dnsserver.New(dnsserver.Options{Logger: log, Zone: s.Zone, Forward: fwd})
	conn, err := e.ns.ListenPacket("udp", listenString(s.Listen))
	if err != nil {
		return fmt.Errorf("namespace %q: dns: %w", c.Name, err)
	}
	l, err := e.ns.Listen("tcp", listenString(s.Listen))
	if err != nil {
		conn.Close()
		return fmt.Errorf("namespace %q: dns over TCP: %w", c.Name, err)
	}
	onErr := func(err error) { log.Error("dns server stopped", "err", err) }
	e.services = append(e.services,
		serve(conn.Close, func(ctx context.Context) error { return srv.Serve(ctx, conn) }, onErr),
		serve(l.Close, func(ctx context.Context) error { return srv.ServeTCP(ctx, l) }, onErr))
	e.dns = append(e.dns, &dnsService{srv: srv, zone: s.Zone, listen: listenString(s.Listen), records: s.Records, fwd: fwd})
	log.Info("dns up", "listen", listenString(s.Listen), "zone", s.Zone, "forward", fwd != nil)
	return nil
}

// refreshDNSLocked gives every DNS server the names of the lab described by c:
// NIC.NAMESPACE.ZONE for each namespace NIC's addresses, NAMESPACE.ZONE for all of a
// namespace's addresses, host.ZONE for the gateways' host loopback aliases, and the
// server's static records.
func (d *Daemon) refreshDNSLocked(c *config.Config) {
	for _, e := range d.namespaces {
		for _, ds := range e.dns {
			recs := map[string][]netip.Addr{}
			for _, n := range c.Namespaces {
				for _, nic := range n.NICs {
					nicName, nsName := dnsserver.Names(nic.Name, n.Name, ds.zone)
					for _, a := range nic.Addresses {
						recs[nicName] = append(recs[nicName], a.Addr())
						recs[nsName] = append(recs[nsName], a.Addr())
					}
				}
			}
			// host.ZONE: the gateways' host loopback aliases (the host itself),
			// unless a namespace named "host" or a static record already has the name.
			host := "host." + strings.Trim(ds.zone, ".")
			explicit := len(recs[host]) > 0
			for _, r := range ds.records {
				recs[r.Name] = append(recs[r.Name], r.Addr)
				explicit = explicit || strings.EqualFold(strings.TrimSuffix(r.Name, "."), host)
			}
			for _, g := range c.Gateways {
				for _, a := range []netip.Addr{g.Host, g.Host6} {
					if a.IsValid() && !explicit {
						recs[host] = append(recs[host], a)
					}
				}
			}
			ds.srv.SetRecords(recs)
		}
	}
}

// DHCPStatus is one DHCP server's lease table size, cap and refusals.
type DHCPStatus struct {
	NIC   string           `json:"nic"`
	Stats dhcpserver.Stats `json:"stats"`
}

// dhcpStatus lists the namespace's DHCP servers by NIC.
func (e *nsEntry) dhcpStatus() []DHCPStatus {
	var out []DHCPStatus
	for nic, srv := range e.dhcp {
		out = append(out, DHCPStatus{NIC: nic, Stats: srv.Stats()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NIC < out[j].NIC })
	return out
}

// Lease is one DHCP binding as `vnetd ns NAME leases` shows it.
type Lease struct {
	NIC     string `json:"nic"`
	MAC     string `json:"mac"`
	Address string `json:"address"`
	// Expires is RFC 3339, or "offered" for an offer not yet acknowledged, or
	// "never" for a static binding.
	Expires string `json:"expires"`
	Static  bool   `json:"static"`
}

// Leases lists the DHCP leases of a namespace's DHCP servers, by NIC then address.
func (d *Daemon) Leases(namespace string) ([]Lease, error) {
	d.mu.Lock()
	e := d.namespaces[namespace]
	var servers map[string]*dhcpserver.Server
	if e != nil {
		servers = e.dhcp
	}
	d.mu.Unlock()
	if e == nil {
		return nil, fmt.Errorf("no namespace %q", namespace)
	}
	out := []Lease{}
	for nic, srv := range servers {
		for _, l := range srv.Leases() {
			exp := l.Expires.UTC().Format(time.RFC3339)
			switch {
			case l.Static && l.Expires.IsZero():
				exp = "reserved" // a static binding its host has not asked for yet
			case l.Expires.IsZero():
				exp = "offered"
			}
			out = append(out, Lease{NIC: nic, MAC: l.MAC.String(), Address: l.Addr.String(), Expires: exp, Static: l.Static})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].NIC != out[j].NIC {
			return out[i].NIC < out[j].NIC
		}
		return netip.MustParseAddr(out[i].Address).Less(netip.MustParseAddr(out[j].Address))
	})
	return out, nil
}
