package config

import (
	"strings"
	"testing"
)

func TestDHCPMaxLeases(t *testing.T) {
	const lab = `
[[switch]]
name = "lan0"
[[namespace]]
name = "a"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.1/24"]
  [[namespace.service]]
  kind = "dhcp"
  range = "10.0.0.100-10.0.0.200"
`
	for _, tc := range []struct {
		extra string
		want  int
		err   string
	}{
		{"", 0, ""},
		{"  max_leases = 50\n", 50, ""},
		{"  max_leases = 0\n", 0, "lab.toml:13:3: max_leases 0: want 1-1000000"},
		{"  max_leases = -3\n", 0, "lab.toml:13:3: max_leases -3: want 1-1000000"},
		{"  [[namespace.service]]\n  kind = \"http\"\n  max_leases = 5\n", 0, "lab.toml:15:3: max_leases is a dhcp service key, not a http one"},
	} {
		c, err := Parse("lab.toml", []byte(lab+tc.extra))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) = %v, want %q", tc.extra, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q) = %v", tc.extra, err)
			continue
		}
		if got := c.Namespaces[0].Services[0].MaxLeases; got != tc.want {
			t.Errorf("Parse(%q): MaxLeases = %d, want %d", tc.extra, got, tc.want)
		}
	}
}
