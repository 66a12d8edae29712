package router

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/internal/testwait"
)

// pump copies frames read from src to dst until src closes.
func pump(src, dst frame.Port) {
	fs := make([]frame.Frame, 16)
	for k := range fs {
		fs[k].Buf = make([]byte, frame.MaxSuperFrame)
	}
	for {
		n, err := src.ReadFrames(fs)
		if errors.Is(err, net.ErrClosed) || err != nil {
			return
		}
		dst.WriteFrames(fs[:n])
	}
}

// waitFrame polls p's queue for one frame, for at most 5 s.
func waitFrame(t *testing.T, p *iface) *frame.Buf {
	t.Helper()
	var one [1]*frame.Buf
	testwait.Eventually(t, 5*time.Second, func() bool { return p.q.TryPop(one[:]) == 1 }, "a frame on %s", p.cfg.Name)
	return one[0]
}

// TestTraceroute probes A -> r1 -> r2 -> B with TTL 1, 2, 3 as traceroute does.
func TestTraceroute(t *testing.T) {
	pfx := netip.MustParsePrefix
	r1, r2 := New(Options{Name: "r1"}), New(Options{Name: "r2"})
	defer r2.Close()
	defer r1.Close()
	p, _ := r1.AddInterface(IfaceConfig{Name: "lan0", Addresses: []netip.Prefix{pfx("10.0.0.1/24")}})
	lan0 := p.(*iface)
	m1, _ := r1.AddInterface(IfaceConfig{Name: "mid", Addresses: []netip.Prefix{pfx("10.255.0.1/30")}})
	m2, _ := r2.AddInterface(IfaceConfig{Name: "mid", Addresses: []netip.Prefix{pfx("10.255.0.2/30")}})
	p, _ = r2.AddInterface(IfaceConfig{Name: "lan1", Addresses: []netip.Prefix{pfx("10.0.1.1/24")}})
	lan1 := p.(*iface)
	if err := r1.AddRoute(Route{To: pfx("10.0.1.0/24"), Via: netip.MustParseAddr("10.255.0.2")}); err != nil {
		t.Fatalf("r1.AddRoute() = %v", err)
	}
	if err := r2.AddRoute(Route{To: pfx("10.0.0.0/24"), Via: netip.MustParseAddr("10.255.0.1")}); err != nil {
		t.Fatalf("r2.AddRoute() = %v", err)
	}
	go pump(m1, m2)
	go pump(m2, m1)
	write(t, lan0, arp(1, bcast, hostA, ipA, rtr0), frame.Meta{})
	waitFrame(t, lan0).Release()
	write(t, lan1, arp(1, bcast, hostB, ipB, netip.MustParseAddr("10.0.1.1")), frame.Meta{})
	waitFrame(t, lan1).Release()

	for ttl, hop := range []string{"10.0.0.1", "10.255.0.2"} {
		write(t, lan0, udp4(lan0.mac, hostA, ipA, ipB, byte(ttl+1), 8, false), frame.Meta{})
		b := waitFrame(t, lan0)
		ip := b.Bytes()[14:]
		if ip[20] != icmp4TimeExceeded || netip.AddrFrom4([4]byte(ip[12:16])).String() != hop {
			t.Errorf("TTL %d: ICMP type %d from %v, want time exceeded from %s", ttl+1, ip[20], netip.AddrFrom4([4]byte(ip[12:16])), hop)
		}
		b.Release()
	}
	sent := udp4(lan0.mac, hostA, ipA, ipB, 3, 8, false)
	write(t, lan0, sent, frame.Meta{})
	b := waitFrame(t, lan1)
	defer b.Release()
	got := b.Bytes()
	if got[14+8] != 1 || frame.MAC(got[0:6]) != hostB || !bytes.Equal(got[14+20:], sent[14+20:]) {
		t.Errorf("TTL 3: B got TTL %d to %v, want TTL 1 to %v with the sent payload", got[14+8], frame.MAC(got[0:6]), hostB)
	}
}
