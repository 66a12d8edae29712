package config

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestGolden validates every testdata/*.toml and compares the error listing (or "ok")
// with its .golden file.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("Glob(testdata/*.toml) = %v, %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Load(f)
			got := "ok\n"
			if err != nil {
				got = err.Error() + "\n"
			}
			golden := strings.TrimSuffix(f, ".toml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("ReadFile(%q) = %v (run go test -update)", golden, err)
			}
			if got != string(want) {
				t.Errorf("Load(%q) errors:\n%s\nwant:\n%s", f, got, want)
			}
		})
	}
}

func TestDefaultsAndTypes(t *testing.T) {
	src := `
[[switch]]
name = "lan0"
[[namespace]]
name = "a"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.2/24"]
  [[namespace.route]]
  to = "0.0.0.0/0"
  via = "10.0.0.1"
  [[namespace.service]]
  kind = "echo"
[[forward]]
listen = "127.0.0.1:7007"
namespace = "a"
target = "10.0.0.2:7"
`
	c, err := Parse("t.toml", []byte(src))
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"mac_aging", c.Switches[0].MACAging, 5 * time.Minute},
		{"max_macs", c.Switches[0].MaxMACs, 8192},
		{"mtu", c.Namespaces[0].NICs[0].MTU, 1500},
		{"derived mac", c.Namespaces[0].NICs[0].MAC, frame.LocalMAC("a.eth0")},
		{"address", c.Namespaces[0].NICs[0].Addresses[0], netip.MustParsePrefix("10.0.0.2/24")},
		{"via", c.Namespaces[0].Routes[0].Via, netip.MustParseAddr("10.0.0.1")},
		{"echo port", c.Namespaces[0].Services[0].Listen.Port(), uint16(7)},
		{"forward proto", c.Forwards[0].Protocol, "tcp"},
		{"log level", c.Daemon.LogLevel, "info"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func TestRouterRADefault(t *testing.T) {
	src := `
[[switch]]
name = "a"
[[switch]]
name = "b"
[[switch]]
name = "c"
[[router]]
name = "r"
  [[router.interface]]
  switch = "a"
  addresses = ["10.0.0.1/24", "fd00::1/64"]
  [[router.interface]]
  switch = "b"
  addresses = ["10.0.1.1/24"]
  [[router.interface]]
  switch = "c"
  addresses = ["fd01::1/64"]
  ra = false
`
	c, err := Parse("ra.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var got []bool
	for _, i := range c.Routers[0].Interfaces {
		got = append(got, i.RA)
	}
	if len(got) != 3 || !got[0] || got[1] || got[2] {
		t.Errorf("RA per interface = %v, want [true false false] (IPv6 /64 on, IPv4 only off, explicit off)", got)
	}
}

func TestGatewayDefaults(t *testing.T) {
	c, err := Parse("g.toml", []byte(`
[[switch]]
name = "lan0"
[[gateway]]
name = "gw0"
switch = "lan0"
addresses = ["10.0.0.2/24", "fd00::2/64"]
host = "10.0.2.2"
allow = ["127.0.0.0/8", "::1"]
`))
	if err != nil {
		t.Fatal(err)
	}
	g := c.Gateways[0]
	if g.MaxFlows != DefaultGatewayMaxFlows || g.UDPIdleTimeout != DefaultGatewayUDPIdleTimeout || g.MTU != 1500 ||
		g.Host != netip.MustParseAddr("10.0.2.2") || g.Host6.IsValid() || len(g.Allow) != 2 ||
		g.Allow[1] != netip.MustParsePrefix("::1/128") || g.MAC != frame.LocalMAC("gw0.lan0") {
		t.Fatalf("gateway = %+v", g)
	}
}

func TestCaptureRingKeys(t *testing.T) {
	c, err := Parse("ring.toml", []byte(`
[daemon]
capture_ring_bytes = 1048576
[[switch]]
name = "lan0"
[[switch]]
name = "lan1"
capture_ring_bytes = 0
capture_ring_seconds = 5
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if s := c.Switches[0]; s.CaptureRingBytes != 1<<20 || s.CaptureRingSeconds != 60 {
		t.Errorf("lan0 ring = %d bytes, %d s; want the [daemon] 1048576 and the default 60", s.CaptureRingBytes, s.CaptureRingSeconds)
	}
	if s := c.Switches[1]; s.CaptureRingBytes != 0 || s.CaptureRingSeconds != 5 {
		t.Errorf("lan1 ring = %d bytes, %d s; want its own 0 and 5", s.CaptureRingBytes, s.CaptureRingSeconds)
	}
	if c, err := Parse("none.toml", []byte("[[switch]]\nname = \"lan0\"\n")); err != nil || c.Switches[0].CaptureRingBytes != 0 {
		t.Errorf("default ring = %v, %v; want off", c, err)
	}
}
