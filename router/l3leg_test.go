package router

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
)

var (
	nicMAC = frame.MAC{0x02, 0, 0, 0, 0, 0x33}
	ipL3   = netip.MustParseAddr("10.9.0.10")
	ip6L3  = netip.MustParseAddr("fd09::10")
	legIP  = netip.MustParseAddr("10.9.0.1")
)

// newL3Lab is newLab plus "v0", a point-to-point L3 leg (10.9.0.1/32, fd09::1/128)
// to an L3 NIC at nicMAC holding 10.9.0.10 and fd09::10.
func newL3Lab(t *testing.T) (*lab, *iface) {
	l := newLab(t, Options{})
	p, err := l.r.AddInterface(IfaceConfig{Name: "v0", Advertise: true, ProxyARP: true,
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/32"), netip.MustParsePrefix("fd09::1/128")},
		L3Peer:    &L3Peer{MAC: nicMAC, Addresses: []netip.Addr{ipL3, ip6L3}}})
	if err != nil {
		t.Fatalf("AddInterface(v0) = %v", err)
	}
	l.resolve(t)
	return l, p.(*iface)
}

// checkL3Framing checks that b is framed as the L3 NIC expects: leg MAC to NIC MAC,
// EtherType et.
func checkL3Framing(t *testing.T, b []byte, leg *iface, et uint16) {
	t.Helper()
	if frame.MAC(b[0:6]) != nicMAC || frame.MAC(b[6:12]) != leg.mac || binary.BigEndian.Uint16(b[12:14]) != et {
		t.Errorf("framing %v -> %v type %#04x, want %v -> %v type %#04x", frame.MAC(b[6:12]), frame.MAC(b[0:6]), binary.BigEndian.Uint16(b[12:14]), leg.mac, nicMAC, et)
	}
}

