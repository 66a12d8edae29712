package main

import (
	"strings"
	"testing"

	"github.com/vnetd/vnetd/daemon"
	"github.com/vnetd/vnetd/router"
)

// TestPrintRouterLeg: a switch leg shows its VLAN and switch, an L3 leg its peer NIC
// and no VLAN (it has none).
func TestPrintRouterLeg(t *testing.T) {
	var b strings.Builder
	printRouterLeg(&b, daemon.RouterInterface{IfaceInfo: router.IfaceInfo{Name: "lan0", Kind: router.KindL2}, Switch: "lan0", Up: true})
	printRouterLeg(&b, daemon.RouterInterface{IfaceInfo: router.IfaceInfo{Name: "a", Kind: router.KindL3}, Peer: "a:venet0", Up: true})
	lines := strings.Split(b.String(), "\n")
	if !strings.Contains(lines[0], "vlan untagged\ton lan0") {
		t.Errorf("switch leg: %q, want its VLAN and switch", lines[0])
	}
	if leg := lines[2]; !strings.Contains(leg, "l3 leg to a:venet0") || strings.Contains(leg, "vlan") {
		t.Errorf("l3 leg: %q, want its peer and no VLAN", leg)
	}
}
