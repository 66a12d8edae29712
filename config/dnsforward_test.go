package config

import (
	"strings"
	"testing"
)

func TestDNSForwardKeys(t *testing.T) {
	svc := func(body string) string {
		return forwardLab + "  [[namespace.service]]\n" + body + "\n"
	}
	c, err := Parse("t.toml", []byte(svc("  kind = \"dns\"\n  forward = true")))
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	if s := c.Namespaces[0].Services[0]; !s.Forward || s.ResolvConf != DefaultResolvConf || s.ForwardMaxInFlight != DefaultForwardMaxInFlight {
		t.Errorf("dns forward defaults = %+v", s)
	}
	c, err = Parse("t.toml", []byte(svc("  kind = \"dns\"\n  forward = true\n  resolv_conf = \"/tmp/r.conf\"\n  forward_max_inflight = 8")))
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	if s := c.Namespaces[0].Services[0]; s.ResolvConf != "/tmp/r.conf" || s.ForwardMaxInFlight != 8 {
		t.Errorf("dns forward keys = %+v", s)
	}
	if c, _ := Parse("t.toml", []byte(svc("  kind = \"dns\""))); c.Namespaces[0].Services[0].Forward {
		t.Error("forward is on by default, want off")
	}
	for _, tc := range []struct{ body, want string }{
		{"  kind = \"echo\"\n  forward = true", "t.toml:12:3: forward applies to dns services; this one is echo"},
		{"  kind = \"dns\"\n  resolv_conf = \"/x\"", "t.toml:10:3: resolv_conf and forward_max_inflight need forward = true"},
		{"  kind = \"dns\"\n  forward = true\n  forward_max_inflight = 0", "t.toml:13:3: forward_max_inflight 0 out of range 1-65536"},
	} {
		_, err := Parse("t.toml", []byte(svc(tc.body)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %s", tc.body, err, tc.want)
		}
	}
}
