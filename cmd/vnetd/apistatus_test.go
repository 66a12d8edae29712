package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vnetd/vnetd/daemon"
)

// TestStatusPrintsAPIRefusals: `vnetd status` prints the control API's refusals at
// its caps, by kind, and no line when nothing was refused.
func TestStatusPrintsAPIRefusals(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, daemon.Status{API: daemon.APIStatus{Refused: map[string]uint64{"ping": 2, "capture": 1}}})
	if want := "api\trefused 3 (capture 1, ping 2)\n"; !strings.Contains(b.String(), want) {
		t.Errorf("printStatus with refusals = %q, want a line %q", b.String(), want)
	}
	b.Reset()
	printStatus(&b, daemon.Status{})
	if strings.Contains(b.String(), "api") {
		t.Errorf("printStatus with no refusals = %q, want no api line", b.String())
	}
}
