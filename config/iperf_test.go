package config

import (
	"net/netip"
	"strings"
	"testing"
)

func TestIperf3ServiceKeys(t *testing.T) {
	svc := func(body string) string {
		return forwardLab + "  [[namespace.service]]\n" + body + "\n"
	}
	c, err := Parse("t.toml", []byte(svc("  kind = \"iperf3\"")))
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	if s := c.Namespaces[0].Services[0]; s.Listen != netip.AddrPortFrom(netip.Addr{}, 5201) || s.MaxTests != 4 || s.MaxStreams != 16 {
		t.Errorf("iperf3 defaults = %+v, want :5201, 4 tests, 16 streams", s)
	}
	c, err = Parse("t.toml", []byte(svc("  kind = \"iperf3\"\n  listen = \":5202\"\n  max_tests = 1\n  max_streams = 128")))
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	if s := c.Namespaces[0].Services[0]; s.Listen.Port() != 5202 || s.MaxTests != 1 || s.MaxStreams != 128 {
		t.Errorf("iperf3 keys = %+v", s)
	}
	for _, tc := range []struct{ body, want string }{
		{"  kind = \"echo\"\n  max_tests = 2", "t.toml:12:3: max_tests applies to iperf3 services; this one is echo"},
		{"  kind = \"iperf3\"\n  max_streams = 129", "t.toml:12:3: max_streams 129 out of range 1-128"},
		{"  kind = \"iperf3\"\n  max_tests = 0", "t.toml:12:3: max_tests 0 out of range 1-1024"},
		{"  kind = \"iperf3\"\n[[namespace.service]]\n  kind = \"echo\"\n  listen = \":5201\"", "tcp port 5201 is already used by another service"},
	} {
		_, err := Parse("t.toml", []byte(svc(tc.body)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %s", tc.body, err, tc.want)
		}
	}
}
