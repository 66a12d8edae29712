package daemon

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// vxlanTrunkLab: two switches joined by two trunk tunnels (VLANs 10 and 20) on
// 127.0.0.1 and 127.0.0.2, a namespace per VLAN on each switch. %d is the UDP port.
const vxlanTrunkLab = `
[[switch]]
name = "lan0"
[[switch]]
name = "lan1"
[[namespace]]
name = "a10"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  vlan = 10
  mtu = 1400
  addresses = ["10.10.0.1/24"]
[[namespace]]
name = "a20"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  vlan = 20
  mtu = 1400
  addresses = ["10.20.0.1/24"]
[[namespace]]
name = "b10"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan1"
  vlan = 10
  mtu = 1400
  addresses = ["10.10.0.2/24"]
[[namespace]]
name = "b20"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan1"
  vlan = 20
  mtu = 1400
  addresses = ["10.20.0.2/24"]
[[vxlan]]
name = "t0"
switch = "lan0"
local = "127.0.0.1:%[1]d"
dstport = %[1]d
vni = 42
remotes = ["127.0.0.2"]
trunk = [10, 20]
[[vxlan]]
name = "t1"
switch = "lan1"
local = "127.0.0.2:%[1]d"
dstport = %[1]d
vni = 42
remotes = ["127.0.0.1"]
trunk = [10, 20]
`

// TestVXLANTrunk: tunnels with trunk = [10, 20] carry both VLANs tagged: the VLAN 10
// namespaces ping each other across, and so do the VLAN 20 ones (with an access
// tunnel neither VLAN reaches it).
func TestVXLANTrunk(t *testing.T) {
	d := New(Options{Logger: quiet()})
	defer d.Close()
	if err := d.Apply(parse(t, fmt.Sprintf(vxlanTrunkLab, udpPort(t)))); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, tc := range []struct{ from, to string }{{"a10", "10.10.0.2"}, {"a20", "10.20.0.2"}} {
		ok := false
		for range 5 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			d.Ping(ctx, tc.from, mustAddr(tc.to), 1, 0, func(r PingResult) { ok = r.Error == "" })
			cancel()
			if ok {
				break
			}
		}
		if !ok {
			t.Errorf("%s cannot ping %s over the trunk tunnel", tc.from, tc.to)
		}
	}
}
