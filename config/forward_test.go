package config

import (
	"strings"
	"testing"
	"time"
)

const forwardLab = `
[[switch]]
name = "lan0"
[[namespace]]
name = "a"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.2/24", "fd00::2/64"]
`

// TestForwardLimits: max_conns, max_flows and udp_idle get their defaults per
// protocol, take explicit values, and are refused on the wrong protocol or out of
// range, at the key's position.
func TestForwardLimits(t *testing.T) {
	c, err := Parse("t.toml", []byte(forwardLab+`
[[forward]]
listen = "127.0.0.1:8080"
namespace = "a"
target = "10.0.0.2:80"
[[forward]]
listen = "[::1]:5353"
namespace = "a"
target = "[fd00::2]:53"
protocol = "udp"
[[forward]]
listen = "127.0.0.1:8081"
namespace = "a"
target = "10.0.0.2:81"
max_conns = 10
[[forward]]
listen = "127.0.0.1:5354"
namespace = "a"
target = "10.0.0.2:53"
protocol = "udp"
max_flows = 20
udp_idle = "5s"
`))
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	want := []Forward{
		{MaxConns: DefaultForwardMaxConns},
		{MaxFlows: DefaultForwardMaxFlows, UDPIdle: DefaultForwardUDPIdle},
		{MaxConns: 10},
		{MaxFlows: 20, UDPIdle: 5 * time.Second},
	}
	for i, w := range want {
		f := c.Forwards[i]
		if f.MaxConns != w.MaxConns || f.MaxFlows != w.MaxFlows || f.UDPIdle != w.UDPIdle {
			t.Errorf("forward %d (%s): max_conns %d max_flows %d udp_idle %s, want %d %d %s", i, f.Name(), f.MaxConns, f.MaxFlows, f.UDPIdle, w.MaxConns, w.MaxFlows, w.UDPIdle)
		}
	}
	if got := c.Forwards[1].Name(); got != "udp/[::1]:5353" {
		t.Errorf("IPv6 forward Name() = %q, want udp/[::1]:5353", got)
	}

	bad := []struct{ src, want string }{
		{"listen = \"127.0.0.1:8080\"\nnamespace = \"a\"\ntarget = \"10.0.0.2:80\"\nmax_flows = 5", `t.toml:14:1: max_flows applies to udp forwards; this one is tcp`},
		{"listen = \"127.0.0.1:8080\"\nnamespace = \"a\"\ntarget = \"10.0.0.2:80\"\nprotocol = \"udp\"\nmax_conns = 5", `t.toml:15:1: max_conns applies to tcp forwards; this one is udp`},
		{"listen = \"127.0.0.1:8080\"\nnamespace = \"a\"\ntarget = \"10.0.0.2:80\"\nmax_conns = 0", `t.toml:14:1: max_conns 0 out of range 1-1048576`},
		{"listen = \"127.0.0.1:8080\"\nnamespace = \"a\"\ntarget = \"10.0.0.2:80\"\nudp_idle = \"5s\"", `t.toml:14:1: udp_idle applies to udp forwards; this one is tcp`},
		{"listen = \"127.0.0.1:8080\"\nnamespace = \"a\"\ntarget = \"10.0.0.2:80\"\nprotocol = \"udp\"\nudp_idle = \"10ms\"", `t.toml:15:1: udp_idle 10ms is shorter than 1s`},
	}
	for _, b := range bad {
		_, err := Parse("t.toml", []byte(forwardLab+"[[forward]]\n"+b.src+"\n"))
		if err == nil || err.Error() != b.want {
			t.Errorf("Parse(%q) = %v, want %s", b.src, err, b.want)
		}
	}
}

// TestCheckForward: a forward given at run time passes or fails exactly as the same
// [[forward]] in the file would, against the running forwards too.
func TestCheckForward(t *testing.T) {
	c, err := Parse("t.toml", []byte(forwardLab+"[[forward]]\nlisten = \"127.0.0.1:8080\"\nnamespace = \"a\"\ntarget = \"10.0.0.2:80\"\n"))
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	n := func(i int) *int { return &i }
	tests := []struct {
		spec ForwardSpec
		want string // "" ok, else a substring of the error
	}{
		{ForwardSpec{Listen: "[::1]:8080", Namespace: "a", Target: "[fd00::2]:80"}, ""},
		{ForwardSpec{Listen: "127.0.0.1:5353", Namespace: "a", Target: "10.0.0.2:53", Protocol: "udp", MaxFlows: n(8)}, ""},
		{ForwardSpec{Listen: "127.0.0.1:8080", Namespace: "a", Target: "10.0.0.2:80"}, "duplicate forward tcp/127.0.0.1:8080"},
		{ForwardSpec{Listen: "127.0.0.1:8081", Namespace: "zz", Target: "10.0.0.2:80"}, `namespace "zz" is not defined`},
		{ForwardSpec{Listen: "127.0.0.1:8081", Namespace: "a", Target: "192.168.9.9:80"}, "not reachable from namespace"},
		{ForwardSpec{Listen: "localhost:80", Namespace: "a", Target: "10.0.0.2:80"}, `listen "localhost:80": want HOST:PORT`},
		{ForwardSpec{Listen: "127.0.0.1:8081", Namespace: "a", Target: "10.0.0.2:80", Protocol: "sctp"}, `protocol "sctp"`},
		{ForwardSpec{Listen: "127.0.0.1:8081", Namespace: "a", Target: "10.0.0.2:80", MaxFlows: n(3)}, "max_flows applies to udp forwards"},
	}
	for _, tt := range tests {
		f, err := CheckForward(c, tt.spec, c.Forwards)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckForward(%+v) = %v, want ok", tt.spec, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckForward(%+v) = %v, want an error containing %q", tt.spec, err, tt.want)
		case tt.want == "" && f.Listen.String() != tt.spec.Listen:
			t.Errorf("CheckForward(%+v).Listen = %s", tt.spec, f.Listen)
		}
	}
}
