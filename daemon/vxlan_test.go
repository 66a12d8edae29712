package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// vxlanLab: two switches in one daemon joined only by two tunnels on 127.0.0.1 and
// 127.0.0.2, a namespace on each. %[1]d is the UDP port, %[2]s t1's remotes, %[3]d its
// VNI.
const vxlanLab = `
[[switch]]
name = "lan0"
[[switch]]
name = "lan1"
[[namespace]]
name = "a"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  mtu = 1450
  addresses = ["10.7.0.1/24"]
[[namespace]]
name = "b"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan1"
  mtu = 1450
  addresses = ["10.7.0.2/24"]
[[vxlan]]
name = "t0"
switch = "lan0"
local = "127.0.0.1:%[1]d"
dstport = %[1]d
vni = 42
remotes = ["127.0.0.2"]
[[vxlan]]
name = "t1"
switch = "lan1"
local = "127.0.0.2:%[1]d"
dstport = %[1]d
vni = %[3]d
remotes = [%[2]s]
`

func udpPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatalf("ListenUDP: %v", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// TestVXLANApplyReload: namespaces on two switches joined by tunnels ping each other;
// a reload that changes only a tunnel's remotes updates it live (its counters and
// learned MACs survive, no port is rebuilt); one that changes its VNI rebuilds it.
func TestVXLANApplyReload(t *testing.T) {
	port := udpPort(t)
	d := New(Options{Logger: quiet()})
	defer d.Close()
	if err := d.Apply(parse(t, fmt.Sprintf(vxlanLab, port, `"127.0.0.1"`, 42))); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	ping := func() {
		t.Helper()
		ok := false
		for range 20 {
			d.Ping(context.Background(), "a", mustAddr("10.7.0.2"), 1, 0, func(r PingResult) { ok = r.Error == "" })
			if ok {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatal("a cannot ping 10.7.0.2 over the tunnel")
	}
	ping()
	vs, err := d.VXLANs("lan1")
	if err != nil || len(vs) != 1 {
		t.Fatalf("VXLANs(lan1) = %v, %v", vs, err)
	}
	if len(vs[0].MACs) != 1 || vs[0].Stats.Counters.RxFrames == 0 || vs[0].Remotes[0].Addr != mustAddr("127.0.0.1") {
		t.Fatalf("t1 = %+v, want a's MAC learned behind 127.0.0.1 and frames received", vs[0])
	}
	rx := vs[0].Stats.Counters.RxFrames
	if _, err := d.VXLANs("nope"); err == nil {
		t.Fatal("VXLANs(nope) succeeded")
	}

	// Remotes change: live.
	if err := d.Apply(parse(t, fmt.Sprintf(vxlanLab, port, `"127.0.0.1", "127.0.0.9"`, 42))); err != nil {
		t.Fatalf("Apply(new remotes): %v", err)
	}
	vs, _ = d.VXLANs("lan1")
	if len(vs[0].Remotes) != 2 || vs[0].Remotes[1].Addr != mustAddr("127.0.0.9") || vs[0].Stats.Counters.RxFrames < rx || len(vs[0].MACs) != 1 {
		t.Fatalf("after a remotes reload t1 = %+v, want 2 remotes, its counters and MAC kept", vs[0])
	}
	ping()
	// VNI change: rebuilt, counters start over, and t0's frames (VNI 42) are dropped.
	if err := d.Apply(parse(t, fmt.Sprintf(vxlanLab, port, `"127.0.0.1"`, 43))); err != nil {
		t.Fatalf("Apply(vni 43): %v", err)
	}
	d.Ping(context.Background(), "a", mustAddr("10.7.0.2"), 1, 0, func(PingResult) {})
	vs, _ = d.VXLANs("lan1")
	if vs[0].VNI != 43 || vs[0].Stats.RxBadVNI == 0 || vs[0].Stats.Counters.RxFrames != 0 || len(vs[0].MACs) != 0 {
		t.Fatalf("after a VNI reload t1 = %+v, want a new tunnel dropping VNI 42", vs[0])
	}
	if err := d.Apply(parse(t, fmt.Sprintf(vxlanLab, port, `"127.0.0.1"`, 42))); err != nil {
		t.Fatalf("Apply(vni 42): %v", err)
	}
	local := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.2:%d", port))
	if vs, _ = d.VXLANs("lan1"); vs[0].Local != local {
		t.Fatalf("t1 local = %s, want %s", vs[0].Local, local)
	}
	// A bad tunnel (its socket taken) fails Apply cleanly, keeping what ran.
	busy, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3)})
	if err != nil {
		t.Fatalf("ListenUDP: %v", err)
	}
	defer busy.Close()
	bad := fmt.Sprintf(vxlanLab, port, `"127.0.0.1"`, 42) + fmt.Sprintf("[[vxlan]]\nname = \"t2\"\nswitch = \"lan1\"\nlocal = %q\nvni = 1\n", busy.LocalAddr().String())
	if err := d.Apply(parse(t, bad)); err == nil {
		t.Fatal("Apply with a tunnel on a busy port succeeded")
	}
	if vs, _ = d.VXLANs("lan1"); len(vs) != 1 {
		t.Fatalf("after a failed reload lan1 has %d tunnels, want 1", len(vs))
	}
	ping()
}
