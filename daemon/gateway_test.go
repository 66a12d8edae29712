package daemon

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vnetd/vnetd"
	"github.com/vnetd/vnetd/config"
)

// TestDefaultLabGateway: in the embedded default lab, alpha reaches a TCP server on
// the host's 127.0.0.1 through gw0's alias 10.0.2.2, a foreign address is refused by
// gw0's loopback-only policy, and a reload without the gateway removes it.
func TestDefaultLabGateway(t *testing.T) {
	c, err := config.Parse("config.toml.example", vnetd.DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	c.Forwards = nil
	d := New(Options{Logger: quiet()})
	defer d.Close()
	if err := d.Apply(c); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 5)
				if _, err := io.ReadFull(c, b); err == nil {
					c.Write(append([]byte("host:"), b...))
				}
			}()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	alpha, _ := d.Namespace("alpha")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := alpha.Dial(ctx, "tcp4", netip.AddrPortFrom(netip.MustParseAddr("10.0.2.2"), uint16(port)).String())
	if err != nil {
		t.Fatalf("alpha -> 10.0.2.2 (host loopback): %v", err)
	}
	conn.Write([]byte("hello"))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(conn)
	conn.Close()
	if string(got) != "host:hello" {
		t.Fatalf("got %q from the host server, want %q", got, "host:hello")
	}
	st := d.Status()
	if len(st.Gateways) != 1 || st.Gateways[0].Name != "gw0" || st.Gateways[0].Stats.FlowsTCP != 1 {
		t.Fatalf("Status().Gateways = %+v", st.Gateways)
	}
	// Policy: anything but the host loopback is denied before a host socket exists
	// (a documentation address, never dialled). alpha routes it via gw0 explicitly.
	if err := alpha.AddRoute(nsRoute(config.Route{To: netip.MustParsePrefix("192.0.2.0/24"), Via: netip.MustParseAddr("10.0.0.2")})); err != nil {
		t.Fatal(err)
	}
	if c, err := alpha.Dial(ctx, "tcp4", "192.0.2.1:80"); err == nil {
		c.Close()
		t.Fatal("alpha -> 192.0.2.1 through gw0: connected, want denied")
	}
	if st := d.Status(); st.Gateways[0].Stats.Denied != 1 {
		t.Fatalf("denied = %d, want 1", st.Gateways[0].Stats.Denied)
	}
	c2 := *c
	c2.Gateways = nil
	if err := d.Apply(&c2); err != nil {
		t.Fatal(err)
	}
	if st := d.Status(); len(st.Gateways) != 0 {
		t.Fatalf("after a reload without gateways: %+v", st.Gateways)
	}
}

// TestGatewayHost6OnLink: a namespace whose only address is in the gateway's /64, with
// no route at all, reaches a TCP server on the host's ::1 through the gateway's IPv6
// alias as an on-link neighbour (the gateway answers its neighbour solicitations).
func TestGatewayHost6OnLink(t *testing.T) {
	d := startLab(t, `
[[switch]]
name = "lan0"
[[gateway]]
name = "gw"
switch = "lan0"
addresses = ["fd00:2::1/64"]
host6 = "fd00:2::2"
allow = ["::1/128"]
[[namespace]]
name = "g"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["fd00:2::100/64"]
`)
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatalf("listen on ::1: %v", err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 5)
		if _, err := io.ReadFull(c, b); err == nil {
			c.Write(append([]byte("host:"), b...))
		}
	}()
	g, _ := d.Namespace("g")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dst := netip.AddrPortFrom(netip.MustParseAddr("fd00:2::2"), uint16(l.Addr().(*net.TCPAddr).Port))
	conn, err := g.Dial(ctx, "tcp6", dst.String())
	if err != nil {
		t.Fatalf("g -> %s (on-link host6 alias): %v", dst, err)
	}
	conn.Write([]byte("hello"))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(conn)
	conn.Close()
	if string(got) != "host:hello" {
		t.Fatalf("got %q from the host server through the alias, want %q", got, "host:hello")
	}
	if n := neighbour(t, d, "g", netip.MustParseAddr("fd00:2::2")); n == "" {
		t.Error("g has no neighbour entry for the alias: it was not reached on-link")
	}
}
