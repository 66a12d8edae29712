package daemon

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/impair"
	"github.com/vnetd/vnetd/portsec"
)

// impairs is the registry of impairable ports: every switch port and pass-through pair
// end is wrapped (with nothing set) when it is attached, so an impairment can be set
// at any time without re-attaching it.
type impairs struct {
	mu    sync.Mutex
	ports map[string]*impairedPort   // by config.Impair.Target()
	want  map[string][]config.Impair // the config's [[impair]] entries by target
}

type impairedPort struct {
	sw, port, ns, nic string
	p                 *impair.Port
}

// ImpairStatus is one impairable port with an impairment set or counted.
type ImpairStatus struct {
	Target    string        `json:"target"`
	Switch    string        `json:"switch,omitempty"`
	Port      string        `json:"port,omitempty"`
	Namespace string        `json:"namespace,omitempty"`
	NIC       string        `json:"nic,omitempty"`
	In        string        `json:"in"`  // the In parameters in tc-netem's words, "" for none
	Out       string        `json:"out"` // the same for Out
	Status    impair.Status `json:"status"`
}

// ErrInvalidImpair wraps an impairment request that fails the config's checks.
var ErrInvalidImpair = errors.New("invalid impairment")

// ErrNoPort is returned for an impairment of a port that is not attached.
var ErrNoPort = errors.New("no such port")

// wrap wraps p, attached as target, applying the config's parameters for it.
func (im *impairs) wrap(target string, ip impairedPort, p frame.Port) frame.Port {
	e := &ip
	e.p = impair.Wrap(p, impair.Options{OnClose: func() {
		im.mu.Lock()
		if im.ports[target] == e {
			delete(im.ports, target)
		}
		im.mu.Unlock()
	}})
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.ports == nil {
		im.ports = map[string]*impairedPort{}
	}
	for _, c := range im.want[target] {
		e.p.Set(c.Direction, c.Params) // validated with the config
	}
	im.ports[target] = e
	return e.p.Attach()
}

// forget drops target from the registry: its port was not attached after all.
// (The port's portsec entry goes when the caller closes the port, or with forgetLink.)
func (im *impairs) forget(target string) {
	im.mu.Lock()
	delete(im.ports, target)
	im.mu.Unlock()
}

// wrapSwitchPort wraps a port attached to switch sw as name: port security and link
// state (pol) inside, impairment outside.
func (d *Daemon) wrapSwitchPort(sw, name string, p frame.Port, pol portsec.Policy) frame.Port {
	target := sw + "/" + name
	return d.impairs.wrap(target, impairedPort{sw: sw, port: name}, d.guard(target, linkPort{sw: sw, port: name}, pol, p))
}

// wrapPairEnd wraps the pair end nic of namespace ns, as wrapSwitchPort does.
func (d *Daemon) wrapPairEnd(ns, nic string, p frame.Port, pol portsec.Policy) frame.Port {
	target := ns + ":" + nic
	return d.impairs.wrap(target, impairedPort{ns: ns, nic: nic}, d.guard(target, linkPort{ns: ns, nic: nic}, pol, p))
}

// setConfigImpairs makes the running ports match c's [[impair]] entries where they
// differ from the previous config's: an impairment set at run time on a port the
// config does not touch stays.
func (im *impairs) setConfig(c *config.Config) {
	want := map[string][]config.Impair{}
	if c != nil {
		for _, x := range c.Impairs {
			want[x.Target()] = append(want[x.Target()], x)
		}
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	for target, e := range im.ports {
		if reflect.DeepEqual(want[target], im.want[target]) {
			continue
		}
		e.p.Set(impair.Both, impair.Params{})
		for _, x := range want[target] {
			e.p.Set(x.Direction, x.Params)
		}
	}
	im.want = want
}

// SetImpair sets (or, with no parameters, clears) an impairment at run time. The
// request is checked as an [[impair]] in the running config would be
// (ErrInvalidImpair); its port must be attached now (ErrNoPort). The parameters
// replace those of the directions named.
func (d *Daemon) SetImpair(s config.ImpairSpec) (ImpairStatus, error) {
	d.mu.Lock()
	c := d.cfg
	d.mu.Unlock()
	if c == nil {
		return ImpairStatus{}, errors.New("no lab running")
	}
	x, err := config.CheckImpair(c, s)
	if err != nil {
		return ImpairStatus{}, fmt.Errorf("%w: %v", ErrInvalidImpair, err)
	}
	d.impairs.mu.Lock()
	e := d.impairs.ports[x.Target()]
	d.impairs.mu.Unlock()
	if e == nil {
		return ImpairStatus{}, fmt.Errorf("%w %s", ErrNoPort, x.Target())
	}
	if err := e.p.Set(x.Direction, x.Params); err != nil {
		return ImpairStatus{}, fmt.Errorf("%w: %v", ErrInvalidImpair, err)
	}
	st := e.status(x.Target())
	d.log.Info("impairment set", "target", st.Target, "in", st.In, "out", st.Out)
	return st, nil
}

func (e *impairedPort) status(target string) ImpairStatus {
	st := e.p.Status()
	return ImpairStatus{Target: target, Switch: e.sw, Port: e.port, Namespace: e.ns, NIC: e.nic,
		In: st.In.String(), Out: st.Out.String(), Status: st}
}

// Impairments lists the ports with an impairment set or frames counted, by target.
func (d *Daemon) Impairments() []ImpairStatus {
	d.impairs.mu.Lock()
	defer d.impairs.mu.Unlock()
	out := []ImpairStatus{}
	for target, e := range d.impairs.ports {
		st := e.status(target)
		if st.In == "" && st.Out == "" && st.Status.InStats.Frames == 0 && st.Status.OutStats.Frames == 0 {
			continue
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Target < out[j].Target })
	return out
}