// One L2 switch leg and one L3 leg: packets cross both ways with their TTL (hop
// limit) decremented, nothing on the L3 leg is resolved (no ARP, no NDP, no
// neighbour entry), ICMP errors and echo replies go back out of it, and ARP on it is
// dropped unanswered.
func TestL3Leg(t *testing.T) {
	l, v0 := newL3Lab(t)
	other := frame.MAC{0x02, 0, 0, 0, 0, 0x99} // an L3 leg ignores the destination MAC

	t.Run("l2 to l3", func(t *testing.T) {
		in := udp4(l.lan0.mac, hostA, ipA, ipL3, 64, 100, false)
		write(t, l.lan0, in, frame.Meta{})
		out := drain(v0)
		defer frame.ReleaseBufs(out)
		if len(out) != 1 {
			t.Fatalf("drain(v0) = %d frames, want the one forwarded packet (no ARP)", len(out))
		}
		got := out[0].Bytes()
		checkL3Framing(t, got, v0, etIPv4)
		if got[14+8] != 63 {
			t.Errorf("TTL = %d, want 63", got[14+8])
		}
		checkIPv4Csum(t, got[14:])
		if !bytes.Equal(got[14+12:], in[14+12:]) {
			t.Errorf("forwarded packet differs from the original beyond the TTL")
		}
	})
	t.Run("l2 to l3 v6", func(t *testing.T) {
		write(t, l.lan0, udp6(l.lan0.mac, hostA, ip6A, ip6L3, 64, 100), frame.Meta{})
		out := drain(v0)
		defer frame.ReleaseBufs(out)
		if len(out) != 1 {
			t.Fatalf("drain(v0) = %d frames, want the one forwarded packet (no NDP)", len(out))
		}
		got := out[0].Bytes()
		checkL3Framing(t, got, v0, etIPv6)
		if got[14+7] != 63 {
			t.Errorf("hop limit = %d, want 63", got[14+7])
		}
	})
	t.Run("l3 to l2", func(t *testing.T) {
		write(t, v0, udp4(other, nicMAC, ipL3, ipB, 64, 100, false), frame.Meta{})
		out := drain(l.lan1)
		defer frame.ReleaseBufs(out)
		if len(out) != 1 {
			t.Fatalf("drain(lan1) = %d frames, want 1", len(out))
		}
		got := out[0].Bytes()
		if frame.MAC(got[0:6]) != hostB || got[14+8] != 63 {
			t.Errorf("forwarded to %v with TTL %d, want %v with 63", frame.MAC(got[0:6]), got[14+8], hostB)
		}
		checkIPv4Csum(t, got[14:])
	})
	for _, tc := range []struct {
		name    string
		in      []byte
		typ     byte
		from    netip.Addr
		quoteAt int
	}{
		{"ttl exceeded", udp4(other, nicMAC, ipL3, ipB, 1, 10, false), icmp4TimeExceeded, legIP, 0},
		{"net unreachable", udp4(other, nicMAC, ipL3, netip.MustParseAddr("192.0.2.9"), 64, 10, false), icmp4Unreach, legIP, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l.now = l.now.Add(time.Second)
			write(t, v0, tc.in, frame.Meta{})
			out := drain(v0)
			defer frame.ReleaseBufs(out)
			if len(out) != 1 {
				t.Fatalf("drain(v0) = %d frames, want one ICMP error", len(out))
			}
			got := out[0].Bytes()
			checkL3Framing(t, got, v0, etIPv4)
			ip := got[14:]
			checkIPv4Csum(t, ip)
			if ip[9] != 1 || ip[20] != tc.typ || netip.AddrFrom4([4]byte(ip[12:16])) != tc.from || netip.AddrFrom4([4]byte(ip[16:20])) != ipL3 {
				t.Errorf("ICMP type %d %v -> %v, want type %d %v -> %v", ip[20], ip[12:16], ip[16:20], tc.typ, tc.from, ipL3)
			}
			if !bytes.Equal(ip[28:48], tc.in[14:34]) {
				t.Errorf("ICMP error does not quote the original header")
			}
		})
	}
	t.Run("hop limit exceeded v6", func(t *testing.T) {
		l.now = l.now.Add(time.Second)
		write(t, v0, udp6(other, nicMAC, ip6L3, ip6B, 1, 10), frame.Meta{})
		out := drain(v0)
		defer frame.ReleaseBufs(out)
		if len(out) != 1 {
			t.Fatalf("drain(v0) = %d frames, want one ICMPv6 error", len(out))
		}
		got := out[0].Bytes()
		checkL3Framing(t, got, v0, etIPv6)
		if got[14+6] != 58 || got[14+40] != icmp6TimeExceeded {
			t.Errorf("next header %d type %d, want ICMPv6 time exceeded", got[14+6], got[14+40])
		}
	})
	t.Run("echo to the leg", func(t *testing.T) {
		req := udp4(other, nicMAC, ipL3, legIP, 64, 8, false)
		ip := req[14:]
		ip[9] = 1
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:12], fold(sum(0, ip[:20])))
		clear(ip[20:])
		ip[20] = icmp4EchoRequest
		binary.BigEndian.PutUint16(ip[22:24], fold(sum(0, ip[20:])))
		write(t, v0, req, frame.Meta{})
		out := drain(v0)
		defer frame.ReleaseBufs(out)
		if len(out) != 1 || out[0].Bytes()[14+20] != icmp4EchoReply {
			t.Fatalf("drain(v0) = %d frames, want one echo reply", len(out))
		}
		checkL3Framing(t, out[0].Bytes(), v0, etIPv4)
	})
	t.Run("arp dropped", func(t *testing.T) {
		write(t, v0, arp(1, bcast, nicMAC, ipL3, legIP), frame.Meta{})
		write(t, v0, nsFor(nicMAC, ip6L3, netip.MustParseAddr("fd09::1")), frame.Meta{})
		l.r.Tick() // no router advertisement either
		if out := drain(v0); len(out) != 0 {
			frame.ReleaseBufs(out)
			t.Fatalf("drain(v0) = %d frames after ARP, NS and a tick, want none", len(out))
		}
	})
	for _, n := range l.r.Neighbors() {
		if n.Iface == "v0" {
			t.Errorf("neighbour entry %+v on the L3 leg", n)
		}
	}
	var info IfaceInfo
	for _, i := range l.r.Interfaces() {
		if i.Name == "v0" {
			info = i
		}
	}
	if info.Kind != KindL3 || info.PeerMAC != nicMAC || info.Dropped["proto"] != 1 {
		t.Errorf("Interfaces() v0 = kind %q peer %v drops %v, want l3, %v, proto=1", info.Kind, info.PeerMAC, info.Dropped, nicMAC)
	}
	want := map[netip.Prefix]bool{netip.MustParsePrefix("10.9.0.10/32"): true, netip.MustParsePrefix("fd09::10/128"): true}
	for _, rt := range l.r.Routes() {
		if want[rt.To] && rt.Iface == "v0" && rt.Connected {
			delete(want, rt.To)
		}
	}
	if len(want) != 0 {
		t.Errorf("Routes() = %+v, missing connected host routes %v on v0", l.r.Routes(), want)
	}
	if d, err := l.r.Explain("lan0", ipL3, 64, 100, false, false); err != nil || d.Out != "v0" || !d.Resolved || d.NeighborMAC != nicMAC {
		t.Errorf("Explain(lan0, %v) = %+v, %v; want out v0 resolved to %v", ipL3, d, err, nicMAC)
	}
}

// An L3 peer needs a unicast MAC.
func TestL3LegBadPeer(t *testing.T) {
	r := New(Options{Name: "r"})
	defer r.Close()
	if _, err := r.AddInterface(IfaceConfig{Name: "v0", L3Peer: &L3Peer{}}); err == nil {
		t.Fatal("AddInterface with a zero peer MAC succeeded")
	}
}
