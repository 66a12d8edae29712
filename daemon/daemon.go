package daemon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/dhcpserver"
	"github.com/vnetd/vnetd/forward"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/nsstack"
	"github.com/vnetd/vnetd/portsec"
	"github.com/vnetd/vnetd/service"
	l2switch "github.com/vnetd/vnetd/switch"
)

// Options configure a Daemon.
type Options struct {
	// Logger receives lifecycle events; default slog.Default().
	Logger *slog.Logger
	// OpenTAP opens a host TAP device as a port; nil means OpenTAP (package tap).
	// Tests pass stand-ins.
	OpenTAP func(config.TAP, *slog.Logger) (frame.Port, error)
	// NewRouter builds a router with one port per interface; nil means NewRouter
	// (package router). Tests pass stand-ins.
	NewRouter func(config.Router, *slog.Logger) (RouterPorts, error)
	// OpenHostInterface attaches an existing host interface as a port; nil means
	// OpenHostInterface (package hostif). Tests pass stand-ins.
	OpenHostInterface func(config.HostInterface, *slog.Logger) (frame.Port, error)
}

// Daemon is the running lab. Its methods are safe for concurrent use.
type Daemon struct {
	log        *slog.Logger
	openTAP    func(config.TAP, *slog.Logger) (frame.Port, error)
	newRouter  func(config.Router, *slog.Logger) (RouterPorts, error)
	openHostIf func(config.HostInterface, *slog.Logger) (frame.Port, error)

	mu          sync.Mutex
	cfg         *config.Config
	switches    map[string]*swEntry
	namespaces  map[string]*nsEntry
	forwards    map[string]*fwEntry
	attachments map[string]*attachment // "tap:NAME", "router:NAME"
	closed      bool

	live sync.Map // namespace name -> *nsstack.Namespace, read by forwards without mu

	impairs impairs           // every switch port and pair end, wrapped for impairment
	links   links             // every switch port and pair end, wrapped for port security and link state
	pairs   map[string]func() // running pass-through pairs' stops, by pairKey (mu)

	api apiRefusals // the control API's refusals at its caps, by kind
}

type swEntry struct {
	cfg config.Switch
	sw  *l2switch.Switch
}

type nsEntry struct {
	cfg      config.Namespace
	ns       *nsstack.Namespace
	ports    []portRef // switch ports this namespace's NICs occupy
	services []io.Closer
	dhcp     map[string]*dhcpserver.Server // by NIC, for `vnetd ns NAME leases`
	dns      []*dnsService
	iperf    []*iperfService
	peers    []func() // pass-through pumps this namespace started
}

type portRef struct{ sw, port string }

type fwEntry struct {
	cfg  config.Forward
	fw   *forward.Forward
	ns   atomic.Pointer[string] // the namespace new connections dial in
	spec *config.ForwardSpec    // the request of a forward added at run time; nil for the config's
}

// New returns an empty daemon; Apply brings a config up.
func New(o Options) *Daemon {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.NewRouter == nil {
		o.NewRouter = NewRouter
	}
	if o.OpenTAP == nil {
		o.OpenTAP = OpenTAP
	}
	if o.OpenHostInterface == nil {
		o.OpenHostInterface = OpenHostInterface
	}
	return &Daemon{log: o.Logger, openTAP: o.OpenTAP, newRouter: o.NewRouter, openHostIf: o.OpenHostInterface, switches: map[string]*swEntry{}, namespaces: map[string]*nsEntry{},
		forwards: map[string]*fwEntry{}, attachments: map[string]*attachment{}}
}

// ErrUnavailable wraps errors for config parts this build cannot run yet.
var ErrUnavailable = errors.New("not available in this build")

func (d *Daemon) unsupported(c *config.Config) error {
	var errs []error
	if len(c.Routers) > 0 && d.newRouter == nil {
		errs = append(errs, fmt.Errorf("router %q: router support %w", c.Routers[0].Name, ErrUnavailable))
	}
	if len(c.TAPs) > 0 && d.openTAP == nil {
		errs = append(errs, fmt.Errorf("tap %q: tap support %w", c.TAPs[0].Name, ErrUnavailable))
	}
	if len(c.HostInterfaces) > 0 && d.openHostIf == nil {
		errs = append(errs, fmt.Errorf("host_interface %q: host interface support %w", c.HostInterfaces[0].Name, ErrUnavailable))
	}
	return errors.Join(errs...)
}

