package daemon

import (
	"reflect"
	"sort"

	"github.com/vnetd/vnetd/config"
)

// running is what a reload starts from, as config values: the switches, namespaces,
// attachments and forwards that are up now. It is not the previous config: a forward
// may have been added or removed at run time, a tunnel's remotes updated, a first
// start may have failed.
type running struct {
	switches    map[string]config.Switch
	namespaces  map[string]config.Namespace
	attachments map[string]any // by attachment key ("tap:NAME", ...), as attKinds
	forwards    map[string]runningForward
}

// runningForward is a running forward and, for one added at run time, its request.
type runningForward struct {
	cfg  config.Forward
	spec *config.ForwardSpec // nil for the config's
}

// plan is what a reload changes, computed by planChanges without touching anything.
// Lists are in the order the apply step acts on them: names sorted, config items in
// file order.
type plan struct {
	// Switches torn down (removed or changed) and switches started (new or changed).
	swDown []string
	swUp   []config.Switch
	// Namespaces torn down (removed, NICs changed, on a changed switch, or peered with
	// one torn down) and built (new or torn down and kept in c), in file order.
	nsDown []string
	nsUp   []config.Namespace
	// Namespaces kept running whose routes or services change in place.
	nsRoutes   []string
	nsServices []string
	// Attachments torn down (gone, changed, or on a changed switch), started (new or
	// torn down and kept), and tunnels whose only change is their remotes.
	attDown    []string
	attUp      []attItem
	attRemotes []config.VXLAN
	// Forwards: stopped (gone from c, or runtime ones c overlaps or no longer
	// admits, with the reason), adopted (a runtime forward c now has), changed in
	// place (target, limits, namespace) and started.
	fwDown    []fwStop
	fwAdopt   []string
	fwChanged []config.Forward
	fwUp      []config.Forward
}

// fwStop is a forward a reload stops; reason is "" for a config forward c dropped.
type fwStop struct {
	name   string
	reason string
}

// change is one line of a plan, for tests and logs.
func (p plan) changes() []string {
	var out []string
	add := func(verb string, names ...string) {
		for _, n := range names {
			out = append(out, verb+" "+n)
		}
	}
	for _, f := range p.fwDown {
		add("stop forward", f.name)
	}
	add("adopt forward", p.fwAdopt...)
	for _, f := range p.fwChanged {
		add("change forward", f.Name())
	}
	for _, f := range p.fwUp {
		add("start forward", f.Name())
	}
	add("remove namespace", p.nsDown...)
	add("remove", p.attDown...)
	add("remove switch", p.swDown...)
	for _, s := range p.swUp {
		add("add switch", s.Name)
	}
	for _, a := range p.attUp {
		add("add", a.key)
	}
	for _, x := range p.attRemotes {
		add("update remotes", x.Key())
	}
	add("change routes", p.nsRoutes...)
	add("change services", p.nsServices...)
	for _, n := range p.nsUp {
		add("add namespace", n.Name)
	}
	return out
}

