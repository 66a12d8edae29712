package config

import (
	"fmt"
	"testing"
)

// An L3 pair parses with its kind on both ends, and each end routes the peer's
// addresses its own subnets do not hold.
func TestL3Pair(t *testing.T) {
	src := `
[[namespace]]
name = "a"
  [[namespace.nic]]
  name = "v0"
  kind = "l3"
  peer = "b:v0"
  addresses = ["10.0.0.1/32", "192.168.1.1/24", "fd00::1/128"]

[[namespace]]
name = "b"
  [[namespace.nic]]
  name = "v0"
  kind = "l3"
  peer = "a:v0"
  addresses = ["10.0.0.2/32", "192.168.1.2/24", "fd00::2/128"]
  [[namespace.nic]]
  name = "p0"
  peer = "c:p0"

[[namespace]]
name = "c"
  [[namespace.nic]]
  name = "p0"
  peer = "b:p0"
`
	c, err := Parse("t.toml", []byte(src))
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	a, b := c.Namespaces[0].NICs[0], c.Namespaces[1].NICs[0]
	if a.Kind != NICKindL3 || b.Kind != NICKindL3 || c.Namespaces[1].NICs[1].Kind != NICKindL2 {
		t.Fatalf("kinds = %q, %q, %q; want l3, l3, l2", a.Kind, b.Kind, c.Namespaces[1].NICs[1].Kind)
	}
	if got, want := fmt.Sprint(a.PeerRoutes), "[10.0.0.2/32 fd00::2/128]"; got != want {
		t.Errorf("a.v0.PeerRoutes = %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(b.PeerRoutes), "[10.0.0.1/32 fd00::1/128]"; got != want {
		t.Errorf("b.v0.PeerRoutes = %s, want %s", got, want)
	}
	if r := c.Namespaces[1].NICs[1].PeerRoutes; r != nil {
		t.Errorf("b.p0 (l2).PeerRoutes = %v, want none", r)
	}
}

// A router leg and its l3 NIC name each other: the leg gets the NIC's MAC and
// addresses, the NIC the leg's MAC, a route to the leg's address and a default route
// per family it has an address in, unless the namespace routes that default itself.
func TestRouterLeg(t *testing.T) {
	src := `
[[switch]]
name = "lan0"

[[router]]
name = "r1"
  [[router.interface]]
  switch = "lan0"
  addresses = ["10.0.0.1/24"]
  [[router.interface]]
  peer = "a:v0"
  addresses = ["10.9.0.1/32", "fd09::1/128"]
  [[router.interface]]
  name = "legb"
  peer = "b:v0"
  addresses = ["10.9.1.1/24"]

[[namespace]]
name = "a"
  [[namespace.nic]]
  name = "v0"
  kind = "l3"
  peer = "r1:a"
  addresses = ["10.9.0.10/32", "fd09::10/128"]

[[namespace]]
name = "b"
  [[namespace.nic]]
  name = "v0"
  kind = "l3"
  peer = "r1:legb"
  addresses = ["10.9.1.10/24"]
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.20/24"]
  [[namespace.route]]
  to = "0.0.0.0/0"
  via = "10.0.0.1"

# the NIC end of a leg is impaired as a pair end
[[impair]]
namespace = "a"
nic = "v0"
delay = "1ms"
`
	c, err := Parse("t.toml", []byte(src))
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	legA, legB := c.Routers[0].Interfaces[1], c.Routers[0].Interfaces[2]
	a, b := c.Namespaces[0].NICs[0], c.Namespaces[1].NICs[0]
	for _, tc := range []struct {
		name, got, want string
	}{
		{"leg a name (default: the namespace)", legA.Name, "a"},
		{"leg a is a leg", fmt.Sprint(legA.L3Leg(), legA.Switch == "", legA.RA), "true true false"},
		{"leg a peer", legA.PeerNamespace + ":" + legA.PeerNIC, "a:v0"},
		{"leg a peer MAC", legA.PeerMAC.String(), a.MAC.String()},
		{"leg a peer addresses", fmt.Sprint(legA.PeerAddresses), "[10.9.0.10 fd09::10]"},
		{"nic a peer", a.PeerRouter + ":" + a.PeerIface + " " + a.PeerNamespace, "r1:a "},
		{"nic a peer MAC", a.PeerMAC.String(), legA.MAC.String()},
		{"nic a routes", fmt.Sprint(a.PeerRoutes), "[10.9.0.1/32 fd09::1/128 0.0.0.0/0 ::/0]"},
		{"leg b peer addresses", fmt.Sprint(legB.PeerAddresses), "[10.9.1.10]"},
		{"nic b routes (own default, leg on its subnet)", fmt.Sprint(b.PeerRoutes), "[]"},
		{"nic a is a leg, the l2 nic is not", fmt.Sprint(a.L3Leg(), c.Namespaces[1].NICs[1].L3Leg()), "true false"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %s, want %s", tc.name, tc.got, tc.want)
		}
	}
}
