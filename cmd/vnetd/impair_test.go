package main

import (
	"encoding/json"
	"strings"
	"testing"
)

const impairCLILab = `
[[switch]]
name = "lan0"
[[namespace]]
name = "a"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.1/24"]
  [[namespace.nic]]
  name = "p0"
  peer = "b:p0"
  addresses = ["10.9.0.1/24"]
[[namespace]]
name = "b"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.2/24"]
  [[namespace.nic]]
  name = "p0"
  peer = "a:p0"
  addresses = ["10.9.0.2/24"]
[[impair]]
switch = "lan0"
port = "b.eth0"
direction = "out"
delay = "80ms"
`

// rtt pings addr from namespace a once and returns the round trip in ms.
func rtt(t *testing.T, sock, addr string) float64 {
	t.Helper()
	code, out, errs := run(t, "ping", "-s", sock, "a", addr, "-c", "1", "--json")
	var p struct {
		RTTms float64 `json:"rtt_ms"`
		Error string  `json:"error"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || p.Error != "" {
		t.Fatalf("vnetd ping a %s = %d, %q, %q", addr, code, out, errs)
	}
	return p.RTTms
}

// TestImpairCommand: an [[impair]] from the file delays a port; vnetd impair changes
// and clears it live, and impairs a pair end; status shows it; bad requests exit 2.
func TestImpairCommand(t *testing.T) {
	sock := runDaemon(t, impairCLILab)
	rtt(t, sock, "10.0.0.2") // ARP settled
	if r := rtt(t, sock, "10.0.0.2"); r < 80 {
		t.Fatalf("RTT to b over the impaired port %.2f ms, want >= 80 (delay 80ms toward b)", r)
	}
	code, out, _ := run(t, "status", "-s", sock)
	if code != 0 || !strings.Contains(out, "impair lan0/b.eth0") || !strings.Contains(out, "out: delay 80ms") {
		t.Fatalf("vnetd status = %d, %q: want the impairment listed", code, out)
	}
	if code, out, errs := run(t, "impair", "-s", sock, "lan0", "b.eth0", "--clear"); code != 0 || !strings.Contains(out, "in: none\tout: none") {
		t.Fatalf("vnetd impair --clear = %d, %q, %q", code, out, errs)
	}
	if r := rtt(t, sock, "10.0.0.2"); r >= 80 {
		t.Fatalf("RTT after --clear %.2f ms, want < 80", r)
	}
	if code, out, errs := run(t, "impair", "-s", sock, "lan0", "b.eth0", "--dir", "in", "--delay", "60ms"); code != 0 || !strings.Contains(out, "in: delay 60ms") {
		t.Fatalf("vnetd impair --dir in --delay 60ms = %d, %q, %q", code, out, errs)
	}
	if r := rtt(t, sock, "10.0.0.2"); r < 60 {
		t.Fatalf("RTT with the reply delayed %.2f ms, want >= 60", r)
	}
	// A pass-through pair end.
	rtt(t, sock, "10.9.0.2")
	if code, out, errs := run(t, "impair", "-s", sock, "--ns", "a", "--nic", "p0", "--delay", "70ms", "--json"); code != 0 || !strings.Contains(out, `"target":"a:p0"`) {
		t.Fatalf("vnetd impair --ns a --nic p0 = %d, %q, %q", code, out, errs)
	}
	if r := rtt(t, sock, "10.9.0.2"); r < 140 {
		t.Fatalf("RTT over the pair end delayed both ways %.2f ms, want >= 140", r)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"lan0", "b.eth0", "--loss", "120"}, 2, "loss 120"},
		{[]string{"lan0", "b.eth0", "--rate", "fast"}, 2, `rate "fast"`},
		{[]string{"lan0", "b.eth0"}, 2, "needs parameters"},
		{[]string{"lan0", "b.eth0", "--delay", "1ms", "--clear"}, 2, "not both"},
		{[]string{"nope", "x", "--delay", "1ms"}, 2, `switch "nope" is not defined`},
		{[]string{"lan0", "c.eth0", "--delay", "1ms"}, 1, "no such port lan0/c.eth0"},
		{[]string{"lan0"}, 2, "needs SWITCH PORT"},
	} {
		code, _, errs := run(t, append([]string{"impair", "-s", sock}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("vnetd impair %v = %d, %q, want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
}
