package router_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/nsstack"
	"github.com/vnetd/vnetd/router"
	l2switch "github.com/vnetd/vnetd/switch"
)

// nsLab is two namespaces on two switches joined by a router:
// a (10.0.0.2, fd00::2) on lan0, b (10.0.1.2, fd00:1::2) on lan1.
type nsLab struct {
	a, b       *nsstack.Namespace
	r          *router.Router
	nicA, nicB *nsstack.NIC
}

// newNSLab builds the lab; the namespaces' NICs send superframes when gso is set.
func newNSLab(t testing.TB, shortcut, gso bool) *nsLab {
	t.Helper()
	sws := map[string]*l2switch.Switch{}
	o := router.Options{Name: "r0"}
	if shortcut {
		o.Shortcut = func(ifc string, vlan uint16, dst frame.MAC) (frame.Port, bool) {
			return sws[ifc].LookupPort(vlan, dst)
		}
	}
	r := router.New(o)
	t.Cleanup(func() { r.Close() })
	l := &nsLab{r: r}
	for k, side := range []struct {
		sw, ns, v4, v6, gw4, gw6 string
	}{
		{"lan0", "a", "10.0.0.2/24", "fd00::2/64", "10.0.0.1", "fd00::1"},
		{"lan1", "b", "10.0.1.2/24", "fd00:1::2/64", "10.0.1.1", "fd00:1::1"},
	} {
		sw := l2switch.New(l2switch.Config{Name: side.sw})
		t.Cleanup(func() { sw.Close() })
		sws[side.sw] = sw
		rp, err := r.AddInterface(router.IfaceConfig{Name: side.sw, Addresses: []netip.Prefix{netip.MustParsePrefix(side.gw4 + "/24"), netip.MustParsePrefix(side.gw6 + "/64")}})
		if err != nil {
			t.Fatalf("AddInterface(%s) = %v", side.sw, err)
		}
		if err := sw.AddPort(rp, l2switch.PortConfig{}); err != nil {
			t.Fatalf("AddPort(router) = %v", err)
		}
		ns, err := nsstack.New(nsstack.Options{Name: side.ns})
		if err != nil {
			t.Fatalf("nsstack.New(%s) = %v", side.ns, err)
		}
		t.Cleanup(func() { ns.Close() })
		nic, err := ns.AddNIC(nsstack.NICConfig{Name: "eth0", NoGSO: !gso})
		if err != nil {
			t.Fatalf("AddNIC = %v", err)
		}
		if err := sw.AddPort(nic, l2switch.PortConfig{}); err != nil {
			t.Fatalf("AddPort(nic) = %v", err)
		}
		for _, p := range []string{side.v4, side.v6} {
			if err := ns.AddAddress("eth0", netip.MustParsePrefix(p)); err != nil {
				t.Fatalf("AddAddress(%s) = %v", p, err)
			}
		}
		for _, rt := range []nsstack.Route{
			{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr(side.gw4)},
			{To: netip.MustParsePrefix("::/0"), Via: netip.MustParseAddr(side.gw6)},
		} {
			if err := ns.AddRoute(rt); err != nil {
				t.Fatalf("AddRoute(%v) = %v", rt, err)
			}
		}
		if k == 0 {
			l.a, l.nicA = ns, nic
		} else {
			l.b, l.nicB = ns, nic
		}
	}
	return l
}

// transfer sends n random bytes from a to b's echo server at addr and checks that the
// same bytes come back.
func transfer(t testing.TB, l *nsLab, addr string, n int) {
	t.Helper()
	ln, err := l.b.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("Listen(%s) = %v", addr, err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := l.a.Dial(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("Dial(%s) = %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	want := make([]byte, n)
	rand.Read(want)
	go func() {
		c.Write(want)
		c.(interface{ CloseWrite() error }).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("ReadAll = %v after %d bytes", err, len(got))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echoed %d bytes through the router, not the %d sent", len(got), n)
	}
}

// TestNamespacesThroughRouter: ping and TCP both ways through the router, with the full
// path and the shortcut, with and without superframes. The TCP segments cross by
// reference (the router rewrites only their head), every byte checked.
func TestNamespacesThroughRouter(t *testing.T) {
	for _, c := range []struct{ shortcut, gso bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		name := "full"
		if c.shortcut {
			name = "shortcut"
		}
		if c.gso {
			name += "/gso"
		}
		shortcut := c.shortcut
		t.Run(name, func(t *testing.T) {
			l := newNSLab(t, shortcut, c.gso)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, dst := range []string{"10.0.0.1", "fd00::1", "10.0.1.2", "fd00:1::2"} {
				if _, err := l.a.Ping(ctx, netip.MustParseAddr(dst), 1, []byte("hi")); err != nil {
					t.Errorf("a.Ping(%s) = %v", dst, err)
				}
			}
			transfer(t, l, net.JoinHostPort("10.0.1.2", "7000"), 4<<20)
			transfer(t, l, net.JoinHostPort("fd00:1::2", "7001"), 4<<20)
			var fwd, sc uint64
			for _, i := range l.r.Interfaces() {
				fwd += i.Forwarded
				sc += i.Shortcut
			}
			if fwd == 0 || (shortcut && sc == 0) || (!shortcut && sc != 0) {
				t.Errorf("forwarded=%d shortcut=%d, want forwarded>0 and shortcut>0 only with the shortcut", fwd, sc)
			}
			// 8 MiB each way: thousands of segments (hundreds of superframes), nearly all
			// by reference; ARP, NDP and ICMP go as bytes.
			for _, n := range []*nsstack.NIC{l.nicA, l.nicB} {
				// (A frame counts as taken by reference when written to the NIC and as
				// received once delivered: the count received may lag behind.)
				if br, all := n.RxByReference(), n.Counters().RxFrames.Load(); br < 100 || all > br && all-br > br/4 {
					t.Errorf("%s received %d frames, %d of them by reference; want nearly all by reference", n.Info().Name, all, br)
				}
			}
		})
	}
}
