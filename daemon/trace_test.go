package daemon

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd"
	"github.com/vnetd/vnetd/config"
)

// txFrames returns every port's tx counter, by "SWITCH/PORT".
func txFrames(d *Daemon) map[string]uint64 {
	m := map[string]uint64{}
	for _, s := range d.Status().Switches {
		for _, p := range s.Ports {
			m[s.Name+"/"+p.Name] = p.Counters.TxFrames
		}
	}
	return m
}

// realPing pings once and returns the ports whose tx counters moved, and the error.
func realPing(t *testing.T, d *Daemon, ns, dst string) ([]string, string) {
	t.Helper()
	before := txFrames(d)
	var got PingResult
	d.Ping(context.Background(), ns, mustAddr(dst), 1, 0, func(r PingResult) { got = r })
	// A port's tx counter moves after its write returns, which can be after the reply
	// is back: read the ports until two looks 100 ms apart agree (at most 2 s).
	moved := func() []string {
		var m []string
		for k, v := range txFrames(d) {
			if v > before[k] {
				m = append(m, k)
			}
		}
		slices.Sort(m)
		return m
	}
	m := moved()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		next := moved()
		if slices.Equal(next, m) {
			break
		}
		m = next
	}
	return m, got.Error
}

func startLab(t *testing.T, src string) *Daemon {
	t.Helper()
	c, err := config.Parse("lab.toml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	c.Forwards = nil
	d := New(Options{Logger: quiet()})
	t.Cleanup(func() { d.Close() })
	if err := d.Apply(c); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return d
}

func mustTrace(t *testing.T, d *Daemon, s TraceSpec) (Trace, string) {
	t.Helper()
	tr, err := d.Trace(s)
	if err != nil {
		t.Fatalf("Trace(%+v) = %v", s, err)
	}
	var words []string
	for _, st := range tr.Steps {
		words = append(words, st.Where+": "+st.What)
	}
	return tr, strings.Join(words, "\n")
}

// TestTraceMatchesRealFrames compares each trace with what a real ping does on the
// default lab: the ports it leaves by, across a switch and router r1, and the ICMP
// error r1 sends when it has no route.
func TestTraceMatchesRealFrames(t *testing.T) {
	d := startLab(t, string(vnetd.DefaultConfig))
	// Same switch: alpha -> beta. The real ping (its echo request and reply) leaves by
	// beta.eth0 and alpha.eth0; the trace of the request ends at beta.eth0 by an FDB hit.
	realPing(t, d, "alpha", "10.0.0.20") // ARP and learning settle
	// A broadcast or multicast frame of the lab's own (an ARP refresh, a neighbour
	// solicitation) may cross r1.lan0 during one ping: a few tries find a quiet one.
	var moved []string
	var perr string
	for try := 0; try < 5; try++ {
		if moved, perr = realPing(t, d, "alpha", "10.0.0.20"); !slices.Contains(moved, "lan0/r1.lan0") {
			break
		}
	}
	// (The reply's count on alpha.eth0 may land just after the ping returns.)
	if perr != "" || !slices.Contains(moved, "lan0/beta.eth0") || slices.Contains(moved, "lan0/r1.lan0") {
		t.Fatalf("real ping alpha -> beta: moved %v, error %q", moved, perr)
	}
	tr, words := mustTrace(t, d, TraceSpec{Switch: "lan0", Port: "alpha.eth0", Src: "10.0.0.10", Dst: "10.0.0.20"})
	if !slices.Equal(tr.Final, []string{"lan0/beta.eth0"}) || !strings.Contains(words, "FDB hit -> beta.eth0") {
		t.Errorf("trace alpha -> beta: final %v\n%s", tr.Final, words)
	}
	// Unknown destination MAC: flooded to every other port of lan0's VLAN.
	tr, words = mustTrace(t, d, TraceSpec{Switch: "lan0", Port: "alpha.eth0", Src: "10.0.0.10", Dst: "10.0.0.99", DstMAC: "02:00:00:00:99:99"})
	slices.Sort(tr.Final)
	if !slices.Equal(tr.Final, []string{"lan0/beta.eth0", "lan0/gw0.lan0", "lan0/r1.lan0"}) || !strings.Contains(words, "flood") {
		t.Errorf("trace to an unknown MAC: final %v\n%s", tr.Final, words)
	}
	// Across r1: alpha -> gamma.
	realPing(t, d, "alpha", "10.0.1.10")
	moved, perr = realPing(t, d, "alpha", "10.0.1.10")
	if perr != "" || !slices.Contains(moved, "lan1/gamma.eth0") {
		t.Fatalf("real ping alpha -> gamma: moved %v, error %q", moved, perr)
	}
	tr, words = mustTrace(t, d, TraceSpec{Switch: "lan0", Port: "alpha.eth0", Src: "10.0.0.10", Dst: "10.0.1.10", Proto: "tcp", DPort: 80})
	for _, want := range []string{"switch lan0: in alpha.eth0, vlan 1, FDB hit -> r1.lan0", "router r1: in lan0: forward, route 10.0.1.0/24 connected dev lan1, neighbour 10.0.1.10 is",
		"switch lan1: in r1.lan1, vlan 1, FDB hit -> gamma.eth0"} {
		if !strings.Contains(words, want) {
			t.Errorf("trace alpha -> gamma lacks %q:\n%s", want, words)
		}
	}
	if !slices.Equal(tr.Final, []string{"lan1/gamma.eth0"}) {
		t.Errorf("trace alpha -> gamma: final %v, want [lan1/gamma.eth0]", tr.Final)
	}
	// No route at r1: a real ping gets r1's ICMP net unreachable, the trace says so.
	_, perr = realPing(t, d, "alpha", "192.0.2.1")
	if !strings.Contains(strings.ToLower(perr), "unreachable") {
		t.Errorf("real ping to 192.0.2.1: error %q, want r1's net unreachable", perr)
	}
	tr, words = mustTrace(t, d, TraceSpec{Switch: "lan0", Port: "alpha.eth0", Src: "10.0.0.10", Dst: "192.0.2.1"})
	if !strings.Contains(words, "would send ICMP destination net unreachable") || len(tr.Final) != 0 {
		t.Errorf("trace to 192.0.2.1: final %v\n%s", tr.Final, words)
	}
	// TTL 1 expires at r1.
	_, words = mustTrace(t, d, TraceSpec{Switch: "lan0", Port: "alpha.eth0", Src: "10.0.0.10", Dst: "10.0.1.10", TTL: 1})
	if !strings.Contains(words, "time exceeded") {
		t.Errorf("trace with TTL 1:\n%s", words)
	}
	// An impairment on the way is reported.
	if _, err := d.SetImpair(config.ImpairSpec{Switch: "lan1", Port: "gamma.eth0", Direction: "out", Delay: "5ms"}); err != nil {
		t.Fatalf("SetImpair: %v", err)
	}
	_, words = mustTrace(t, d, TraceSpec{Switch: "lan0", Port: "alpha.eth0", Src: "10.0.0.10", Dst: "10.0.1.10"})
	if !strings.Contains(words, "impair lan1/gamma.eth0: out: delay 5ms") {
		t.Errorf("trace lacks the impairment:\n%s", words)
	}
	if _, err := d.Trace(TraceSpec{Switch: "lan0", Port: "alpha.eth0", Src: "x", Dst: "10.0.0.1"}); err == nil {
		t.Error("Trace with a bad src: nil error")
	}
}

const vlanLab = `
[[switch]]
name = "sw"
[[namespace]]
name = "x"
  [[namespace.nic]]
  name = "eth0"
  switch = "sw"
  vlan = 10
  addresses = ["10.5.0.1/24"]
[[namespace]]
name = "y"
  [[namespace.nic]]
  name = "eth0"
  switch = "sw"
  vlan = 10
  addresses = ["10.5.0.2/24"]
[[namespace]]
name = "z"
  [[namespace.nic]]
  name = "eth0"
  switch = "sw"
  vlan = 20
  addresses = ["10.5.0.3/24"]
`

// TestTraceVLAN: a VLAN 10 port reaches its VLAN peer, and a frame to a host on VLAN
// 20 floods only within VLAN 10, as a real ping (which fails) shows.
func TestTraceVLAN(t *testing.T) {
	d := startLab(t, vlanLab)
	realPing(t, d, "x", "10.5.0.2")
	moved, perr := realPing(t, d, "x", "10.5.0.2")
	if perr != "" || !slices.Contains(moved, "sw/y.eth0") {
		t.Fatalf("real ping x -> y: moved %v, error %q", moved, perr)
	}
	tr, words := mustTrace(t, d, TraceSpec{Switch: "sw", Port: "x.eth0", Src: "10.5.0.1", Dst: "10.5.0.2"})
	if !slices.Equal(tr.Final, []string{"sw/y.eth0"}) || tr.Steps[0].Switch.VLAN != 10 {
		t.Errorf("trace x -> y: final %v\n%s", tr.Final, words)
	}
	moved, perr = realPing(t, d, "x", "10.5.0.3")
	if perr == "" || slices.Contains(moved, "sw/z.eth0") {
		t.Fatalf("real ping x -> z across VLANs: moved %v, error %q (want no reply, nothing to z)", moved, perr)
	}
	tr, words = mustTrace(t, d, TraceSpec{Switch: "sw", Port: "x.eth0", Src: "10.5.0.1", Dst: "10.5.0.3"})
	if slices.Contains(tr.Final, "sw/z.eth0") || !strings.Contains(words, "vlan 10") {
		t.Errorf("trace x -> z: final %v (z is on VLAN 20)\n%s", tr.Final, words)
	}
}
