package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// onLink6 is a host6 alias inside the lab guest's fd00::/64 (slirp's layout: fd00::2
// beside the guest's fd00::15/64).
var onLink6 = netip.MustParseAddr("fd00::3")

var loopbackOnly = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// guestNeighbor returns the guest's neighbour entry for a, if any.
func (l *lab) guestNeighbor(a netip.Addr) (mac, state string) {
	for _, n := range l.guest.Neighbors() {
		if n.Addr == a {
			return n.MAC, n.State
		}
	}
	return "", ""
}

// TestAlias6OnLink: an IPv6 alias inside the guests' own subnet is on-link to them, so
// the gateway answers neighbour solicitations for it with its own MAC, as it answers
// ARP for the IPv4 one. The guest has no route at all: it can reach the alias only on
// the link.
func TestAlias6OnLink(t *testing.T) {
	l := newLabRoutes(t, Options{Host6: onLink6, Allow: loopbackOnly}, false)
	srv := echoServer(t, "tcp6", "[::1]:0")
	c, err := dial(t, l.guest, "tcp6", netip.AddrPortFrom(onLink6, srv.Port()).String())
	if err != nil {
		t.Fatalf("dial the on-link alias %v: %v", onLink6, err)
	}
	defer c.Close()
	roundTrip(t, c)
	if mac, _ := l.guestNeighbor(onLink6); !strings.EqualFold(mac, l.gw.nic.MAC().String()) {
		t.Fatalf("guest's neighbour entry for %v: MAC %q, want the gateway's %v", onLink6, mac, l.gw.nic.MAC())
	}
	if st := l.gw.Stats(); st.FlowsTCP != 1 || st.BytesToHost != 1<<20 {
		t.Fatalf("stats %+v: want the flow relayed to [::1]", st)
	}
}

// TestAlias6OnLinkEcho: an echo request to the on-link alias goes to the gateway's
// ping path like one to a routed alias: relayed through a ping socket when the host
// allows them, else dropped and counted, never answered by the stack itself.
func TestAlias6OnLinkEcho(t *testing.T) {
	l := newLabRoutes(t, Options{Host6: onLink6, Allow: loopbackOnly}, false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := l.guest.Ping(ctx, onLink6, 1, []byte("vnetd-echo"))
	st := l.gw.Stats()
	if pingAllowed(t) {
		if err != nil || st.FlowsICMP != 1 {
			t.Fatalf("ping %v with ping sockets: %v, stats %+v; want an answer through one ICMP flow", onLink6, err, st)
		}
		return
	}
	if !errors.Is(err, context.DeadlineExceeded) || st.ICMPUnsupported != 1 || st.FlowsICMP != 0 {
		t.Fatalf("ping %v without ping sockets: %v, stats %+v; want no answer and one counted unsupported", onLink6, err, st)
	}
}

// TestForeignSolicitation: the gateway answers solicitations for its own addresses and
// aliases only. One for another address in the guest's /64, and one for an address
// whose solicited-node group the gateway joined for its own fd00::2 (fd00:1::2), get
// no answer and are counted as not_ours: the gateway does not claim the link's
// addresses (a router's, a guest's own during duplicate address detection).
func TestForeignSolicitation(t *testing.T) {
	// Only loopback is allowed: had the gateway claimed an address, the guest's flow
	// to it would be refused (and counted denied), never dialled on the host.
	l := newLabRoutes(t, Options{Host6: onLink6, Allow: loopbackOnly}, false)
	if err := l.guest.AddAddress("eth0", netip.MustParsePrefix("fd00:1::10/64")); err != nil {
		t.Fatal(err)
	}
	others := []netip.Addr{netip.MustParseAddr("fd00::77"), netip.MustParseAddr("fd00:1::2")}
	var wg sync.WaitGroup
	errs := make([]error, len(others))
	for i, a := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial(t, l.guest, "tcp6", netip.AddrPortFrom(a, 80).String())
			if err == nil {
				c.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, a := range others {
		if !errors.Is(errs[i], syscall.EHOSTUNREACH) && !strings.Contains(fmt.Sprint(errs[i]), "no route to host") {
			t.Errorf("dial %v (nobody's): %v, want no route to host (no neighbour answered)", a, errs[i])
		}
		if mac, state := l.guestNeighbor(a); mac != "" && state != "Unreachable" && state != "Incomplete" {
			t.Errorf("guest's neighbour entry for %v: %s %s, want none resolved", a, mac, state)
		}
	}
	// gVisor sends three solicitations per address before it gives up.
	if n := l.gw.nic.Drops()["not_ours"]; n < uint64(len(others)) {
		t.Errorf("not_ours drops: %d, want at least %d", n, len(others))
	}
	if st := l.gw.Stats(); st.FlowsTCP != 0 || st.Denied != 0 {
		t.Errorf("stats %+v: no flow should have started", st)
	}
}
