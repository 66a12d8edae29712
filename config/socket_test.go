package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestSocketLimits: the [[socket]] limit keys reach Socket; absent, they stay 0 (the
// listener's defaults).
func TestSocketLimits(t *testing.T) {
	c, err := Parse("t.toml", []byte(`
[[switch]]
name = "lan0"
[[socket]]
path = "/tmp/a.sock"
switch = "lan0"
max_conns = 8
frame_timeout = "2s"
[[socket]]
path = "/tmp/b.sock"
switch = "lan0"
protocol = "dgram"
max_peers = 16
peer_idle = "90s"
[[socket]]
path = "/tmp/c.sock"
switch = "lan0"
`))
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	want := []Socket{
		{Path: "/tmp/a.sock", Switch: "lan0", Protocol: "stream", MaxConns: 8, FrameTimeout: 2 * time.Second, MaxMACs: EdgeMaxMACs},
		{Path: "/tmp/b.sock", Switch: "lan0", Protocol: "dgram", MaxPeers: 16, PeerIdle: 90 * time.Second, MaxMACs: EdgeMaxMACs},
		{Path: "/tmp/c.sock", Switch: "lan0", Protocol: "stream", MaxMACs: EdgeMaxMACs},
	}
	for i, w := range want {
		if !reflect.DeepEqual(c.Sockets[i], w) {
			t.Errorf("Sockets[%d] = %+v, want %+v", i, c.Sockets[i], w)
		}
	}
	if _, err := Parse("t.toml", []byte("[[switch]]\nname = \"lan0\"\n[[socket]]\npath = \"/tmp/a.sock\"\nswitch = \"lan0\"\npeer_idle = \"soon\"\n")); err == nil {
		t.Error("Parse(peer_idle = \"soon\") = nil error, want one")
	} else {
		t.Logf("peer_idle = \"soon\": %v", err)
	}
}

// TestSocketLimitErrors: negative limits, sub-second timeouts and a key on the wrong
// protocol are refused at their position.
func TestSocketLimitErrors(t *testing.T) {
	for _, c := range []struct{ keys, want string }{
		{"max_conns = -1", "t.toml:6:1: max_conns may not be negative"},
		{"frame_timeout = 5", "frame_timeout 5ns: want at least 100ms"},
		{"max_peers = 4", "max_peers applies to dgram sockets only; this one is stream"},
		{"protocol = \"dgram\"\nmax_conns = 4", "max_conns applies to stream sockets only; this one is dgram"},
	} {
		_, err := Parse("t.toml", []byte("[[switch]]\nname = \"lan0\"\n[[socket]]\npath = \"/tmp/a.sock\"\nswitch = \"lan0\"\n"+c.keys+"\n"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Parse() = %v, want an error containing %q", c.keys, err, c.want)
		}
	}
}
