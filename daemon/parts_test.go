package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/frame/frametest"
)

// fakeTAP is one end of a pass-through pair standing in for a host TAP.
type fakeTAP struct {
	*frametest.End
	closed *atomic.Int32 // counts TAPs closed (Close is idempotent; the first call counts)
	once   atomic.Bool
}

func (f *fakeTAP) Close() error {
	if f.once.CompareAndSwap(false, true) {
		f.closed.Add(1)
	}
	return f.End.Close()
}

type fakeRouter struct {
	ports  []frame.Port
	closed *atomic.Int32
}

func (r fakeRouter) Ports() []frame.Port { return r.ports }
func (r fakeRouter) Close() error {
	r.closed.Add(1)
	for _, p := range r.ports {
		p.Close()
	}
	return nil
}

const withParts = `
[[switch]]
name = "lan0"
[[switch]]
name = "lan1"
[[tap]]
name = "t0"
switch = "lan0"
vlan = %d
[[router]]
name = "r1"
  [[router.interface]]
  switch = "lan0"
  addresses = ["10.0.0.1/24"]
  [[router.interface]]
  switch = "lan1"
  addresses = ["10.0.1.1/24"]
`

func TestTAPsAndRoutersAttachReloadAndRollBack(t *testing.T) {
	var opened, closed, routers, routersClosed atomic.Int32
	d := New(Options{
		Logger: quiet(),
		OpenTAP: func(c config.TAP, _ *slog.Logger) (frame.Port, error) {
			opened.Add(1)
			a, _ := frametest.NewPair(frametest.PairOptions{NameA: "tap:" + c.Name})
			return &fakeTAP{End: a, closed: &closed}, nil
		},
		NewRouter: func(c config.Router, _ *slog.Logger) (RouterPorts, error) {
			routers.Add(1)
			var ps []frame.Port
			for _, i := range c.Interfaces {
				a, _ := frametest.NewPair(frametest.PairOptions{NameA: c.Name + "." + i.Name})
				ps = append(ps, a)
			}
			return fakeRouter{ps, &routersClosed}, nil
		},
	})
	defer d.Close()
	if err := d.Apply(parse(t, fmt.Sprintf(withParts, 0))); err != nil {
		t.Fatalf("Apply() = %v", err)
	}
	ports := func(sw int) string {
		var names []string
		for _, p := range d.Status().Switches[sw].Ports {
			names = append(names, p.Name)
		}
		return strings.Join(names, ",")
	}
	if got := ports(0); got != "r1.lan0,tap:t0" {
		t.Errorf("lan0 ports = %q, want r1.lan0,tap:t0", got)
	}
	if got := ports(1); got != "r1.lan1" {
		t.Errorf("lan1 ports = %q, want r1.lan1", got)
	}
	if st := d.Status(); len(st.Routers) != 1 {
		t.Errorf("Status().Routers = %v, want [r1]", st.Routers)
	}

	// Unchanged reload: nothing reopened.
	if err := d.Apply(parse(t, fmt.Sprintf(withParts, 0))); err != nil {
		t.Fatalf("Apply(same) = %v", err)
	}
	if opened.Load() != 1 || routers.Load() != 1 {
		t.Errorf("after an unchanged reload: %d TAP opens, %d router builds; want 1, 1", opened.Load(), routers.Load())
	}
	// The TAP's VLAN changes: only the TAP is rebuilt.
	if err := d.Apply(parse(t, fmt.Sprintf(withParts, 10))); err != nil {
		t.Fatalf("Apply(vlan 10) = %v", err)
	}
	if opened.Load() != 2 || closed.Load() != 1 || routers.Load() != 1 {
		t.Errorf("after a TAP change: %d opens, %d closes, %d router builds; want 2, 1, 1", opened.Load(), closed.Load(), routers.Load())
	}
	// A reload that fails (forward on a busy port) keeps the running TAP and router.
	busy, _ := net.Listen("tcp", "127.0.0.1:0")
	defer busy.Close()
	bad := fmt.Sprintf(withParts, 10) + "[[namespace]]\nname = \"a\"\n  [[namespace.nic]]\n  name = \"eth0\"\n  switch = \"lan0\"\n  addresses = [\"10.0.0.5/24\"]\n" +
		fmt.Sprintf("[[forward]]\nlisten = %q\nnamespace = \"a\"\ntarget = \"10.0.0.5:80\"\n", busy.Addr().String())
	if err := d.Apply(parse(t, bad)); err == nil {
		t.Errorf("Apply(busy forward) = nil, want error")
	}
	if got := ports(0); got != "r1.lan0,tap:t0" {
		t.Errorf("after a rejected reload lan0 ports = %q, want r1.lan0,tap:t0", got)
	}
	d.Close()
	if closed.Load() != opened.Load() || routersClosed.Load() != routers.Load() {
		t.Errorf("after Close: %d of %d TAPs and %d of %d routers closed; want all", closed.Load(), opened.Load(), routersClosed.Load(), routers.Load())
	}
}

