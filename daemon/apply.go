package daemon

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/nsstack"
	l2switch "github.com/vnetd/vnetd/switch"
)

// A reload is planned (planChanges), prepared and committed. prepareLocked acquires
// everything the plan adds (forward sockets, TAPs, host interfaces, VM socket paths,
// VXLAN sockets, routers, gateways, whole namespaces with their services) while the
// running lab is left alone; if one fails, what was acquired is released and nothing
// running has changed. commitLocked then swaps the new parts in. Its first stage
// does the few things that can only be acquired after the old one is released (a
// changed TAP, host interface, socket path or tunnel is reopened; a forward takes
// the port of one being stopped) and changes services and routes of namespaces kept
// running; each of those has an undo, and a failure there undoes them all. Its
// second stage cannot fail for anything outside vnetd: it moves ports between
// switches and records the new parts.

// prepared holds what prepareLocked acquired and commitLocked has not taken yet.
type prepared struct {
	forwards   []*fwEntry          // bound and serving, not recorded
	atts       map[string]*openAtt // by attachment key: opened, not on a switch
	namespaces map[string]*builtNS // by name: built, not on a switch, not dialable
}

// builtNS is a namespace built but not yet attached.
type builtNS struct {
	e     *nsEntry
	ports []nsPort
}

// stepError is a reload step that failed, and the item it failed on ("forward
// tcp/127.0.0.1:80", `tap "t0"`) for the log. Its message is the error's.
type stepError struct {
	item string
	err  error
}

