package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/vnetd/vnetd/portsec"
)

// TestProxyARPThroughPortSecurity: namespace a on lan0 has 10.0.0.2/16 and no route,
// so it ARPs for 10.0.1.10 (gamma, behind router r1 on lan1). r1.lan0 has proxy_arp:
// it answers with its own MAC, the reply passes the leg's port security (without the
// proxy_arp case in routerLegPolicy it is dropped as arp_spoof) and the ping across
// works.
func TestProxyARPThroughPortSecurity(t *testing.T) {
	const lab = `
[[switch]]
name = "lan0"
[[switch]]
name = "lan1"
[[namespace]]
name = "a"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.2/16"]
[[namespace]]
name = "gamma"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan1"
  addresses = ["10.0.1.10/24"]
  [[namespace.route]]
  to = "0.0.0.0/0"
  via = "10.0.1.1"
[[router]]
name = "r1"
  [[router.interface]]
  switch = "lan0"
  addresses = ["10.0.0.1/24"]
  proxy_arp = true
  [[router.interface]]
  switch = "lan1"
  addresses = ["10.0.1.1/24"]
`
	c := parse(t, lab)
	if !c.Routers[0].Interfaces[0].ProxyARP || c.Routers[0].Interfaces[1].ProxyARP {
		t.Fatalf("proxy_arp parsed as %v, %v; want true, false", c.Routers[0].Interfaces[0].ProxyARP, c.Routers[0].Interfaces[1].ProxyARP)
	}
	d := New(Options{Logger: quiet()})
	defer d.Close()
	if err := d.Apply(c); err != nil {
		t.Fatalf("Apply = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got PingResult
	if err := d.Ping(ctx, "a", mustAddr("10.0.1.10"), 1, 3*time.Second, func(r PingResult) { got = r }); err != nil {
		t.Fatal(err)
	}
	if got.Error != "" {
		t.Errorf("Ping(a -> gamma via proxy ARP) = %s", got.Error)
	}
	if n, want := neighbour(t, d, "a", mustAddr("10.0.1.10")), c.Routers[0].Interfaces[0].MAC.String(); n != want {
		t.Errorf("a's neighbour 10.0.1.10 = %q, want r1.lan0's MAC %s", n, want)
	}
	l := waitLink(t, d, "lan0/r1.lan0", "link", func(LinkStatus) bool { return true })
	if n := l.Status.Drops[portsec.DropARP]; n != 0 {
		t.Errorf("r1.lan0 arp_spoof drops = %d, want 0", n)
	}
}
