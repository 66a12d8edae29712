package config

import (
	"strings"
	"testing"
	"time"
)

func TestExpectParses(t *testing.T) {
	c, err := Parse("lab.toml", []byte(impairLab+`
[[expect]]
from = "a"
to = "10.0.0.2:80"
reach = true
[[expect]]
from = "b"
to = "10.1.0.1"
reach = false
timeout = "500ms"
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(c.Expects) != 2 || c.Expects[0].Target() != "10.0.0.2:80" || c.Expects[0].Timeout != 2*time.Second ||
		!c.Expects[1].Ping() || c.Expects[1].Reach || c.Expects[1].Timeout != 500*time.Millisecond {
		t.Fatalf("Expects = %+v", c.Expects)
	}
}

func TestExpectErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"from = \"zz\"\nto = \"10.0.0.2\"\nreach = true", `namespace "zz" is not defined`},
		{"to = \"10.0.0.2\"\nreach = true", `expect needs from`},
		{"from = \"a\"\nto = \"host:80\"\nreach = true", `to "host:80": want ADDR:PORT`},
		{"from = \"a\"\nto = \"10.0.0.2:0\"\nreach = true", `to "10.0.0.2:0"`},
		{"from = \"a\"\nto = \"10.0.0.2\"", `expect needs reach = true or false`},
		{"from = \"a\"\nto = \"10.0.0.2\"\nreach = true\ntimeout = \"1h\"", `timeout 1h0m0s out of range`},
		{"from = \"a\"\nto = \"10.0.0.2\"\nreach = true\nport = 1", `unknown key "expect.port"`},
	} {
		_, err := Parse("lab.toml", []byte(impairLab+"\n[[expect]]\n"+tc.body+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !filePos.MatchString(err.Error()) {
			t.Errorf("Parse([[expect]] %q) = %v, want lab.toml:LINE:COL: ...%q", tc.body, err, tc.want)
		}
	}
}
