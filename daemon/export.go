package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/dhcpserver"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/nsstack"
	"github.com/vnetd/vnetd/portsec"
)

// Where a namespace comes from, as NamespaceStatus.Origin says (OriginConfig, or
// OriginImported for one `vnetd import` added at run time).
const OriginImported = "imported"

// ExportVersion is the version of the export document this build writes and reads.
const ExportVersion = 1

// Export is a namespace's configuration and dynamic state, as `vnetd export` writes
// it and `vnetd import` reads it.
type Export struct {
	Version   int    `json:"version"`
	Namespace string `json:"namespace"`
	// Exported is when the state was read; lease times are absolute.
	Exported time.Time `json:"exported"`
	// Config is the [[namespace]] table as the config has it (TOML keys).
	Config config.NamespaceSpec `json:"config"`
	State  ExportState          `json:"state"`
	// NotMoved says what an import does not recreate.
	NotMoved []string `json:"not_moved,omitempty"`
}

// ExportState is the dynamic state an import restores.
type ExportState struct {
	// Leases are the bindings of the namespace's DHCP services (acknowledged ones;
	// offers are not moved).
	Leases []ExportLease `json:"leases"`
	// Neighbors are its ARP and NDP entries; an import adds the resolved ones as
	// permanent entries.
	Neighbors []nsstack.Neighbor `json:"neighbors"`
	// PortSecurity are the DHCP snooping learnings of the ports on the namespace's
	// switches for the leases above, by switch port.
	PortSecurity []ExportLearned `json:"port_security"`
}

// ExportLease is one DHCP binding.
type ExportLease struct {
	NIC     string     `json:"nic"`
	MAC     frame.MAC  `json:"mac"`
	Address netip.Addr `json:"address"`
	Expires time.Time  `json:"expires"`
}

// ExportLearned is what DHCP snooping allows on one switch port.
type ExportLearned struct {
	Switch  string          `json:"switch"`
	Port    string          `json:"port"`
	Learned []portsec.Lease `json:"learned"`
}

// ImportResult is what an import recreated.
type ImportResult struct {
	Namespace string `json:"namespace"`
	Leases    int    `json:"leases"`
	Neighbors int    `json:"neighbors"`
	Learned   int    `json:"learned"`
	// Skipped lists the state not restored, with the reason.
	Skipped []string `json:"skipped,omitempty"`
}

// notMoved is the list an export carries so its reader knows.
var notMoved = []string{
	"open TCP connections and every socket of the namespace (listeners of its services are started afresh)",
	"runtime forwards into it, link impairments and link state (up/down) of its NICs",
	"DHCP offers not yet acknowledged, and ARP/NDP entries not resolved",
	"snooped leases of switch ports the importing daemon does not have under the same name (a VM that reconnects to a socket gets a new port)",
	"counters and capture rings",
}

var (
	// ErrNamespaceExists is Import's error for a name that is running.
	ErrNamespaceExists = config.ErrNamespaceExists
	// ErrInvalidImport wraps an import document that fails the checks.
	ErrInvalidImport = errors.New("invalid import")
)

// Export reads namespace name's configuration and dynamic state.
func (d *Daemon) Export(name string) (Export, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.namespaces[name]
	if e == nil || d.cfg == nil {
		return Export{}, fmt.Errorf("%w %q", ErrNoNamespace, name)
	}
	spec, ok := d.cfg.Spec(name)
	if !ok {
		return Export{}, fmt.Errorf("export %q: the running config does not have its table as written", name)
	}
	x := Export{Version: ExportVersion, Namespace: name, Exported: time.Now().UTC(), Config: spec, NotMoved: notMoved,
		State: ExportState{Leases: []ExportLease{}, Neighbors: []nsstack.Neighbor{}, PortSecurity: []ExportLearned{}}}
	type binding struct {
		mac  frame.MAC
		addr netip.Addr
	}
	held := map[binding]bool{}
	for nic, srv := range e.dhcp {
		for _, l := range srv.Leases() {
			if l.Expires.IsZero() {
				continue // an offer, or a static binding not asked for
			}
			x.State.Leases = append(x.State.Leases, ExportLease{NIC: nic, MAC: l.MAC, Address: l.Addr, Expires: l.Expires.UTC()})
			held[binding{l.MAC, l.Addr}] = true
		}
	}
	sort.Slice(x.State.Leases, func(i, j int) bool { return x.State.Leases[i].Address.Less(x.State.Leases[j].Address) })
	x.State.Neighbors = append(x.State.Neighbors, e.ns.Neighbors()...)
	switches := map[string]bool{}
	for _, n := range e.cfg.NICs {
		if n.Switch != "" {
			switches[n.Switch] = true
		}
	}
	d.links.mu.Lock()
	for _, lp := range d.links.ports {
		if !switches[lp.sw] {
			continue
		}
		var ls []portsec.Lease
		for _, l := range lp.p.Status().Learned {
			if held[binding{l.MAC, l.Addr}] {
				ls = append(ls, l)
			}
		}
		if len(ls) > 0 {
			x.State.PortSecurity = append(x.State.PortSecurity, ExportLearned{Switch: lp.sw, Port: lp.port, Learned: ls})
		}
	}
	d.links.mu.Unlock()
	sort.Slice(x.State.PortSecurity, func(i, j int) bool {
		a, b := x.State.PortSecurity[i], x.State.PortSecurity[j]
		return a.Switch+"/"+a.Port < b.Switch+"/"+b.Port
	})
	return x, nil
}

