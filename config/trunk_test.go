package config

import (
	"slices"
	"testing"
)

// TestTrunkNative: trunk and native parse on [[tap]], [[host_interface]], [[vxlan]]
// and [[socket]] (every VM port of the socket), vlan on [[socket]] too.
func TestTrunkNative(t *testing.T) {
	c, err := Parse("t.toml", []byte(`
[[switch]]
name = "lan0"
[[tap]]
name = "t0"
switch = "lan0"
trunk = [10, 20]
native = 30
[[host_interface]]
name = "h0"
switch = "lan0"
trunk = [10]
native = 10
[[vxlan]]
name = "x0"
switch = "lan0"
local = "192.0.2.1"
vni = 1
trunk = [100, 200]
[[socket]]
path = "/tmp/vnetd-trunk-test-t.sock"
switch = "lan0"
trunk = [10, 20]
native = 30
[[socket]]
path = "/tmp/vnetd-trunk-test-v.sock"
switch = "lan0"
vlan = 20
`))
	if err != nil {
		t.Fatal(err)
	}
	if tp := c.TAPs[0]; !slices.Equal(tp.Trunk, []uint16{10, 20}) || tp.Native != 30 {
		t.Errorf("tap trunk %v native %d, want [10 20] 30", tp.Trunk, tp.Native)
	}
	if h := c.HostInterfaces[0]; !slices.Equal(h.Trunk, []uint16{10}) || h.Native != 10 {
		t.Errorf("host_interface trunk %v native %d, want [10] 10", h.Trunk, h.Native)
	}
	if s := c.Sockets[0]; !slices.Equal(s.Trunk, []uint16{10, 20}) || s.Native != 30 || c.Sockets[1].VLAN != 20 {
		t.Errorf("socket trunk %v native %d, vlan %d; want [10 20] 30, 20", s.Trunk, s.Native, c.Sockets[1].VLAN)
	}
	if x := c.VXLANs[0]; !slices.Equal(x.Trunk, []uint16{100, 200}) || x.Native != 0 {
		t.Errorf("vxlan trunk %v native %d, want [100 200] 0", x.Trunk, x.Native)
	}
}