// planChanges computes what it takes to go from cur to c. It does no I/O.
func planChanges(cur running, c *config.Config) plan {
	var p plan
	wantSw := map[string]config.Switch{}
	for _, s := range c.Switches {
		wantSw[s.Name] = s
	}
	wantNS := map[string]config.Namespace{}
	for _, n := range c.Namespaces {
		wantNS[n.Name] = n
	}

	rebuildSw := map[string]bool{}
	for name, s := range cur.switches {
		if w, ok := wantSw[name]; !ok || w != s {
			rebuildSw[name] = true
			p.swDown = append(p.swDown, name)
		}
	}
	sort.Strings(p.swDown)
	for _, s := range c.Switches {
		if _, ok := cur.switches[s.Name]; !ok || rebuildSw[s.Name] {
			p.swUp = append(p.swUp, s)
		}
	}

	down := map[string]bool{}
	for name, n := range cur.namespaces {
		w, ok := wantNS[name]
		if !ok || !reflect.DeepEqual(w.NICs, n.NICs) {
			down[name] = true
		}
		for _, nic := range n.NICs {
			if rebuildSw[nic.Switch] {
				down[name] = true
			}
		}
	}
	want := attItems(c)
	wantByKey := map[string]any{}
	for _, a := range want {
		wantByKey[a.key] = a.cfg
	}
	attDown := map[string]bool{}
	for key, cfg := range cur.attachments {
		w, ok := wantByKey[key]
		onRebuilt := false
		for _, s := range attSwitches(cfg) {
			onRebuilt = onRebuilt || rebuildSw[s]
		}
		if ok && !onRebuilt && reflect.DeepEqual(w, cfg) {
			continue
		}
		if ok && !onRebuilt && remotesOnly(cfg, w) {
			p.attRemotes = append(p.attRemotes, w.(config.VXLAN))
			continue
		}
		attDown[key] = true
	}
	// A namespace torn down takes its pass-through peers with it, and a router and the
	// namespaces its legs reach (in the running lab or in c) are rebuilt together.
	for changed := true; changed; {
		changed = false
		for name, n := range cur.namespaces {
			if down[name] {
				continue
			}
			for _, nic := range n.NICs {
				if nic.PeerNamespace != "" && down[nic.PeerNamespace] || nic.PeerRouter != "" && attDown["router:"+nic.PeerRouter] {
					down[name], changed = true, true
				}
			}
		}
		for _, a := range want {
			r, ok := a.cfg.(config.Router)
			if !ok {
				continue
			}
			_, running := cur.attachments[a.key]
			for _, ifc := range r.Interfaces {
				if !ifc.L3Leg() {
					continue
				}
				_, nsRunning := cur.namespaces[ifc.PeerNamespace]
				if (!running || attDown[a.key]) && nsRunning && !down[ifc.PeerNamespace] {
					down[ifc.PeerNamespace], changed = true, true
				}
				if (!nsRunning || down[ifc.PeerNamespace]) && running && !attDown[a.key] {
					attDown[a.key], changed = true, true
				}
			}
		}
	}
	for name := range down {
		p.nsDown = append(p.nsDown, name)
	}
	sort.Strings(p.nsDown)
	for _, n := range c.Namespaces {
		old, ok := cur.namespaces[n.Name]
		switch {
		case !ok || down[n.Name]:
			p.nsUp = append(p.nsUp, n)
		default:
			if !reflect.DeepEqual(n.Routes, old.Routes) {
				p.nsRoutes = append(p.nsRoutes, n.Name)
			}
			if !reflect.DeepEqual(n.Services, old.Services) {
				p.nsServices = append(p.nsServices, n.Name)
			}
		}
	}

	for key := range attDown {
		p.attDown = append(p.attDown, key)
	}
	sort.Strings(p.attDown)
	sort.Slice(p.attRemotes, func(i, j int) bool { return p.attRemotes[i].Name < p.attRemotes[j].Name })
	for _, a := range want {
		if _, ok := cur.attachments[a.key]; !ok || attDown[a.key] {
			p.attUp = append(p.attUp, a)
		}
	}

	planForwards(&p, cur.forwards, c)
	return p
}

// remotesOnly reports whether cur and next are the same tunnel but for its remotes,
// a change applied to the running tunnel.
func remotesOnly(cur, next any) bool {
	a, ok1 := cur.(config.VXLAN)
	b, ok2 := next.(config.VXLAN)
	if !ok1 || !ok2 {
		return false
	}
	b.Remotes = a.Remotes
	return reflect.DeepEqual(a, b)
}

// planForwards decides the forwards. A runtime forward whose name (protocol and
// listen address) c now has becomes that config forward (its listener kept, its
// target and limits c's); one whose listen address overlaps a forward of c (same
// protocol and port, one of the two the wildcard address) or that no longer passes
// the checks against c (its namespace gone, its target unreachable) is stopped; the
// rest keep running unchanged.
func planForwards(p *plan, cur map[string]runningForward, c *config.Config) {
	want := map[string]config.Forward{}
	for _, f := range c.Forwards {
		want[f.Name()] = f
	}
	var names []string
	for name := range cur {
		names = append(names, name)
	}
	sort.Strings(names)
	kept := append([]config.Forward(nil), c.Forwards...)
	for _, name := range names {
		e := cur[name]
		w, inC := want[name]
		switch {
		case inC:
			if e.spec != nil {
				p.fwAdopt = append(p.fwAdopt, name)
			}
			if w != e.cfg {
				p.fwChanged = append(p.fwChanged, w)
			}
		case e.spec == nil:
			p.fwDown = append(p.fwDown, fwStop{name: name})
		default:
			reason := ""
			for _, f := range c.Forwards {
				if overlaps(f, e.cfg) {
					reason = "the config's forward " + f.Name() + " takes its port"
					break
				}
			}
			if reason == "" {
				if _, err := config.CheckForward(c, *e.spec, kept); err != nil {
					reason = err.Error()
				}
			}
			if reason != "" {
				p.fwDown = append(p.fwDown, fwStop{name: name, reason: reason})
				continue
			}
			kept = append(kept, e.cfg)
		}
	}
	for _, f := range c.Forwards {
		if _, ok := cur[f.Name()]; !ok {
			p.fwUp = append(p.fwUp, f)
		}
	}
}

// runningLocked describes what is up now, for planChanges.
func (d *Daemon) runningLocked() running {
	r := running{switches: map[string]config.Switch{}, namespaces: map[string]config.Namespace{},
		attachments: map[string]any{}, forwards: map[string]runningForward{}}
	for name, e := range d.switches {
		r.switches[name] = e.cfg
	}
	for name, e := range d.namespaces {
		r.namespaces[name] = e.cfg
	}
	for key, a := range d.attachments {
		r.attachments[key] = a.cfg
	}
	for name, e := range d.forwards {
		r.forwards[name] = runningForward{cfg: e.cfg, spec: e.spec}
	}
	return r
}
