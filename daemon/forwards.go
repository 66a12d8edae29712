package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/forward"
)

// Where a forward comes from, as ForwardStatus.Origin says.
const (
	OriginConfig  = "config"  // a [[forward]] of the config file
	OriginRuntime = "runtime" // added through the control API (vnetd forward add)
)

var (
	// ErrInvalidForward wraps the validation errors of AddForward: the request is
	// wrong (the same checks as a [[forward]] in the file).
	ErrInvalidForward = errors.New("invalid forward")
	// ErrNoForward is RemoveForward's error for a name that is not running.
	ErrNoForward = errors.New("no such forward")
)

// AddForward starts a forward at run time, checked exactly as a [[forward]] added to
// the running config would be (config.CheckForward, against every forward running).
// A request that fails the checks returns an error wrapping ErrInvalidForward; one
// whose host socket cannot be bound (the port in use) returns the bind error and
// leaves nothing behind. See startForwardLocked for what a reload does with it.
func (d *Daemon) AddForward(s config.ForwardSpec) (ForwardStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.cfg == nil {
		return ForwardStatus{}, errors.New("add forward: no lab is running")
	}
	f, err := config.CheckForward(d.cfg, s, d.runningForwardsLocked())
	if err != nil {
		return ForwardStatus{}, fmt.Errorf("%w: %v", ErrInvalidForward, err)
	}
	fe, err := d.startForwardLocked(f)
	if err != nil {
		return ForwardStatus{}, err
	}
	fe.spec = &s
	return fe.statusLocked(), nil
}

// RemoveForward stops the forward named name ("tcp/127.0.0.1:8080"): its listener
// closes and its connections and flows end. A config forward removed so comes back
// at the next reload if the file still has it.
func (d *Daemon) RemoveForward(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.forwards[name]
	if e == nil {
		return fmt.Errorf("%w %q", ErrNoForward, name)
	}
	e.fw.Close()
	delete(d.forwards, name)
	d.log.Info("forward removed", "forward", name, "origin", e.origin())
	return nil
}

// Forwards lists the running forwards: the config's in file order, then the runtime
// ones by name.
func (d *Daemon) Forwards() []ForwardStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.forwardStatusLocked()
}

func (d *Daemon) forwardStatusLocked() []ForwardStatus {
	out := []ForwardStatus{}
	if d.cfg != nil {
		for _, f := range d.cfg.Forwards {
			if e := d.forwards[f.Name()]; e != nil && e.spec == nil {
				out = append(out, e.statusLocked())
			}
		}
	}
	var rt []ForwardStatus
	for _, e := range d.forwards {
		if e.spec != nil {
			rt = append(rt, e.statusLocked())
		}
	}
	sort.Slice(rt, func(i, j int) bool { return rt[i].Name < rt[j].Name })
	return append(out, rt...)
}

func (e *fwEntry) origin() string {
	if e.spec != nil {
		return OriginRuntime
	}
	return OriginConfig
}

func (e *fwEntry) statusLocked() ForwardStatus {
	return ForwardStatus{Name: e.cfg.Name(), Origin: e.origin(), Namespace: *e.ns.Load(), Target: e.cfg.Target.String(), Stats: e.fw.Stats()}
}

func (d *Daemon) runningForwardsLocked() []config.Forward {
	out := make([]config.Forward, 0, len(d.forwards))
	for _, e := range d.forwards {
		out = append(out, e.cfg)
	}
	return out
}

// startForwardLocked binds and starts f and records it.
func (d *Daemon) startForwardLocked(f config.Forward) (*fwEntry, error) {
	fe, err := d.bindForward(f)
	if err != nil {
		return nil, err
	}
	d.recordForwardLocked(fe)
	return fe, nil
}

// bindForward binds and starts f. Until it is recorded its connections dial the
// namespace it names if that is running, and nothing else knows of it.
func (d *Daemon) bindForward(f config.Forward) (*fwEntry, error) {
	fe := &fwEntry{cfg: f}
	fe.ns.Store(&f.Namespace)
	fw, err := forward.Start(forward.Options{
		Protocol: f.Protocol, Listen: f.Listen, Target: f.Target, Logger: d.log,
		MaxConns: f.MaxConns, MaxFlows: f.MaxFlows, UDPIdle: f.UDPIdle,
		Dialer: d.dialerFor(fe),
	})
	if err != nil {
		return nil, err
	}
	fe.fw = fw
	return fe, nil
}

// recordForwardLocked makes a bound forward one of the daemon's.
func (d *Daemon) recordForwardLocked(fe *fwEntry) {
	f := fe.cfg
	d.forwards[f.Name()] = fe
	d.log.Info("forward up", "forward", f.Name(), "namespace", f.Namespace, "target", f.Target)
}

// overlaps reports whether two forwards could not both bind: the same protocol and
// port on the same address, or one of them on the wildcard address of its family.
func overlaps(a, b config.Forward) bool {
	if a.Protocol != b.Protocol || a.Listen.Port() != b.Listen.Port() {
		return false
	}
	x, y := a.Listen.Addr(), b.Listen.Addr()
	return x == y || x.IsUnspecified() && (x.Is4() == y.Is4() || x == netip.IPv6Unspecified()) ||
		y.IsUnspecified() && (x.Is4() == y.Is4() || y == netip.IPv6Unspecified())
}
