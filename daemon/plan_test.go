package daemon

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/vnetd/vnetd/config"
)

// runningOf is what a daemon that applied c runs, with the runtime forwards rt.
func runningOf(c *config.Config, rt ...config.ForwardSpec) running {
	r := running{switches: map[string]config.Switch{}, namespaces: map[string]config.Namespace{},
		attachments: map[string]any{}, forwards: map[string]runningForward{}}
	if c == nil {
		return r
	}
	for _, s := range c.Switches {
		r.switches[s.Name] = s
	}
	for _, n := range c.Namespaces {
		r.namespaces[n.Name] = n
	}
	for _, a := range attItems(c) {
		r.attachments[a.key] = a.cfg
	}
	for _, f := range c.Forwards {
		r.forwards[f.Name()] = runningForward{cfg: f}
	}
	for _, s := range rt {
		s := s
		f, err := config.CheckForward(c, s, nil)
		if err != nil {
			panic(fmt.Sprintf("CheckForward(%+v) = %v", s, err))
		}
		r.forwards[f.Name()] = runningForward{cfg: f, spec: &s}
	}
	return r
}

// planLab: switches lan0 and lan1, namespaces a (on lan0) and b, c (a pair), a TAP,
// a tunnel and a router, a forward into a. The %s verbs let a case change one piece.
const planLab = `
[[switch]]
name = "lan0"
%[1]s
[[switch]]
name = "lan1"
[[namespace]]
name = "a"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["%[2]s"]
  %[3]s
  [[namespace.service]]
  kind = "%[4]s"
[[namespace]]
name = "b"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan1"
  addresses = ["10.0.1.20/24"]
  [[namespace.nic]]
  name = "p0"
  peer = "c:p0"
  addresses = ["192.168.5.1/30"]
[[namespace]]
name = "c"
  [[namespace.nic]]
  name = "p0"
  peer = "b:p0"
  addresses = ["%[5]s"]
[[tap]]
name = "t0"
switch = "lan1"
[[vxlan]]
name = "x0"
switch = "lan1"
local = "127.0.0.1:4789"
vni = 7
remotes = [%[6]s]
[[router]]
name = "r1"
  [[router.interface]]
  switch = "lan0"
  addresses = ["10.0.0.1/24"]
  [[router.interface]]
  switch = "lan1"
  addresses = ["10.0.1.1/24"]
[[forward]]
listen = "127.0.0.1:%[7]d"
namespace = "a"
target = "%[8]s"
`

type planArgs struct {
	sw0      string // extra lan0 settings
	addrA    string
	routeA   string
	svcA     string
	addrC    string
	remotes  string
	fwPort   int
	fwTarget string
}

func (p planArgs) src() string {
	return fmt.Sprintf(planLab, p.sw0, p.addrA, p.routeA, p.svcA, p.addrC, p.remotes, p.fwPort, p.fwTarget)
}

var planBase = planArgs{addrA: "10.0.0.10/24", svcA: "http", addrC: "192.168.5.2/30", remotes: `"127.0.0.2"`, fwPort: 8080, fwTarget: "10.0.0.10:80"}

func TestPlanChanges(t *testing.T) {
	base := parse(t, planBase.src())
	noFwSrc := planBase.src()[:strings.Index(planBase.src(), "[[forward]]")]
	noFw := parse(t, noFwSrc)
	with := func(f func(*planArgs)) *config.Config {
		a := planBase
		f(&a)
		return parse(t, a.src())
	}
	tests := []struct {
		name string
		cur  running
		next *config.Config
		want []string
	}{
		{"unchanged", runningOf(base), base, nil},
		{"first start, in bring-up order", runningOf(nil), base, []string{
			"start forward tcp/127.0.0.1:8080",
			"add switch lan0", "add switch lan1",
			"add tap:t0", "add vxlan:x0", "add router:r1",
			"add namespace a", "add namespace b", "add namespace c"}},
		{"everything gone", runningOf(base), &config.Config{}, []string{ // (an empty file is refused by validation)
			"stop forward tcp/127.0.0.1:8080",
			"remove namespace a", "remove namespace b", "remove namespace c",
			"remove router:r1", "remove tap:t0", "remove vxlan:x0",
			"remove switch lan0", "remove switch lan1"}},
		{"a NIC address rebuilds that namespace only", runningOf(base),
			with(func(a *planArgs) { a.addrA = "10.0.0.11/24"; a.fwTarget = "10.0.0.11:80" }), []string{
				"change forward tcp/127.0.0.1:8080", "remove namespace a", "add namespace a"}},
		{"a pair end rebuilds both ends", runningOf(base),
			with(func(a *planArgs) { a.addrC = "192.168.5.3/30" }), []string{
				"remove namespace b", "remove namespace c", "add namespace b", "add namespace c"}},
		{"a switch setting rebuilds the switch and all on it", runningOf(base),
			with(func(a *planArgs) { a.sw0 = "mac_aging = \"1m\"" }), []string{
				"remove namespace a", "remove router:r1", "remove switch lan0",
				"add switch lan0", "add router:r1", "add namespace a"}},
		{"routes change in place", runningOf(base),
			with(func(a *planArgs) {
				a.routeA = "[[namespace.route]]\n  to = \"10.9.0.0/16\"\n  via = \"10.0.0.1\""
			}), []string{"change routes a"}},
		{"services change in place", runningOf(base),
			with(func(a *planArgs) { a.svcA = "echo" }), []string{"change services a"}},
		{"tunnel remotes update in place", runningOf(base),
			with(func(a *planArgs) { a.remotes = `"127.0.0.2", "127.0.0.3"` }), []string{"update remotes vxlan:x0"}},
		{"a new forward port: old stopped, new started", runningOf(base),
			with(func(a *planArgs) { a.fwPort = 8081 }), []string{
				"stop forward tcp/127.0.0.1:8080", "start forward tcp/127.0.0.1:8081"}},
		{"a runtime forward the config now has is adopted", runningOf(noFw,
			config.ForwardSpec{Listen: "127.0.0.1:8080", Namespace: "a", Target: "10.0.0.10:80"}), base, []string{
			"adopt forward tcp/127.0.0.1:8080"}},
		{"a runtime forward the config overlaps is stopped", runningOf(base,
			config.ForwardSpec{Listen: "127.0.0.1:9000", Namespace: "a", Target: "10.0.0.10:80"}),
			parse(t, planBase.src()+"[[forward]]\nlisten = \"0.0.0.0:9000\"\nnamespace = \"a\"\ntarget = \"10.0.0.10:80\"\n"), []string{
				"stop forward tcp/127.0.0.1:9000", "start forward tcp/0.0.0.0:9000"}},
		{"a runtime forward into a removed namespace is stopped", runningOf(noFw,
			config.ForwardSpec{Listen: "127.0.0.1:9000", Namespace: "a", Target: "10.0.0.10:80"}),
			parse(t, strings.Replace(noFwSrc, `name = "a"`, `name = "z"`, 1)), []string{
				"stop forward tcp/127.0.0.1:9000", "remove namespace a", "add namespace z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := planChanges(tt.cur, tt.next).changes()
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("planChanges().changes() =\n  %q\nwant\n  %q", got, tt.want)
			}
		})
	}
}
