package daemon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/dhcpserver"
	"github.com/vnetd/vnetd/forward"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/nsstack"
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

	impairs impairs // every switch port and pair end, wrapped for impairment
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
// changed namespaces rebuilt, new things added, unchanged things left running. If
// the change fails, the previous config is restored (best effort) and the error
// returned.
func (d *Daemon) Apply(c *config.Config) error {
	if err := d.unsupported(c); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("apply config: daemon closed")
	}
	old := d.cfg
	d.impairs.setConfig(c)
	if err := d.applyLocked(c); err != nil {
		d.impairs.setConfig(old)
		if old == nil {
			d.closeLocked()
			d.closed = false
		} else if rerr := d.applyLocked(old); rerr != nil {
			d.log.Error("restoring the previous config failed", "err", rerr)
		} else {
			d.refreshDNSLocked(old)
		}
		return err
	}
	d.cfg = c
	d.refreshDNSLocked(c)
	return nil
}

func (d *Daemon) applyLocked(c *config.Config) error {
	wantSw := map[string]config.Switch{}
	for _, s := range c.Switches {
		wantSw[s.Name] = s
	}
	wantNS := map[string]config.Namespace{}
	for _, n := range c.Namespaces {
		wantNS[n.Name] = n
	}
	wantFw := map[string]config.Forward{}
	for _, f := range c.Forwards {
		wantFw[f.Name()] = f
	}

	// Which switches are recreated: changed settings. Namespaces on them rebuild too.
	rebuildSw := map[string]bool{}
	for name, e := range d.switches {
		if w, ok := wantSw[name]; !ok || w != e.cfg {
			rebuildSw[name] = true
		}
	}
	// Namespaces to tear down: removed, NICs changed, on a rebuilt switch, or peered
	// with one that is torn down.
	down := map[string]bool{}
	for name, e := range d.namespaces {
		w, ok := wantNS[name]
		if !ok || !reflect.DeepEqual(w.NICs, e.cfg.NICs) {
			down[name] = true
		}
		for _, n := range e.cfg.NICs {
			if rebuildSw[n.Switch] {
				down[name] = true
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for name, e := range d.namespaces {
			if down[name] {
				continue
			}
			for _, n := range e.cfg.NICs {
				if n.PeerNamespace != "" && down[n.PeerNamespace] {
					down[name], changed = true, true
				}
			}
		}
	}

	// Forwards first: binding host ports is what most often fails.
	d.keepRuntimeForwardsLocked(c)
	for name, e := range d.forwards {
		if w, ok := wantFw[name]; !ok {
			if e.spec != nil {
				continue // a runtime forward keepRuntimeForwardsLocked kept
			}
			e.fw.Close()
			delete(d.forwards, name)
			d.log.Info("forward removed", "forward", name)
		} else if w != e.cfg {
			e.fw.SetTarget(w.Target)
			e.fw.SetLimit(max(w.MaxConns, w.MaxFlows))
			e.fw.SetUDPIdle(w.UDPIdle)
			e.ns.Store(&w.Namespace)
			e.cfg = w
			d.log.Info("forward changed", "forward", name, "namespace", w.Namespace, "target", w.Target)
		}
	}
	for _, f := range c.Forwards {
		if _, ok := d.forwards[f.Name()]; ok {
			continue
		}
		if _, err := d.startForwardLocked(f); err != nil {
			return err
		}
	}

	for name := range down {
		d.removeNamespaceLocked(name)
	}
	d.removeAttachmentsLocked(attKeys(c), rebuildSw)
	for name := range rebuildSw {
		d.switches[name].sw.Close()
		delete(d.switches, name)
		d.log.Info("switch removed", "switch", name)
	}
	for _, s := range c.Switches {
		if _, ok := d.switches[s.Name]; ok {
			continue
		}
		sw := l2switch.New(l2switch.Config{Name: s.Name, MACAging: s.MACAging, MaxMACs: s.MaxMACs, PortMaxMACs: s.PortMaxMACs, Logger: d.log.With("switch", s.Name),
			Ring: l2switch.RingConfig{Bytes: s.CaptureRingBytes, MaxAge: time.Duration(s.CaptureRingSeconds) * time.Second}})
		d.switches[s.Name] = &swEntry{cfg: s, sw: sw}
		d.log.Info("switch up", "switch", s.Name)
	}
	if err := d.addAttachmentsLocked(c); err != nil {
		return err
	}
	// Unchanged namespaces: apply route and service differences in place.
	for name, e := range d.namespaces {
		w := wantNS[name]
		if !reflect.DeepEqual(w.Routes, e.cfg.Routes) {
			for _, r := range e.cfg.Routes {
				e.ns.RemoveRoute(nsRoute(r))
			}
			for _, r := range w.Routes {
				if err := e.ns.AddRoute(nsRoute(r)); err != nil {
					return fmt.Errorf("namespace %q: %w", name, err)
				}
			}
			d.log.Info("routes changed", "namespace", name)
		}
		if !reflect.DeepEqual(w.Services, e.cfg.Services) {
			for _, s := range e.services {
				s.Close()
			}
			e.services, e.dhcp, e.dns = nil, nil, nil
			if err := d.startServices(e, w); err != nil {
				return err
			}
			d.log.Info("services changed", "namespace", name)
		}
		e.cfg = w
	}
	// New namespaces, in file order, then the pass-through pairs among them.
	var added []string
	for _, n := range c.Namespaces {
		if _, ok := d.namespaces[n.Name]; ok {
			continue
		}
		if err := d.addNamespaceLocked(n); err != nil {
			return err
		}
		added = append(added, n.Name)
	}
	for _, name := range added {
		e := d.namespaces[name]
		for _, n := range e.cfg.NICs {
			if n.PeerNamespace == "" || n.PeerNamespace+"\x00"+n.PeerNIC < name+"\x00"+n.Name && contains(added, n.PeerNamespace) {
				continue
			}
			other := d.namespaces[n.PeerNamespace]
			if other == nil {
				return fmt.Errorf("namespace %q: peer namespace %q is not running", name, n.PeerNamespace)
			}
			a, _ := e.ns.NIC(n.Name)
			b, ok := other.ns.NIC(n.PeerNIC)
			if !ok {
				return fmt.Errorf("namespace %q: peer %s:%s has no such nic", name, n.PeerNamespace, n.PeerNIC)
			}
			stop := nsstack.Connect(d.wrapPairEnd(name, n.Name, a), d.wrapPairEnd(n.PeerNamespace, n.PeerNIC, b))
			e.peers = append(e.peers, stop)
			other.peers = append(other.peers, stop)
		}
	}
	return nil
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

func (d *Daemon) addNamespaceLocked(c config.Namespace) (err error) {
	ns, err := nsstack.New(nsstack.Options{Name: c.Name, Logger: d.log.With("namespace", c.Name)})
	if err != nil {
		return fmt.Errorf("namespace %q: %w", c.Name, err)
	}
	e := &nsEntry{cfg: c, ns: ns}
	d.namespaces[c.Name] = e
	d.live.Store(c.Name, ns)
	defer func() {
		if err != nil {
			d.removeNamespaceLocked(c.Name)
		}
	}()
	for _, n := range c.NICs {
		nic, err := ns.AddNIC(nsstack.NICConfig{Name: n.Name, MAC: n.MAC, MTU: n.MTU})
		if err != nil {
			return fmt.Errorf("namespace %q: %w", c.Name, err)
		}
		for _, a := range n.Addresses {
			if err := ns.AddAddress(n.Name, a); err != nil {
				return fmt.Errorf("namespace %q: %w", c.Name, err)
			}
		}
		if n.Switch != "" {
			sw := d.switches[n.Switch]
			if sw == nil {
				return fmt.Errorf("namespace %q: switch %q is not running", c.Name, n.Switch)
			}
			port := c.Name + "." + n.Name
			if err := sw.sw.AddPort(d.wrapSwitchPort(n.Switch, port, nic), l2switch.PortConfig{Name: port, VLAN: n.VLAN}); err != nil {
				d.impairs.forget(n.Switch + "/" + port)
				return fmt.Errorf("namespace %q: attach %s to %s: %w", c.Name, port, n.Switch, err)
			}
			e.ports = append(e.ports, portRef{n.Switch, port})
		}
	}
	for _, r := range c.Routes {
		if err := ns.AddRoute(nsRoute(r)); err != nil {
			return fmt.Errorf("namespace %q: %w", c.Name, err)
		}
	}
	if err := d.startServices(e, c); err != nil {
		return err
	}
	d.log.Info("namespace up", "namespace", c.Name, "nics", len(c.NICs), "services", len(c.Services))
	return nil
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