// Import recreates an exported namespace, named as (x's own name if ""), with its
// DHCP leases, neighbour entries and snooping learnings. Its config is checked as a
// [[namespace]] appended to the running config would be (config.CheckNamespace);
// source names the document in errors. A name that is running is
// ErrNamespaceExists; a document that fails the checks wraps ErrInvalidImport.
// The namespace is a runtime one (Origin "imported"); see importsForLocked for what
// a reload does with it.
func (d *Daemon) Import(x Export, source, as string) (ImportResult, error) {
	if x.Version != ExportVersion {
		return ImportResult{}, fmt.Errorf("%w: %s: $.version: version %d, this build reads %d", ErrInvalidImport, source, x.Version, ExportVersion)
	}
	if x.Config == nil {
		return ImportResult{}, fmt.Errorf("%w: %s: $.config: missing", ErrInvalidImport, source)
	}
	spec := make(config.NamespaceSpec, len(x.Config))
	for k, v := range x.Config {
		spec[k] = v
	}
	if as != "" {
		spec["name"] = as
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.cfg == nil {
		return ImportResult{}, errors.New("import: no lab is running")
	}
	ns, c2, err := config.CheckNamespace(d.cfg, source, spec)
	if err != nil {
		if errors.Is(err, config.ErrNamespaceExists) {
			return ImportResult{}, err
		}
		return ImportResult{}, fmt.Errorf("%w: %w", ErrInvalidImport, err)
	}
	b, err := d.buildNamespace(ns)
	if err != nil {
		return ImportResult{}, err
	}
	if err := d.attachNamespaceLocked(b); err != nil {
		d.removeNamespaceLocked(ns.Name)
		return ImportResult{}, err
	}
	d.connectPairsLocked([]string{ns.Name})
	d.cfg = c2
	d.refreshDNSLocked(c2)
	res := d.restoreLocked(d.namespaces[ns.Name], x.State)
	d.log.Info("namespace imported", "namespace", ns.Name, "from", x.Namespace, "leases", res.Leases, "neighbors", res.Neighbors, "learned", res.Learned, "skipped", len(res.Skipped))
	return res, nil
}

// restoreLocked gives e the state st carried.
func (d *Daemon) restoreLocked(e *nsEntry, st ExportState) ImportResult {
	res := ImportResult{Namespace: e.cfg.Name}
	byNIC := map[string][]dhcpserver.Lease{}
	for _, l := range st.Leases {
		byNIC[l.NIC] = append(byNIC[l.NIC], dhcpserver.Lease{MAC: l.MAC, Addr: l.Address, Expires: l.Expires})
	}
	for nic, ls := range byNIC {
		srv := e.dhcp[nic]
		if srv == nil {
			res.Skipped = append(res.Skipped, fmt.Sprintf("%d leases of nic %q: it serves no dhcp", len(ls), nic))
			continue
		}
		n := srv.Restore(ls)
		res.Leases += n
		if n < len(ls) {
			res.Skipped = append(res.Skipped, fmt.Sprintf("%d leases of nic %q: expired, outside its subnet or its MAC bound already", len(ls)-n, nic))
		}
	}
	for _, nb := range st.Neighbors {
		switch nb.State {
		case "Reachable", "Stale", "Delay", "Probe", "Static":
		default:
			continue // unresolved: nothing to move
		}
		mac, err := frame.ParseMAC(nb.MAC)
		if err == nil {
			err = e.ns.AddNeighbor(nb.NIC, nb.Addr, mac)
		}
		if err != nil {
			res.Skipped = append(res.Skipped, fmt.Sprintf("neighbor %s: %v", nb.Addr, err))
			continue
		}
		res.Neighbors++
	}
	d.links.mu.Lock()
	defer d.links.mu.Unlock()
	for _, pl := range st.PortSecurity {
		lp := d.links.ports[pl.Switch+"/"+pl.Port]
		if lp == nil {
			res.Skipped = append(res.Skipped, fmt.Sprintf("%d snooped leases of port %s/%s: no such port here", len(pl.Learned), pl.Switch, pl.Port))
			continue
		}
		for _, l := range pl.Learned {
			lp.p.Learn(l)
			res.Learned++
		}
	}
	return res
}

// importsForLocked is c (a config being applied by a reload) with the imported
// namespaces kept: one c now has by name becomes the file's (adopted); one that
// still passes the checks against c keeps running unchanged, leases and all; one
// that does not (its switch gone, an address c now gives another part) is removed,
// and the reason logged. logs are the lines to log once the reload is applied.
func (d *Daemon) importsForLocked(c *config.Config) (_ *config.Config, logs []func()) {
	if d.cfg == nil {
		return c, nil
	}
	var names []string
	for _, n := range d.cfg.Namespaces {
		if d.cfg.Imported(n.Name) && d.namespaces[n.Name] != nil {
			names = append(names, n.Name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		spec, _ := d.cfg.Spec(name)
		if _, in := c.Spec(name); in || hasNamespace(c, name) {
			logs = append(logs, func() { d.log.Info("imported namespace is now the config's", "namespace", name) })
			continue
		}
		_, c2, err := config.CheckNamespace(c, "import of "+name, spec)
		if err != nil {
			reason := strings.ReplaceAll(err.Error(), "\n", "; ")
			logs = append(logs, func() { d.log.Warn("imported namespace removed by the reload", "namespace", name, "reason", reason) })
			continue
		}
		c = c2
	}
	return c, logs
}

func hasNamespace(c *config.Config, name string) bool {
	for _, n := range c.Namespaces {
		if n.Name == name {
			return true
		}
	}
	return false
}
