package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vnetd/vnetd/internal/testwait"
	"github.com/vnetd/vnetd/nsstack"
)

// lab is a guest namespace wired back to back to a gateway.
type lab struct {
	gw    *Gateway
	guest *nsstack.Namespace
}

func newLab(t *testing.T, o Options) *lab {
	t.Helper()
	return newLabRoutes(t, o, true)
}

// newLabRoutes is newLab; without routes the guest reaches only its on-link subnets.
func newLabRoutes(t *testing.T, o Options, routes bool) *lab {
	t.Helper()
	if o.Name == "" {
		o.Name = "gw"
	}
	if len(o.Addresses) == 0 {
		o.Addresses = []netip.Prefix{netip.MustParsePrefix("10.0.0.2/24"), netip.MustParsePrefix("fd00::2/64")}
	}
	gw, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	guest, err := nsstack.New(nsstack.Options{Name: "guest"})
	if err != nil {
		t.Fatal(err)
	}
	nic, err := guest.AddNIC(nsstack.NICConfig{Name: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"10.0.0.10/24", "fd00::10/64"} {
		if err := guest.AddAddress("eth0", netip.MustParsePrefix(p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []nsstack.Route{
		{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.0.0.2")},
		{To: netip.MustParsePrefix("::/0"), Via: netip.MustParseAddr("fd00::2")},
	} {
		if !routes {
			break
		}
		if err := guest.AddRoute(r); err != nil {
			t.Fatal(err)
		}
	}
	stop := nsstack.Connect(nic, gw.Port())
	t.Cleanup(func() {
		stop()
		guest.Close()
		gw.Close()
	})
	return &lab{gw: gw, guest: guest}
}

// echoServer is a host TCP echo server on a loopback address.
func echoServer(t *testing.T, network, addr string) netip.AddrPort {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				// Plain copies: io.Copy between TCP sockets would splice through
				// pooled pipes, whose fds would look like a leak.
				defer c.Close()
				io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{c}, make([]byte, 64<<10))
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).AddrPort()
}

// roundTrip sends 1 MiB through c and checks it comes back intact.
func roundTrip(t *testing.T, c net.Conn) {
	t.Helper()
	msg := make([]byte, 1<<20)
	rand.Read(msg)
	go func() {
		c.Write(msg)
		c.(interface{ CloseWrite() error }).CloseWrite()
	}()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo: got %d bytes, want the %d sent", len(got), len(msg))
	}
}

func dial(t *testing.T, ns *nsstack.Namespace, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return ns.Dial(ctx, network, addr)
}

// waitIdle waits for the gateway to have no flow open and the process to be back to
// fds open file descriptors.
func waitIdle(t *testing.T, g *Gateway, fds int) {
	t.Helper()
	var n int
	var a int64
	if !testwait.Until(5*time.Second, func() bool {
		n, a = countFDs(t), g.Stats().FlowsActive
		return a == 0 && n <= fds
	}) {
		t.Fatalf("after the flows ended: %d flows active, %d fds open (%d before): %s", a, n, fds, fdList())
	}
}

var alias = netip.MustParseAddr("10.0.2.2")

func viaAlias(ap netip.AddrPort) string { return netip.AddrPortFrom(alias, ap.Port()).String() }

func fdList() string {
	es, _ := os.ReadDir("/proc/self/fd")
	var s []string
	for _, e := range es {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		s = append(s, e.Name()+"="+l)
	}
	return strings.Join(s, " ")
}

func countFDs(t *testing.T) int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

func TestTCPThroughAliasAndRoute(t *testing.T) {
	l := newLab(t, Options{Host: netip.MustParseAddr("10.0.2.2"), Host6: netip.MustParseAddr("fd00:2::2")})
	srv4 := echoServer(t, "tcp4", "127.0.0.1:0")
	srv6 := echoServer(t, "tcp6", "[::1]:0")
	fds := countFDs(t)
	for _, tc := range []struct{ name, network, addr string }{
		{"alias", "tcp4", netip.AddrPortFrom(netip.MustParseAddr("10.0.2.2"), srv4.Port()).String()},
		{"alias6", "tcp6", netip.AddrPortFrom(netip.MustParseAddr("fd00:2::2"), srv6.Port()).String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dial(t, l.guest, tc.network, tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			roundTrip(t, c)
		})
	}
	waitIdle(t, l.gw, fds)
	st := l.gw.Stats()
	if st.FlowsTCP != 2 || st.BytesToHost != 2<<20 || st.BytesFromHost != 2<<20 {
		t.Fatalf("stats %+v: want 2 TCP flows, 2 MiB each way", st)
	}
}

// refusedQuickly dials addr from the guest and wants a RST (connection refused) well
// before any timeout.
func refusedQuickly(t *testing.T, ns *nsstack.Namespace, network, addr string) {
	t.Helper()
	start := time.Now()
	c, err := dial(t, ns, network, addr)
	if err == nil {
		c.Close()
		t.Fatalf("dial %s: connected, want refused", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !bytes.Contains([]byte(err.Error()), []byte("refused")) {
		t.Fatalf("dial %s: %v, want connection refused", addr, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("dial %s refused only after %v", addr, d)
	}
}

func TestRefusedAndDenied(t *testing.T) {
	l := newLab(t, Options{Host: netip.MustParseAddr("10.0.2.2"),
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.9.0.0/16")},
		Deny:  []netip.Prefix{netip.MustParsePrefix("10.9.9.0/24")}})
	// A port nobody listens on: bind one, note it, close it.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	fds := countFDs(t)
	refusedQuickly(t, l.guest, "tcp4", netip.AddrPortFrom(netip.MustParseAddr("10.0.2.2"), uint16(closed)).String())
	if st := l.gw.Stats(); st.Refused != 1 || st.Denied != 0 {
		t.Fatalf("after a refused dial: %+v", st)
	}
	// Not in allow, and in allow but also in deny (deny wins). These never reach
	// a host socket, so nothing leaves the machine.
	refusedQuickly(t, l.guest, "tcp4", "10.8.8.8:80")
	refusedQuickly(t, l.guest, "tcp4", "10.9.9.9:80")
	refusedQuickly(t, l.guest, "tcp6", "[fd00:9::9]:80")
	if st := l.gw.Stats(); st.Denied != 3 || st.Refused != 1 || st.FlowsTCP != 0 {
		t.Fatalf("after three denied dials: %+v", st)
	}
	waitIdle(t, l.gw, fds)
}

func TestUDPRoundTripAndIdle(t *testing.T) {
	l := newLab(t, Options{Host: netip.MustParseAddr("10.0.2.2"), Host6: netip.MustParseAddr("fd00:2::2"), UDPIdleTimeout: 300 * time.Millisecond})
	for _, fam := range []struct{ network, listen, dst string }{
		{"udp4", "127.0.0.1:0", "10.0.2.2"},
		{"udp6", "[::1]:0", "fd00:2::2"},
	} {
		pc, err := net.ListenPacket(fam.network, fam.listen)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			b := make([]byte, 2048)
			for {
				n, from, err := pc.ReadFrom(b)
				if err != nil {
					return
				}
				pc.WriteTo(append([]byte("re:"), b[:n]...), from)
			}
		}()
		fds := countFDs(t)
		port := pc.LocalAddr().(*net.UDPAddr).Port
		c, err := l.guest.ListenPacket(fam.network, ":0")
		if err != nil {
			t.Fatal(err)
		}
		dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(fam.dst), uint16(port)))
		for i := range 3 {
			msg := []byte{'a' + byte(i)}
			if _, err := c.WriteTo(msg, dst); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b := make([]byte, 100)
			n, _, err := c.ReadFrom(b)
			if err != nil {
				t.Fatalf("%s datagram %d: %v", fam.network, i, err)
			}
			if string(b[:n]) != "re:"+string(msg) {
				t.Fatalf("%s: got %q", fam.network, b[:n])
			}
		}
		c.Close()
		waitIdle(t, l.gw, fds) // the idle timeout closed the flow's host socket
	}
	if st := l.gw.Stats(); st.FlowsUDP != 2 || st.BytesToHost != 6 || st.BytesFromHost != 24 {
		t.Fatalf("stats %+v: want 2 UDP flows, 6 bytes out, 24 back", st)
	}
}

func TestFlowCap(t *testing.T) {
	l := newLab(t, Options{MaxFlows: 2, Host: alias})
	srv := echoServer(t, "tcp4", "127.0.0.1:0")
	var conns []net.Conn
	for range 2 {
		c, err := dial(t, l.guest, "tcp4", viaAlias(srv))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	refusedQuickly(t, l.guest, "tcp4", viaAlias(srv))
	if st := l.gw.Stats(); st.DroppedAtCap != 1 || st.FlowsActive != 2 {
		t.Fatalf("at the cap: %+v", st)
	}
	for _, c := range conns {
		c.Close()
	}
	testwait.Value(t, 5*time.Second, func() (Stats, bool) { st := l.gw.Stats(); return st, st.FlowsActive == 0 }, "no flow active")
	c, err := dial(t, l.guest, "tcp4", viaAlias(srv))
	if err != nil {
		t.Fatalf("after the flows closed: %v", err)
	}
	c.Close()
}

func TestCloseEndsFlows(t *testing.T) {
	l := newLab(t, Options{Host: alias})
	srv := echoServer(t, "tcp4", "127.0.0.1:0")
	fds := countFDs(t)
	c, err := dial(t, l.guest, "tcp4", viaAlias(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	l.gw.Close()
	if l.gw.Stats().FlowsActive != 0 {
		t.Fatalf("after Close: %+v", l.gw.Stats())
	}
	waitIdle(t, l.gw, fds) // the echo server closes its side when it sees ours close
}

// TestAliasOnLink: an alias inside the guests' own subnet (slirp's layout, 10.0.2.2
// beside the guest's 10.0.2.15/24) is on-link to them, so the gateway answers ARP
// for it.
func TestAliasOnLink(t *testing.T) {
	l := newLab(t, Options{Host: netip.MustParseAddr("10.0.0.3")})
	srv := echoServer(t, "tcp4", "127.0.0.1:0")
	c, err := dial(t, l.guest, "tcp4", netip.AddrPortFrom(netip.MustParseAddr("10.0.0.3"), srv.Port()).String())
	if err != nil {
		t.Fatalf("dial the on-link alias 10.0.0.3: %v", err)
	}
	defer c.Close()
	roundTrip(t, c)
}
