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