func TestFailedStartClosesTAP(t *testing.T) {
	var opened, closed atomic.Int32
	d := New(Options{Logger: quiet(), OpenTAP: func(c config.TAP, _ *slog.Logger) (frame.Port, error) {
		opened.Add(1)
		a, _ := frametest.NewPair(frametest.PairOptions{NameA: "tap:" + c.Name})
		return &fakeTAP{End: a, closed: &closed}, nil
	}, NewRouter: func(config.Router, *slog.Logger) (RouterPorts, error) {
		return nil, fmt.Errorf("no router today")
	}})
	defer d.Close()
	if err := d.Apply(parse(t, fmt.Sprintf(withParts, 0))); err == nil || !strings.Contains(err.Error(), "no router today") {
		t.Fatalf("Apply() = %v, want the router error", err)
	}
	if opened.Load() != 1 || closed.Load() != 1 {
		t.Errorf("after a failed start: %d TAPs opened, %d closed; want 1, 1", opened.Load(), closed.Load())
	}
}

func TestHostInterfacesAttachAndFailCleanly(t *testing.T) {
	var opened, closed atomic.Int32
	var ring atomic.Bool
	open := func(c config.HostInterface, _ *slog.Logger) (frame.Port, error) {
		if c.Name == "missing0" {
			return nil, fmt.Errorf("open %s: no such interface", c.Name)
		}
		opened.Add(1)
		ring.Store(c.Ring)
		a, _ := frametest.NewPair(frametest.PairOptions{NameA: "hostif:" + c.Name})
		return &fakeTAP{End: a, closed: &closed}, nil
	}
	d := New(Options{Logger: quiet(), OpenHostInterface: open})
	defer d.Close()
	src := "[[switch]]\nname = \"lan0\"\n[[host_interface]]\nname = \"vnet7\"\nswitch = \"lan0\"\nvlan = 5\nring = true\n"
	if err := d.Apply(parse(t, src)); err != nil {
		t.Fatalf("Apply() = %v", err)
	}
	if !ring.Load() {
		t.Errorf("ring = true did not reach the host interface's options")
	}
	ps := d.Status().Switches[0].Ports
	if len(ps) != 1 || ps[0].Name != "hostif:vnet7" || ps[0].VLAN != 5 {
		t.Errorf("lan0 ports = %+v, want hostif:vnet7 on VLAN 5", ps)
	}
	// A reload naming a missing interface fails, names it, and keeps vnet7 running.
	err := d.Apply(parse(t, src+"[[host_interface]]\nname = \"missing0\"\nswitch = \"lan0\"\n"))
	if err == nil || !strings.Contains(err.Error(), `host_interface "missing0"`) || !strings.Contains(err.Error(), "no such interface") {
		t.Errorf("Apply(missing interface) = %v", err)
	}
	if ps := d.Status().Switches[0].Ports; len(ps) != 1 || ps[0].Name != "hostif:vnet7" {
		t.Errorf("after the failed reload lan0 ports = %+v, want hostif:vnet7 only", ps)
	}
	d.Close()
	if opened.Load() != closed.Load() {
		t.Errorf("%d host interfaces opened, %d closed", opened.Load(), closed.Load())
	}
}