// Apply makes the running lab match c. The first call builds everything or nothing;
// later calls (reloads) change only what differs: removed things are torn down,
// changed namespaces rebuilt, new things added, unchanged things left running. A
// reload is atomic: everything new is acquired before anything running is released
// (see prepareLocked), so if c cannot be applied the running lab is left exactly as
// it was, and the error and the log name the part that failed.
func (d *Daemon) Apply(c *config.Config) error {
	if err := d.unsupported(c); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("apply config: daemon closed")
	}
	first := d.cfg == nil
	c, importLogs := d.importsForLocked(c)
	p := planChanges(d.runningLocked(), c)
	pr, err := d.prepareLocked(p)
	applied := false
	if err == nil {
		applied, err = d.commitLocked(p, pr, c)
	}
	if !applied {
		item := "?"
		var se *stepError
		if errors.As(err, &se) {
			item = se.item
		}
		if first {
			d.log.Error("start failed; nothing was started", "failed", item, "err", err)
			d.closeLocked()
			d.closed = false
		} else {
			d.log.Error("reload failed; nothing changed, the running lab is as it was", "failed", item, "err", err)
		}
		return err
	}
	d.cfg = c
	for _, l := range importLogs {
		l()
	}
	d.refreshDNSLocked(c)
	if err != nil {
		d.log.Error("config applied with errors", "err", err)
	}
	return err
}

// peerPolicy is the policy of NIC nic of namespace c.
func peerPolicy(c config.Namespace, nic string) portsec.Policy {
	for _, n := range c.NICs {
		if n.Name == nic {
			return nicPolicy(n)
		}
	}
	return portsec.Policy{}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func nsRoute(r config.Route) nsstack.Route { return nsstack.Route{To: r.To, Via: r.Via, NIC: r.NIC} }

// buildNamespace builds namespace c: its stack, NICs, addresses, routes and
// services. Nothing of it is visible yet: its NICs' switch ports are returned for
// attachNamespaceLocked, and until then forwards do not dial it.
func (d *Daemon) buildNamespace(c config.Namespace) (_ *builtNS, err error) {
	ns, err := nsstack.New(nsstack.Options{Name: c.Name, Logger: d.log.With("namespace", c.Name)})
	if err != nil {
		return nil, fmt.Errorf("namespace %q: %w", c.Name, err)
	}
	b := &builtNS{e: &nsEntry{cfg: c, ns: ns}}
	defer func() {
		if err != nil {
			b.e.release()
		}
	}()
	for _, n := range c.NICs {
		nc := nsstack.NICConfig{Name: n.Name, MAC: n.MAC, MTU: n.MTU}
		if n.Kind == config.NICKindL3 {
			nc.Kind = nsstack.NICL3
			nc.PeerMAC = n.PeerMAC // a router leg's MAC; zero (derived) on a pair
		}
		nic, err := ns.AddNIC(nc)
		if err != nil {
			return nil, fmt.Errorf("namespace %q: %w", c.Name, err)
		}
		for _, a := range n.Addresses {
			if err := ns.AddAddress(n.Name, a); err != nil {
				return nil, fmt.Errorf("namespace %q: %w", c.Name, err)
			}
		}
		// An L3 NIC's peer is reachable through it: a route to each of the peer's
		// addresses that no subnet of its own holds.
		for _, p := range n.PeerRoutes {
			if err := ns.AddRoute(nsstack.Route{To: p, NIC: n.Name}); err != nil {
				return nil, fmt.Errorf("namespace %q: %w", c.Name, err)
			}
		}
		if n.Switch != "" {
			b.ports = append(b.ports, nsPort{pendingPort{n.Switch, nic, l2switch.PortConfig{Name: c.Name + "." + n.Name, VLAN: n.VLAN}}, nicPolicy(n)})
		}
	}
	for _, r := range c.Routes {
		if err := ns.AddRoute(nsRoute(r)); err != nil {
			return nil, fmt.Errorf("namespace %q: %w", c.Name, err)
		}
	}
	if err := d.startServices(b.e, c); err != nil {
		return nil, err
	}
	return b, nil
}

// release stops a namespace that was built but never attached.
func (e *nsEntry) release() {
	for _, s := range e.services {
		s.Close()
	}
	e.ns.Close()
}

// attachNamespaceLocked puts a built namespace's NICs on their switches and makes it
// the running namespace of its name. A port a switch refuses is reported; the
// namespace runs without it.
func (d *Daemon) attachNamespaceLocked(b *builtNS) error {
	e := b.e
	name := e.cfg.Name
	d.namespaces[name] = e
	d.live.Store(name, e.ns)
	var errs []error
	for _, pp := range b.ports {
		sw := d.switches[pp.sw]
		if sw == nil {
			errs = append(errs, fmt.Errorf("namespace %q: switch %q is not running", name, pp.sw))
			continue
		}
		if err := sw.sw.AddPort(d.wrapSwitchPort(pp.sw, pp.pc.Name, pp.p, pp.pol), pp.pc); err != nil {
			d.impairs.forget(pp.sw + "/" + pp.pc.Name)
			d.forgetLink(pp.sw + "/" + pp.pc.Name)
			errs = append(errs, fmt.Errorf("namespace %q: attach %s to %s: %w", name, pp.pc.Name, pp.sw, err))
			continue
		}
		e.ports = append(e.ports, portRef{pp.sw, pp.pc.Name})
	}
	d.log.Info("namespace up", "namespace", name, "nics", len(e.cfg.NICs), "services", len(e.cfg.Services))
	return errors.Join(errs...)
}

func (d *Daemon) startServices(e *nsEntry, c config.Namespace) error {
	ns := e.ns
	addrs := func() []netip.Prefix {
		var out []netip.Prefix
		for _, a := range ns.Addresses() {
			if a.Prefix.Addr().IsLoopback() || a.Prefix.Addr() == netip.IPv4Unspecified() || a.Prefix.Bits() == 32 && a.Prefix.Addr() == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
				continue
			}
			out = append(out, a.Prefix)
		}
		return out
	}
	for _, s := range c.Services {
		switch s.Kind {
		case config.KindDHCP:
			if err := d.startDHCP(e, c, s); err != nil {
				return err
			}
			continue
		case config.KindDNS:
			if err := d.startDNS(e, c, s); err != nil {
				return err
			}
			continue
		case config.KindIperf3:
			if err := d.startIperf(e, c, s); err != nil {
				return err
			}
			continue
		}
		listen := listenString(s.Listen)
		svc, err := service.Start(ns, service.Options{Kind: s.Kind, Listen: listen, Namespace: c.Name, Addresses: addrs, Logger: d.log})
		if err != nil {
			return fmt.Errorf("namespace %q: %w", c.Name, err)
		}
		e.services = append(e.services, svc)
	}
	return nil
}