func (e *stepError) Error() string { return e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func attError(it attItem, err error) *stepError {
	item := fmt.Sprintf("%s %q", it.kind.noun, it.name)
	if strings.HasPrefix(err.Error(), item+":") {
		return &stepError{item: item, err: err} // named already (gateway.New does)
	}
	return &stepError{item: item, err: fmt.Errorf("%s: %w", item, err)}
}

// stoppingForwards is what the forwards p stops hold now, by name.
func (d *Daemon) stoppingForwards(p plan) map[string]*fwEntry {
	out := map[string]*fwEntry{}
	for _, s := range p.fwDown {
		if e := d.forwards[s.name]; e != nil {
			out[s.name] = e
		}
	}
	return out
}

// prepareLocked acquires what p adds, except what must wait for a running part to be
// released (commitLocked does those). On error everything it acquired is released.
func (d *Daemon) prepareLocked(p plan) (pr *prepared, err error) {
	pr = &prepared{atts: map[string]*openAtt{}, namespaces: map[string]*builtNS{}}
	defer func() {
		if err != nil {
			d.releaseLocked(pr)
		}
	}()
	// Forwards first: binding host ports is what most often fails.
	stopping := d.stoppingForwards(p)
	for _, f := range p.fwUp {
		if overlapsAny(f, stopping) {
			continue
		}
		fe, err := d.bindForward(f)
		if err != nil {
			return pr, &stepError{item: "forward " + f.Name(), err: err} // err names protocol and address
		}
		pr.forwards = append(pr.forwards, fe)
	}
	for _, it := range p.attUp {
		if it.kind.exclusive && d.attachments[it.key] != nil {
			continue
		}
		o, err := it.kind.open(d, it.cfg)
		if err != nil {
			return pr, attError(it, err)
		}
		pr.atts[it.key] = o
	}
	for _, n := range p.nsUp {
		b, err := d.buildNamespace(n)
		if err != nil {
			return pr, &stepError{item: fmt.Sprintf("namespace %q", n.Name), err: err}
		}
		pr.namespaces[n.Name] = b
	}
	// Pass-through pairs: the peer must be built or kept running, and have the NIC.
	down := map[string]bool{}
	for _, name := range p.nsDown {
		down[name] = true
	}
	for _, n := range p.nsUp {
		for _, nic := range n.NICs {
			if nic.PeerNamespace == "" {
				continue
			}
			item := fmt.Sprintf("namespace %q", n.Name)
			var peer *nsEntry
			if b := pr.namespaces[nic.PeerNamespace]; b != nil {
				peer = b.e
			} else if e := d.namespaces[nic.PeerNamespace]; e != nil && !down[nic.PeerNamespace] {
				peer = e
			} else {
				return pr, &stepError{item: item, err: fmt.Errorf("namespace %q: peer namespace %q is not running", n.Name, nic.PeerNamespace)}
			}
			if _, ok := peer.ns.NIC(nic.PeerNIC); !ok {
				return pr, &stepError{item: item, err: fmt.Errorf("namespace %q: peer %s:%s has no such nic", n.Name, nic.PeerNamespace, nic.PeerNIC)}
			}
		}
	}
	return pr, nil
}

// overlapsAny reports whether f could not bind while one of fs runs.
func overlapsAny(f config.Forward, fs map[string]*fwEntry) bool {
	for _, e := range fs {
		if overlaps(f, e.cfg) {
			return true
		}
	}
	return false
}

// releaseLocked releases what pr still holds; nothing of it was ever visible.
func (d *Daemon) releaseLocked(pr *prepared) {
	n := 0
	for _, fe := range pr.forwards {
		fe.fw.Close()
		n++
	}
	for _, o := range pr.atts {
		o.closer.Close()
		n++
	}
	for _, b := range pr.namespaces {
		b.e.release()
		n++
	}
	pr.forwards, pr.atts, pr.namespaces = nil, nil, nil
	if n > 0 {
		d.log.Info("released what the reload had acquired", "parts", n)
	}
}

// commitLocked makes the lab c, from the running lab p was planned on and the parts
// pr holds. It reports whether anything changed: on a failure in its first stage it
// undoes that stage and releases pr (applied false, nothing changed); an error with
// applied true is a part of c that could not be attached.
func (d *Daemon) commitLocked(p plan, pr *prepared, c *config.Config) (applied bool, err error) {
	wantNS := map[string]config.Namespace{}
	for _, n := range c.Namespaces {
		wantNS[n.Name] = n
	}
	// Stage 1: the steps with an undo.
	var undo []func()
	fail := func(err error) (bool, error) {
		d.releaseLocked(pr)
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return false, err
	}
	closedFw := map[string]bool{}
	stopping := d.stoppingForwards(p)
	for _, f := range p.fwUp {
		if !overlapsAny(f, stopping) {
			continue
		}
		for name, old := range stopping {
			if !overlaps(f, old.cfg) || closedFw[name] {
				continue
			}
			old.fw.Close()
			closedFw[name] = true
			undo = append(undo, func() {
				fe, err := d.bindForward(old.cfg)
				if err != nil {
					delete(d.forwards, name)
					d.log.Error("restoring a forward failed", "forward", name, "err", err)
					return
				}
				fe.spec = old.spec
				d.forwards[name] = fe
			})
		}
		fe, err := d.bindForward(f)
		if err != nil {
			return fail(&stepError{item: "forward " + f.Name(), err: err})
		}
		pr.forwards = append(pr.forwards, fe)
	}
	closedAtt := map[string]bool{}
	for _, it := range p.attUp {
		if _, ok := pr.atts[it.key]; ok {
			continue
		}
		old := d.attachments[it.key]
		oldItem := it
		oldItem.cfg = old.cfg
		d.removeAttachmentLocked(it.key)
		closedAtt[it.key] = true
		undo = append(undo, func() {
			o, err := it.kind.open(d, oldItem.cfg)
			if err == nil {
				err = d.attachLocked(oldItem, o)
			}
			if err != nil {
				d.log.Error("restoring an attachment failed", "what", it.key, "err", err)
				return
			}
			d.log.Info("reopened with the running config", "what", it.key)
		})
		o, err := it.kind.open(d, it.cfg)
		if err != nil {
			return fail(attError(it, err))
		}
		pr.atts[it.key] = o
	}
	for _, name := range p.nsRoutes {
		e, w := d.namespaces[name], wantNS[name]
		if err := d.setRoutes(e, e.cfg.Routes, w.Routes); err != nil {
			return fail(&stepError{item: fmt.Sprintf("namespace %q", name), err: fmt.Errorf("namespace %q: %w", name, err)})
		}
		undo = append(undo, func() { d.setRoutes(e, w.Routes, e.cfg.Routes) })
	}
	for _, name := range p.nsServices {
		e, w := d.namespaces[name], wantNS[name]
		old := e.cfg
		restart := func(to config.Namespace) error {
			for _, s := range e.services {
				s.Close()
			}
			e.services, e.dhcp, e.dns, e.iperf = nil, nil, nil, nil
			return d.startServices(e, to)
		}
		undo = append(undo, func() {
			if err := restart(old); err != nil {
				d.log.Error("restoring services failed", "namespace", name, "err", err)
			}
		})
		if err := restart(w); err != nil {
			return fail(&stepError{item: fmt.Sprintf("namespace %q services", name), err: err})
		}
	}

	// Stage 2: nothing outside vnetd can fail from here on.
	d.impairs.setConfig(c)
	var errs []error
	for _, s := range p.fwDown {
		e := d.forwards[s.name]
		if !closedFw[s.name] {
			e.fw.Close()
		}
		delete(d.forwards, s.name)
		if s.reason != "" {
			d.log.Warn("runtime forward removed by the reload", "forward", s.name, "reason", s.reason)
		} else {
			d.log.Info("forward removed", "forward", s.name)
		}
	}
	for _, name := range p.fwAdopt {
		d.forwards[name].spec = nil
		d.log.Info("runtime forward is now the config's", "forward", name)
	}
	for _, w := range p.fwChanged {
		e := d.forwards[w.Name()]
		e.fw.SetTarget(w.Target)
		e.fw.SetLimit(max(w.MaxConns, w.MaxFlows))
		e.fw.SetUDPIdle(w.UDPIdle)
		e.ns.Store(&w.Namespace)
		e.cfg = w
		d.log.Info("forward changed", "forward", w.Name(), "namespace", w.Namespace, "target", w.Target)
	}
	for _, fe := range pr.forwards {
		d.recordForwardLocked(fe)
	}
	pr.forwards = nil

	for _, name := range p.nsDown {
		d.removeNamespaceLocked(name)
	}
	for _, key := range p.attDown {
		if !closedAtt[key] {
			d.removeAttachmentLocked(key)
		}
	}
	for _, name := range p.swDown {
		d.switches[name].sw.Close()
		delete(d.switches, name)
		d.log.Info("switch removed", "switch", name)
	}
	for _, s := range p.swUp {
		sw := l2switch.New(l2switch.Config{Name: s.Name, MACAging: s.MACAging, MaxMACs: s.MaxMACs, PortMaxMACs: s.PortMaxMACs, PortMaxMACsLearnOnly: s.PortMaxMACsLearnOnly, Logger: d.log.With("switch", s.Name),
			Ring: l2switch.RingConfig{Bytes: s.CaptureRingBytes, MaxAge: time.Duration(s.CaptureRingSeconds) * time.Second}})
		d.switches[s.Name] = &swEntry{cfg: s, sw: sw}
		d.log.Info("switch up", "switch", s.Name)
	}
	for _, it := range p.attUp {
		o := pr.atts[it.key]
		delete(pr.atts, it.key)
		if err := d.attachLocked(it, o); err != nil {
			errs = append(errs, err)
		}
	}
	for _, x := range p.attRemotes {
		if err := d.updateVXLANLocked(x); err != nil {
			errs = append(errs, err)
		}
	}
	for name, e := range d.namespaces {
		e.cfg = wantNS[name]
	}
	for _, name := range p.nsRoutes {
		d.log.Info("routes changed", "namespace", name)
	}
	for _, name := range p.nsServices {
		d.log.Info("services changed", "namespace", name)
	}
	var added []string
	for _, n := range p.nsUp {
		b := pr.namespaces[n.Name]
		delete(pr.namespaces, n.Name)
		errs = append(errs, d.attachNamespaceLocked(b))
		added = append(added, n.Name)
	}
	d.connectPairsLocked(added)
	errs = append(errs, d.connectLegsLocked(p))
	return true, errors.Join(errs...)
}

// setRoutes replaces the routes from with to in e's stack. On error the routes from
// are back.
func (d *Daemon) setRoutes(e *nsEntry, from, to []config.Route) error {
	for _, r := range from {
		e.ns.RemoveRoute(nsRoute(r))
	}
	for i, r := range to {
		if err := e.ns.AddRoute(nsRoute(r)); err != nil {
			for _, r := range to[:i] {
				e.ns.RemoveRoute(nsRoute(r))
			}
			for _, r := range from {
				e.ns.AddRoute(nsRoute(r))
			}
			return err
		}
	}
	return nil
}

// connectPairsLocked starts the pass-through pairs of the namespaces just added
// (prepareLocked checked both ends exist).
func (d *Daemon) connectPairsLocked(added []string) {
	for _, name := range added {
		e := d.namespaces[name]
		if e == nil {
			continue
		}
		for _, n := range e.cfg.NICs {
			if n.PeerNamespace == "" || n.PeerNamespace+"\x00"+n.PeerNIC < name+"\x00"+n.Name && contains(added, n.PeerNamespace) {
				continue
			}
			other := d.namespaces[n.PeerNamespace]
			if other == nil {
				continue
			}
			a, _ := e.ns.NIC(n.Name)
			b, ok := other.ns.NIC(n.PeerNIC)
			if !ok {
				continue
			}
			stop := nsstack.Connect(d.wrapPairEnd(name, n.Name, a, nicPolicy(n)), d.wrapPairEnd(n.PeerNamespace, n.PeerNIC, b, peerPolicy(other.cfg, n.PeerNIC)))
			d.pairLinks(name+":"+n.Name, n.PeerNamespace+":"+n.PeerNIC)
			if d.pairs == nil {
				d.pairs = map[string]func(){}
			}
			d.pairs[pairKey(name, n.Name, n.PeerNamespace, n.PeerNIC)] = stop
			e.peers = append(e.peers, stop)
			other.peers = append(other.peers, stop)
		}
	}
}
