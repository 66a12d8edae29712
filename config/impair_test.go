package config

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd/impair"
)

const impairLab = `
[[switch]]
name = "lan"

[[namespace]]
name = "a"
[[namespace.nic]]
name = "eth0"
switch = "lan"
addresses = ["10.0.0.1/24"]
[[namespace.nic]]
name = "p0"
peer = "b:p0"
addresses = ["10.1.0.1/24"]

[[namespace]]
name = "b"
[[namespace.nic]]
name = "p0"
peer = "a:p0"
addresses = ["10.1.0.2/24"]
`

func TestImpairParses(t *testing.T) {
	c, err := Parse("lab.toml", []byte(impairLab+`
[[impair]]
switch = "lan"
port = "a.eth0"
delay = "20ms"
jitter = "2ms"
rate = "10mbit"
gilbert_elliott = { p = 1, r = 20 }

[[impair]]
namespace = "b"
nic = "p0"
direction = "out"
loss = 1.5
seed = 7
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(c.Impairs) != 2 {
		t.Fatalf("Impairs = %+v, want 2", c.Impairs)
	}
	a, b := c.Impairs[0], c.Impairs[1]
	if a.Target() != "lan/a.eth0" || a.Direction != impair.Both || a.Params.Delay != 20*time.Millisecond ||
		a.Params.Rate != 10e6 || a.Params.GilbertElliott == nil || a.Params.GilbertElliott.Bad != 100 {
		t.Errorf("Impairs[0] = %+v", a)
	}
	if b.Target() != "b:p0" || b.Direction != impair.Out || b.Params.Loss != 1.5 || b.Params.Seed != 7 {
		t.Errorf("Impairs[1] = %+v", b)
	}
}

func TestImpairErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"switch = \"nope\"\nport = \"x\"", `switch "nope" is not defined`},
		{"switch = \"lan\"", `impair on switch "lan" needs a port`},
		{"namespace = \"a\"\nnic = \"eth0\"", `impair it as switch = "lan", port = "a.eth0"`},
		{"namespace = \"a\"\nnic = \"zz\"", `namespace "a" has no nic "zz"`},
		{"switch = \"lan\"\nport = \"a.eth0\"\ndelay = \"soon\"", `delay "soon"`},
		{"switch = \"lan\"\nport = \"a.eth0\"\nrate = \"10mb\"", `rate "10mb"`},
		{"switch = \"lan\"\nport = \"a.eth0\"\nloss = 101", `loss 101: want a percentage`},
		{"switch = \"lan\"\nport = \"a.eth0\"\ndirection = \"up\"", `direction "up"`},
		{"switch = \"lan\"\nport = \"a.eth0\"\nreorder = 5", `reorder needs a delay`},
		{"switch = \"lan\"\nport = \"a.eth0\"\nspeed = 5", `unknown key "impair.speed"`},
		{"", `impair needs switch and port, or namespace and nic`},
	} {
		src := impairLab + "\n[[impair]]\n" + tc.body + "\n"
		_, err := Parse("lab.toml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !filePos.MatchString(err.Error()) {
			t.Errorf("Parse([[impair]] %q) = %v, want lab.toml:LINE:COL: ...%q", tc.body, err, tc.want)
		}
	}
	if _, err := Parse("lab.toml", []byte(impairLab+"[[impair]]\nswitch = \"lan\"\nport = \"p\"\ndirection = \"in\"\n[[impair]]\nswitch = \"lan\"\nport = \"p\"\n")); err == nil || !strings.Contains(err.Error(), "already impaired") {
		t.Errorf("two [[impair]] on one direction: %v", err)
	}
}

var filePos = regexp.MustCompile(`^lab\.toml:\d+:\d+: `)
