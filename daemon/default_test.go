package daemon

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/vnetd/vnetd"
	"github.com/vnetd/vnetd/config"
)

// TestDefaultLabRoutes brings up the embedded default lab (minus its host forwards,
// whose fixed ports may be taken on a shared machine) and crosses router r1: a ping
// and a TCP echo exchange from alpha (lan0) to gamma (lan1).
func TestDefaultLabRoutes(t *testing.T) {
	c, err := config.Parse("config.toml.example", vnetd.DefaultConfig)
	if err != nil {
		t.Fatalf("Parse(default) = %v", err)
	}
	c.Forwards = nil
	d := New(Options{Logger: quiet()})
	defer d.Close()
	if err := d.Apply(c); err != nil {
		t.Fatalf("Apply(default lab) = %v", err)
	}
	var got PingResult
	d.Ping(context.Background(), "alpha", mustAddr("10.0.1.10"), 1, 0, func(r PingResult) { got = r })
	if got.Error != "" {
		t.Errorf("Ping(alpha -> gamma via r1) = %s", got.Error)
	}
	alpha, _ := d.Namespace("alpha")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := alpha.Dial(ctx, "tcp", "10.0.1.10:7")
	if err != nil {
		t.Fatalf("alpha.Dial(gamma echo) = %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	msg := make([]byte, 100000)
	for i := range msg {
		msg[i] = byte(i)
	}
	go conn.Write(msg)
	back := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, back); err != nil || string(back) != string(msg) {
		t.Errorf("TCP echo of 100000 bytes across r1: %v (equal=%v)", err, string(back) == string(msg))
	}
	if st := d.Status(); len(st.Routers) != 1 || st.Routers[0].Name != "r1" || len(st.Routers[0].Interfaces) != 2 || !st.Routers[0].Interfaces[0].Up {
		t.Errorf("Status().Routers = %v, want [r1]", st.Routers)
	}
}

// TestPingReportsICMPErrors pings, from a namespace behind router r1, an address r1
// has no route for: the result names r1 and its "net unreachable", as ping(8) shows
// it, for IPv4 and IPv6, instead of a bare timeout (without the raw ICMP watch in
// nsstack.Ping the result is "context deadline exceeded").
func TestPingReportsICMPErrors(t *testing.T) {
	const lab = `
[[switch]]
name = "lan0"
[[namespace]]
name = "a"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.10/24", "fd00::10/64"]
  [[namespace.route]]
  to = "0.0.0.0/0"
  via = "10.0.0.1"
  [[namespace.route]]
  to = "::/0"
  via = "fd00::1"
[[router]]
name = "r1"
  [[router.interface]]
  switch = "lan0"
  addresses = ["10.0.0.1/24", "fd00::1/64"]
  ra = false
`
	c, err := config.Parse("lab.toml", []byte(lab))
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	d := New(Options{Logger: quiet()})
	defer d.Close()
	if err := d.Apply(c); err != nil {
		t.Fatalf("Apply = %v", err)
	}
	for _, tc := range []struct{ dst, from, text string }{
		{"10.9.9.9", "10.0.0.1", "Destination Net Unreachable"},
		{"fd99::9", "fd00::1", "Destination unreachable: No route"},
	} {
		var got PingResult
		d.Ping(context.Background(), "a", mustAddr(tc.dst), 1, 0, func(r PingResult) { got = r })
		if got.From != tc.from || got.ICMPError != tc.text {
			t.Errorf("Ping(a -> %s) = %+v; want From %s %q", tc.dst, got, tc.from, tc.text)
		}
	}
	// The router's own view of what just happened: its leg, its table, the neighbour
	// it learned, the errors it sent and why it dropped the pings.
	rs, err := d.Router("r1")
	if err != nil {
		t.Fatalf("Router(r1) = %v", err)
	}
	if len(rs.Interfaces) != 1 || rs.Interfaces[0].Name != "lan0" || !rs.Interfaces[0].Up || rs.Interfaces[0].Switch != "lan0" {
		t.Fatalf("Router(r1).Interfaces = %+v; want lan0, up, on switch lan0", rs.Interfaces)
	}
	leg := rs.Interfaces[0]
	if leg.ICMPErrors < 2 || leg.Dropped["no_route"] < 2 || leg.Counters.RxFrames == 0 {
		t.Errorf("r1.lan0 counters = icmp_errors %d, drops %v, rx %d; want >= 2 errors and no_route drops", leg.ICMPErrors, leg.Dropped, leg.Counters.RxFrames)
	}
	var connected bool
	for _, r := range rs.Routes {
		connected = connected || (r.To.String() == "10.0.0.0/24" && r.Connected && r.Iface == "lan0")
	}
	if !connected {
		t.Errorf("Router(r1).Routes = %+v; want 10.0.0.0/24 connected on lan0", rs.Routes)
	}
	var learned bool
	for _, n := range rs.Neighbors {
		learned = learned || (n.Addr.String() == "10.0.0.10" && n.Complete)
	}
	if !learned {
		t.Errorf("Router(r1).Neighbors = %+v; want 10.0.0.10 complete", rs.Neighbors)
	}
	if _, err := d.Router("nope"); err == nil {
		t.Errorf("Router(nope) = nil error")
	}
}