func (d *Daemon) removeNamespaceLocked(name string) {
	e := d.namespaces[name]
	if e == nil {
		return
	}
	for _, s := range e.services {
		s.Close()
	}
	for _, stop := range e.peers {
		stop()
	}
	for key := range d.pairs {
		if a, b, _ := strings.Cut(key, " "); strings.HasPrefix(a, name+":") || strings.HasPrefix(b, name+":") {
			delete(d.pairs, key)
		}
	}
	for _, p := range e.ports {
		if sw := d.switches[p.sw]; sw != nil {
			sw.sw.RemovePort(p.port)
		}
	}
	d.live.Delete(name)
	e.ns.Close()
	delete(d.namespaces, name)
	d.log.Info("namespace removed", "namespace", name)
}

func (d *Daemon) dialerFor(fe *fwEntry) func() forward.Dialer {
	return func() forward.Dialer {
		ns, ok := d.live.Load(*fe.ns.Load())
		if !ok {
			return nil
		}
		return ns.(*nsstack.Namespace)
	}
}

// Close tears everything down; it is idempotent.
func (d *Daemon) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closeLocked()
	return nil
}

func (d *Daemon) closeLocked() {
	if d.closed {
		return
	}
	d.closed = true
	for name, e := range d.forwards {
		e.fw.Close()
		delete(d.forwards, name)
	}
	names := make([]string, 0, len(d.namespaces))
	for name := range d.namespaces {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		d.removeNamespaceLocked(name)
	}
	for key := range d.attachments {
		d.removeAttachmentLocked(key)
	}
	for name, e := range d.switches {
		e.sw.Close()
		delete(d.switches, name)
	}
	d.cfg = nil
}
