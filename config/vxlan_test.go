package config

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestVXLANDefaults(t *testing.T) {
	c, err := Parse("t.toml", []byte(`
[[switch]]
name = "lan0"
[[vxlan]]
name = "a"
switch = "lan0"
local = "10.1.0.1"
vni = 42
remotes = ["10.1.0.2"]
[[vxlan]]
name = "b"
switch = "lan0"
local = "fd01::1"
port = 14789
dstport = 14789
vni = 7
underlay_mtu = 9000
vlan = 5
max_macs = 10
mac_aging = "1m"
source_ports = 1
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []VXLAN{
		{Name: "a", Switch: "lan0", Local: netip.MustParseAddrPort("10.1.0.1:4789"), VNI: 42, DstPort: 4789,
			Remotes: []netip.Addr{netip.MustParseAddr("10.1.0.2")}, UnderlayMTU: 1500, MTU: 1450, MaxMACs: 4096, MACAging: 5 * time.Minute, SourcePorts: 4},
		{Name: "b", Switch: "lan0", Local: netip.MustParseAddrPort("[fd01::1]:14789"), VNI: 7, DstPort: 14789,
			UnderlayMTU: 9000, MTU: 8930, VLAN: 5, MaxMACs: 10, MACAging: time.Minute, SourcePorts: 1},
	}
	if !reflect.DeepEqual(c.VXLANs, want) {
		t.Fatalf("VXLANs =\n%+v\nwant\n%+v", c.VXLANs, want)
	}
}
