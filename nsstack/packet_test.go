package nsstack

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	l2switch "github.com/vnetd/vnetd/switch"
)

// TestBroadcastBoundToNIC is what a DHCP server needs: a socket bound to one NIC
// hears broadcasts arriving there (and only there) and may answer by broadcast.
func TestBroadcastBoundToNIC(t *testing.T) {
	sw0, sw1 := newSwitch(t, "sw0"), newSwitch(t, "sw1")
	srv := newNS(t, "srv")
	plug(t, srv, sw0, 1500, "10.0.0.1/24")
	eth1, err := srv.AddNIC(NICConfig{Name: "eth1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddAddress("eth1", netip.MustParsePrefix("10.0.1.1/24")); err != nil {
		t.Fatal(err)
	}
	if err := sw1.AddPort(eth1, l2switch.PortConfig{}); err != nil {
		t.Fatal(err)
	}
	near, far := newNS(t, "near"), newNS(t, "far")
	plug(t, near, sw0, 1500, "10.0.0.2/24")
	plug(t, far, sw1, 1500, "10.0.1.2/24")

	listen := func(ns *Namespace, addr string, o PacketOptions) net.PacketConn {
		t.Helper()
		c, err := ns.ListenPacketWith("udp4", addr, o)
		if err != nil {
			t.Fatalf("%s: ListenPacketWith(%s, %+v): %v", ns.Name(), addr, o, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// "0.0.0.0" is the wildcard, as in the kernel (it once bound the literal zero address).
	server := listen(srv, "0.0.0.0:67", PacketOptions{NIC: "eth0", Broadcast: true})
	nearC := listen(near, ":68", PacketOptions{NIC: "eth0", Broadcast: true})
	farC := listen(far, ":68", PacketOptions{NIC: "eth0", Broadcast: true})
	bcast := func(port int) *net.UDPAddr { return &net.UDPAddr{IP: net.IPv4bcast, Port: port} }

	if _, err := farC.WriteTo([]byte("from far"), bcast(67)); err != nil {
		t.Fatalf("far broadcast: %v", err)
	}
	if _, err := nearC.WriteTo([]byte("from near"), bcast(67)); err != nil {
		t.Fatalf("near broadcast: %v", err)
	}
	buf := make([]byte, 100)
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := server.ReadFrom(buf)
	if err != nil {
		t.Fatalf("server read: %v", err)
	}
	if got := string(buf[:n]); got != "from near" {
		t.Fatalf("server bound to eth0 got %q from %v, want only \"from near\"", got, from)
	}
	if _, err := server.WriteTo([]byte("offer"), bcast(68)); err != nil {
		t.Fatalf("server broadcast reply: %v", err)
	}
	nearC.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err = nearC.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "offer" {
		t.Fatalf("near read = %q, %v; want \"offer\"", buf[:n], err)
	}
	if got := from.(*net.UDPAddr).IP.String(); got != "10.0.0.1" {
		t.Errorf("reply source = %s, want the eth0 address 10.0.0.1", got)
	}
	// Neither the far client's broadcast nor the reply crossed to the other NIC.
	server.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _, err := server.ReadFrom(buf); err == nil {
		t.Errorf("server bound to eth0 also got %q", buf[:n])
	}
	farC.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _, err := farC.ReadFrom(buf); err == nil {
		t.Errorf("far got %q through the other NIC", buf[:n])
	}

	plain := listen(near, ":0", PacketOptions{NIC: "eth0"})
	if _, err := plain.WriteTo([]byte("x"), bcast(67)); err == nil {
		t.Error("a socket without Broadcast sent to 255.255.255.255")
	}
	if _, err := near.ListenPacketWith("udp4", ":69", PacketOptions{NIC: "nope"}); err == nil || !strings.Contains(err.Error(), `no NIC "nope"`) {
		t.Errorf("unknown NIC: err = %v", err)
	}
}

// TestSocketsListsDualStackOnce: a ":80" listener serves IPv4 and IPv6 through one
// endpoint, which gVisor registers per protocol; `vnetd ns NAME sockets` shows it once.
func TestSocketsListsDualStackOnce(t *testing.T) {
	ns := newNS(t, "s")
	l, err := ns.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	u, err := ns.ListenPacket("udp", ":53")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	got := ns.Sockets()
	if len(got) != 2 || got[0] != (Socket{Proto: "tcp", State: "LISTEN", Local: "*:80"}) || got[1] != (Socket{Proto: "udp", State: "UNCONN", Local: "*:53"}) {
		t.Errorf("Sockets() = %+v, want one tcp LISTEN *:80 and one udp *:53", got)
	}
}
