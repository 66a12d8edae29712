package daemon

import (
	"errors"
	"fmt"

	"github.com/vnetd/vnetd/nsstack"
)

// Router legs to L3 NICs. A [[router.interface]] with peer = "NS:NIC" is not a
// switch port: the router's port for it and the namespace's kind = "l3" NIC are
// joined back to back with nsstack.Connect, as the two NICs of a pass-through pair
// are. The NIC end is wrapped like a pair end (impairment, port security, link state
// under "NS:NIC"); the router end is the router's own. A reload rebuilds the router
// and the namespace together (planChanges): closing either end stops the pumps and
// closes the other end, so neither can outlive the other.

// connectLegsLocked joins the legs of the routers p brings up to their NICs. Both
// ends are new in this reload (planChanges rebuilds them together).
func (d *Daemon) connectLegsLocked(p plan) error {
	var errs []error
	for _, it := range p.attUp {
		a := d.attachments[it.key]
		if a == nil {
			continue
		}
		for k := range a.legs {
			l := &a.legs[k]
			e := d.namespaces[l.ns]
			var err error
			switch {
			case e == nil:
				err = fmt.Errorf("namespace %q is not running", l.ns)
			default:
				nic, ok := e.ns.NIC(l.nic)
				if !ok {
					err = fmt.Errorf("namespace %q has no nic %q", l.ns, l.nic)
					break
				}
				l.stop = nsstack.Connect(l.p, d.wrapPairEnd(l.ns, l.nic, nic, peerPolicy(e.cfg, l.nic)))
				e.peers = append(e.peers, l.stop)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %q: leg %s to %s:%s: %w", it.kind.noun, it.name, l.iface, l.ns, l.nic, err))
			}
		}
	}
	return errors.Join(errs...)
}
