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
	hostA  = frame.MAC{0x02, 0, 0, 0, 0, 0xa}
	hostB  = frame.MAC{0x02, 0, 0, 0, 0, 0xb}
	bcast  = frame.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	ipA    = netip.MustParseAddr("10.0.0.2")
	ipB    = netip.MustParseAddr("10.0.1.2")
	ip6A   = netip.MustParseAddr("fd00:0::2")
	ip6B   = netip.MustParseAddr("fd00:1::2")
	rtr0   = netip.MustParseAddr("10.0.0.1")
	rtr0v6 = netip.MustParseAddr("fd00:0::1")
)

type lab struct {
	r          *Router
	lan0, lan1 *iface
	now        time.Time
}

func newLab(t testing.TB, o Options) *lab {
	l := &lab{now: time.Unix(1000, 0)}
	o.Name = "r"
	o.Now = func() time.Time { return l.now }
	l.r = New(o)
	t.Cleanup(func() { l.r.Close() })
	p0, err := l.r.AddInterface(IfaceConfig{Name: "lan0", MTU: 1500, Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("fd00:0::1/64")}})
	if err != nil {
		t.Fatalf("AddInterface(lan0) = %v", err)
	}
	p1, err := l.r.AddInterface(IfaceConfig{Name: "lan1", MTU: 1400, Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.1.1/24"), netip.MustParsePrefix("fd00:1::1/64")}})
	if err != nil {
		t.Fatalf("AddInterface(lan1) = %v", err)
	}
	l.lan0, l.lan1 = p0.(*iface), p1.(*iface)
	return l
}

func write(t testing.TB, p *iface, b []byte, m frame.Meta) {
	t.Helper()
	if n, err := p.WriteFrames([]frame.Frame{{Buf: b, N: len(b), Meta: m}}); n != 1 || err != nil {
		t.Fatalf("WriteFrames() = %d, %v", n, err)
	}
}

// drain returns every frame queued on p.
func drain(p *iface) []*frame.Buf {
	var out []*frame.Buf
	var tmp [16]*frame.Buf
	for {
		n := p.q.TryPop(tmp[:])
		if n == 0 {
			return out
		}
		out = append(out, tmp[:n]...)
	}
}

func arp(op uint16, dst, sha frame.MAC, spa, tpa netip.Addr) []byte {
	b := make([]byte, 42)
	copy(b[0:6], dst[:])
	copy(b[6:12], sha[:])
	binary.BigEndian.PutUint16(b[12:14], etARP)
	binary.BigEndian.PutUint16(b[14:16], 1)
	binary.BigEndian.PutUint16(b[16:18], etIPv4)
	b[18], b[19] = 6, 4
	binary.BigEndian.PutUint16(b[20:22], op)
	copy(b[22:28], sha[:])
	s, d := spa.As4(), tpa.As4()
	copy(b[28:32], s[:])
	copy(b[38:42], d[:])
	return b
}

func udp4(dst frame.MAC, src frame.MAC, sip, dip netip.Addr, ttl byte, payload int, df bool) []byte {
	b := make([]byte, 14+20+8+payload)
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:14], etIPv4)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(28+payload))
	if df {
		ip[6] = 0x40
	}
	ip[8], ip[9] = ttl, 17
	s, d := sip.As4(), dip.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	binary.BigEndian.PutUint16(ip[10:12], fold(sum(0, ip[:20])))
	binary.BigEndian.PutUint16(ip[20:22], 1234)
	binary.BigEndian.PutUint16(ip[22:24], 5678)
	binary.BigEndian.PutUint16(ip[24:26], uint16(8+payload))
	for k := range payload {
		ip[28+k] = byte(k)
	}
	return b
}

func udp6(dst, src frame.MAC, sip, dip netip.Addr, hop byte, payload int) []byte {
	b := make([]byte, 14+40+8+payload)
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:14], etIPv6)
	ip := b[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:6], uint16(8+payload))
	ip[6], ip[7] = 17, hop
	s, d := sip.As16(), dip.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	return b
}

// resolve teaches the router both hosts' MACs via ARP requests for its addresses.
func (l *lab) resolve(t testing.TB) {
	write(t, l.lan0, arp(1, bcast, hostA, ipA, rtr0), frame.Meta{})
	write(t, l.lan1, arp(1, bcast, hostB, ipB, netip.MustParseAddr("10.0.1.1")), frame.Meta{})
	frame.ReleaseBufs(drain(l.lan0))
	frame.ReleaseBufs(drain(l.lan1))
}

func TestARPReply(t *testing.T) {
	l := newLab(t, Options{})
	write(t, l.lan0, arp(1, bcast, hostA, ipA, rtr0), frame.Meta{})
	out := drain(l.lan0)
	if len(out) != 1 {
		t.Fatalf("drain(lan0) = %d frames, want 1 ARP reply", len(out))
	}
	b := out[0].Bytes()
	if binary.BigEndian.Uint16(b[20:22]) != 2 || frame.MAC(b[22:28]) != l.lan0.mac || !bytes.Equal(b[28:32], []byte{10, 0, 0, 1}) || frame.MAC(b[0:6]) != hostA {
		t.Errorf("ARP reply = % x, want op 2 from %v for 10.0.0.1 to %v", b, l.lan0.mac, hostA)
	}
	// No answer for an address the router does not own (no proxy ARP).
	write(t, l.lan0, arp(1, bcast, hostA, ipA, netip.MustParseAddr("10.0.0.77")), frame.Meta{})
	if out := drain(l.lan0); len(out) != 0 {
		t.Errorf("ARP for 10.0.0.77 got %d replies, want 0", len(out))
	}
	if n := l.r.Neighbors(); len(n) != 1 || n[0].Addr != ipA || n[0].MAC != hostA || !n[0].Complete {
		t.Errorf("Neighbors() = %+v, want %v at %v", n, ipA, hostA)
	}
}

func TestProxyARP(t *testing.T) {
	r := New(Options{Name: "p"})
	defer r.Close()
	p0, _ := r.AddInterface(IfaceConfig{Name: "a", ProxyARP: true, Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}})
	r.AddInterface(IfaceConfig{Name: "b", Addresses: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24")}})
	i0 := p0.(*iface)
	write(t, i0, arp(1, bcast, hostA, ipA, netip.MustParseAddr("10.9.0.5")), frame.Meta{})
	out := drain(i0)
	if len(out) != 1 || frame.MAC(out[0].Bytes()[22:28]) != i0.mac {
		t.Fatalf("proxy ARP for 10.9.0.5 = %d replies, want 1 naming %v", len(out), i0.mac)
	}
}

func checkIPv4Csum(t *testing.T, ip []byte) {
	t.Helper()
	if fold(sum(0, ip[:20])) != 0 {
		t.Errorf("IPv4 header checksum of % x does not verify", ip[:20])
	}
}

func TestForwardDecisions(t *testing.T) {
	l := newLab(t, Options{})
	l.resolve(t)
	tests := []struct {
		name    string
		frame   []byte
		meta    frame.Meta
		outIf   string // "lan1" forwarded, "lan0" ICMP back, "" nothing
		icmpTyp byte
		icmpCod byte
		mtu     uint16
	}{
		{name: "forward", frame: udp4(l.lan0.mac, hostA, ipA, ipB, 64, 100, true), outIf: "lan1"},
		{name: "ttl 1 expires", frame: udp4(l.lan0.mac, hostA, ipA, ipB, 1, 100, true), outIf: "lan0", icmpTyp: 11},
		{name: "ttl 0 expires", frame: udp4(l.lan0.mac, hostA, ipA, ipB, 0, 100, true), outIf: "lan0", icmpTyp: 11},
		{name: "no route", frame: udp4(l.lan0.mac, hostA, ipA, netip.MustParseAddr("192.0.2.9"), 64, 10, false), outIf: "lan0", icmpTyp: 3, icmpCod: 0},
		{name: "too big DF", frame: udp4(l.lan0.mac, hostA, ipA, ipB, 64, 1450, true), outIf: "lan0", icmpTyp: 3, icmpCod: 4, mtu: 1400},
		{name: "too big no DF dropped", frame: udp4(l.lan0.mac, hostA, ipA, ipB, 64, 1450, false)},
		{name: "GSO superframe within MTU per segment", frame: udp4(l.lan0.mac, hostA, ipA, ipB, 64, 8000, true),
			meta: frame.Meta{GSO: frame.GSOUDPL4, HdrLen: 42, GSOSize: 1300, NeedsCsum: true, CsumStart: 34, CsumOffset: 6}, outIf: "lan1"},
		{name: "GSO superframe segment too big", frame: udp4(l.lan0.mac, hostA, ipA, ipB, 64, 8000, true),
			meta: frame.Meta{GSO: frame.GSOUDPL4, HdrLen: 42, GSOSize: 1400}, outIf: "lan0", icmpTyp: 3, icmpCod: 4, mtu: 1400},
		{name: "other MAC ignored", frame: udp4(hostB, hostA, ipA, ipB, 64, 10, true)},
		{name: "broadcast not forwarded", frame: udp4(l.lan0.mac, hostA, ipA, netip.MustParseAddr("10.0.1.255"), 64, 10, true)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l.now = l.now.Add(time.Second) // refill the ICMP bucket
			write(t, l.lan0, tc.frame, tc.meta)
			o0, o1 := drain(l.lan0), drain(l.lan1)
			defer frame.ReleaseBufs(o0)
			defer frame.ReleaseBufs(o1)
			switch tc.outIf {
			case "":
				if len(o0)+len(o1) != 0 {
					t.Fatalf("got %d+%d frames, want none", len(o0), len(o1))
				}
			case "lan1":
				if len(o1) != 1 || len(o0) != 0 {
					t.Fatalf("got lan0=%d lan1=%d frames, want lan1=1", len(o0), len(o1))
				}
				got := o1[0].Bytes()
				if frame.MAC(got[0:6]) != hostB || frame.MAC(got[6:12]) != l.lan1.mac {
					t.Errorf("MACs = %v -> %v, want %v -> %v", frame.MAC(got[6:12]), frame.MAC(got[0:6]), l.lan1.mac, hostB)
				}
				if got[14+8] != tc.frame[14+8]-1 {
					t.Errorf("TTL = %d, want %d", got[14+8], tc.frame[14+8]-1)
				}
				checkIPv4Csum(t, got[14:])
				if !bytes.Equal(got[14+12:], tc.frame[14+12:]) {
					t.Errorf("forwarded payload differs from the original")
				}
				if o1[0].Meta != tc.meta {
					t.Errorf("Meta = %+v, want %+v", o1[0].Meta, tc.meta)
				}
			case "lan0":
				if len(o0) != 1 || len(o1) != 0 {
					t.Fatalf("got lan0=%d lan1=%d frames, want one ICMP error on lan0", len(o0), len(o1))
				}
				got := o0[0].Bytes()
				ip := got[14:]
				checkIPv4Csum(t, ip)
				ic := ip[20:]
				if ip[9] != 1 || ic[0] != tc.icmpTyp || ic[1] != tc.icmpCod || binary.BigEndian.Uint16(ic[6:8]) != tc.mtu {
					t.Errorf("ICMP = type %d code %d mtu %d, want %d/%d/%d", ic[0], ic[1], binary.BigEndian.Uint16(ic[6:8]), tc.icmpTyp, tc.icmpCod, tc.mtu)
				}
				if fold(sum(0, ic)) != 0 {
					t.Errorf("ICMP checksum does not verify")
				}
				if !bytes.Equal(ip[12:16], []byte{10, 0, 0, 1}) || !bytes.Equal(ip[16:20], []byte{10, 0, 0, 2}) || frame.MAC(got[0:6]) != hostA {
					t.Errorf("ICMP error %v -> %v (to %v), want 10.0.0.1 -> 10.0.0.2", ip[12:16], ip[16:20], frame.MAC(got[0:6]))
				}
				if !bytes.Equal(ic[8:8+20], tc.frame[14:34]) {
					t.Errorf("ICMP error does not quote the original header")
				}
			}
		})
	}
	info := l.r.Interfaces()
	if info[0].Dropped["ttl"] != 2 || info[0].Dropped["no_route"] != 1 || info[0].ICMPErrors != 5 {
		t.Errorf("lan0 counters = %+v, want ttl=2 no_route=1 icmp_errors=5", info[0])
	}
}

func TestICMPRateLimit(t *testing.T) {
	l := newLab(t, Options{ICMPRate: 2, ICMPBurst: 2})
	l.resolve(t)
	for range 5 {
		write(t, l.lan0, udp4(l.lan0.mac, hostA, ipA, ipB, 1, 10, true), frame.Meta{})
	}
	if out := drain(l.lan0); len(out) != 2 {
		t.Errorf("5 expiring packets in one instant gave %d ICMP errors, want 2 (burst)", len(out))
	}
	l.now = l.now.Add(time.Second)
	write(t, l.lan0, udp4(l.lan0.mac, hostA, ipA, ipB, 1, 10, true), frame.Meta{})
	if out := drain(l.lan0); len(out) != 1 {
		t.Errorf("after 1s got %d ICMP errors, want 1", len(out))
	}
}

func TestNeighborResolution(t *testing.T) {
	l := newLab(t, Options{MaxPending: 2})
	write(t, l.lan0, arp(1, bcast, hostA, ipA, rtr0), frame.Meta{})
	drain(l.lan0)
	for range 3 {
		write(t, l.lan0, udp4(l.lan0.mac, hostA, ipA, ipB, 64, 10, true), frame.Meta{})
	}
	o1 := drain(l.lan1)
	if len(o1) != 1 || binary.BigEndian.Uint16(o1[0].Bytes()[12:14]) != etARP || !bytes.Equal(o1[0].Bytes()[38:42], []byte{10, 0, 1, 2}) {
		t.Fatalf("drain(lan1) = %d frames, want one ARP request for 10.0.1.2", len(o1))
	}
	if got := l.r.Interfaces()[1].Dropped["neigh_queue_full"]; got != 1 {
		t.Errorf("neigh_queue_full = %d, want 1", got)
	}
	write(t, l.lan1, arp(2, l.lan1.mac, hostB, ipB, netip.MustParseAddr("10.0.1.1")), frame.Meta{})
	if o := drain(l.lan1); len(o) != 2 || frame.MAC(o[0].Bytes()[0:6]) != hostB {
		t.Fatalf("after ARP reply drain(lan1) = %d frames, want the 2 queued frames to %v", len(o), hostB)
	}
	// An unanswered neighbour's queue is dropped after ResolveTimeout.
	write(t, l.lan0, udp4(l.lan0.mac, hostA, ipA, netip.MustParseAddr("10.0.1.3"), 64, 10, true), frame.Meta{})
	l.now = l.now.Add(4 * time.Second)
	l.r.Tick()
	if got := l.r.Interfaces()[1].Dropped["neigh_timeout"]; got != 1 {
		t.Errorf("neigh_timeout = %d, want 1", got)
	}
}

func TestNeighborCacheBounded(t *testing.T) {
	l := newLab(t, Options{MaxNeighbors: 4})
	for k := range 10 {
		a := netip.AddrFrom4([4]byte{10, 0, 0, byte(10 + k)})
		l.now = l.now.Add(time.Millisecond)
		write(t, l.lan0, arp(1, bcast, hostA, a, rtr0), frame.Meta{})
	}
	if n := len(l.r.Neighbors()); n != 4 {
		t.Errorf("len(Neighbors()) = %d, want 4 (the limit)", n)
	}
}

func TestEcho(t *testing.T) {
	l := newLab(t, Options{})
	l.resolve(t)
	req := udp4(l.lan0.mac, hostA, ipA, rtr0, 64, 12, false)
	ip := req[14:]
	ip[9] = 1
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:12], fold(sum(0, ip[:20])))
	ic := ip[20:]
	ic[0], ic[1], ic[2], ic[3] = 8, 0, 0, 0
	binary.BigEndian.PutUint16(ic[2:4], fold(sum(0, ic)))
	write(t, l.lan0, req, frame.Meta{})
	out := drain(l.lan0)
	if len(out) != 1 {
		t.Fatalf("ping 10.0.0.1 got %d frames, want 1 reply", len(out))
	}
	rip := out[0].Bytes()[14:]
	checkIPv4Csum(t, rip)
	if rip[20] != 0 || fold(sum(0, rip[20:])) != 0 || !bytes.Equal(rip[16:20], []byte{10, 0, 0, 2}) || !bytes.Equal(rip[28:], ip[28:]) {
		t.Errorf("echo reply = % x, want a valid type 0 to 10.0.0.2 with the same data", rip)
	}
}

func TestIPv6(t *testing.T) {
	l := newLab(t, Options{})
	// NS from B for fd00:1::1 teaches the router B and gets an NA.
	ns := make([]byte, 32)
	ns[0] = icmp6NS
	t1 := netip.MustParseAddr("fd00:1::1").As16()
	copy(ns[8:24], t1[:])
	ns[24], ns[25] = 1, 1
	copy(ns[26:32], hostB[:])
	nb := l.lan1.build6(l.lan1.mac, ip6B, netip.MustParseAddr("fd00:1::1"), 255, ns)
	nsf := append([]byte(nil), nb.Bytes()...)
	nb.Release()
	copy(nsf[6:12], hostB[:])
	write(t, l.lan1, nsf, frame.Meta{})
	out := drain(l.lan1)
	if len(out) != 1 || out[0].Bytes()[14+40] != icmp6NA {
		t.Fatalf("NS got %d frames, want 1 NA", len(out))
	}
	na := out[0].Bytes()[14:]
	if icmp6Csum(na[8:24], na[24:40], na[40:]) != 0 || frame.MAC(na[40+26:40+32]) != l.lan1.mac {
		t.Errorf("NA = % x: bad checksum or target MAC, want %v", na, l.lan1.mac)
	}
	write(t, l.lan0, udp6(l.lan0.mac, hostA, ip6A, ip6B, 9, 20), frame.Meta{})
	o1 := drain(l.lan1)
	if len(o1) != 1 || o1[0].Bytes()[14+7] != 8 || frame.MAC(o1[0].Bytes()[0:6]) != hostB {
		t.Fatalf("forwarded v6 = %d frames, want 1 with hop limit 8 to %v", len(o1), hostB)
	}
	// Hop limit 1 expires: the router solicits A first (it has not learnt A), then answers.
	write(t, l.lan0, udp6(l.lan0.mac, hostA, ip6A, ip6B, 1, 20), frame.Meta{})
	o0 := drain(l.lan0)
	if len(o0) != 1 || o0[0].Bytes()[14+40] != icmp6NS {
		t.Fatalf("hop limit 1 got %d frames on lan0, want an NS for A", len(o0))
	}
	na2 := make([]byte, 32)
	na2[0], na2[4] = icmp6NA, 0x60
	ta := ip6A.As16()
	copy(na2[8:24], ta[:])
	na2[24], na2[25] = 2, 1
	copy(na2[26:32], hostA[:])
	nab := l.lan0.build6(l.lan0.mac, ip6A, rtr0v6, 255, na2)
	write(t, l.lan0, append([]byte(nil), nab.Bytes()...), frame.Meta{})
	nab.Release()
	o0 = drain(l.lan0)
	if len(o0) != 1 {
		t.Fatalf("after NA got %d frames, want the queued time exceeded", len(o0))
	}
	te := o0[0].Bytes()[14:]
	if te[40] != icmp6TimeExceeded || icmp6Csum(te[8:24], te[24:40], te[40:]) != 0 || frame.MAC(o0[0].Bytes()[0:6]) != hostA {
		t.Errorf("ICMPv6 error = type %d to %v, want time exceeded (3) with a valid checksum to %v", te[40], frame.MAC(o0[0].Bytes()[0:6]), hostA)
	}
}

func TestRoutes(t *testing.T) {
	l := newLab(t, Options{})
	if err := l.r.AddRoute(Route{To: netip.MustParsePrefix("192.168.0.0/16"), Via: netip.MustParseAddr("10.0.1.254")}); err != nil {
		t.Fatalf("AddRoute() = %v", err)
	}
	if err := l.r.AddRoute(Route{To: netip.MustParsePrefix("192.168.0.0/16"), Via: netip.MustParseAddr("172.16.0.1")}); err == nil {
		t.Errorf("AddRoute(via off-link) = nil, want error")
	}
	rt, ok := l.r.lookup(netip.MustParseAddr("192.168.3.4"))
	if !ok || rt.iface != l.lan1 || rt.via != netip.MustParseAddr("10.0.1.254") {
		t.Fatalf("lookup(192.168.3.4) = %+v, %v; want via 10.0.1.254 on lan1", rt, ok)
	}
	if n := len(l.r.Routes()); n != 5 {
		t.Errorf("len(Routes()) = %d, want 5", n)
	}
	if err := l.r.RemoveRoute(Route{To: netip.MustParsePrefix("192.168.0.0/16")}); err != nil {
		t.Fatalf("RemoveRoute() = %v", err)
	}
	if _, ok := l.r.lookup(netip.MustParseAddr("192.168.3.4")); ok {
		t.Errorf("lookup after RemoveRoute found a route")
	}
}

func TestCsumUpdate(t *testing.T) {
	for ttl := 1; ttl < 256; ttl++ {
		f := udp4(hostA, hostB, ipA, ipB, byte(ttl), 0, false)
		ip := f[14:]
		old := binary.BigEndian.Uint16(ip[8:10])
		ip[8]--
		binary.BigEndian.PutUint16(ip[10:12], csumUpdate(binary.BigEndian.Uint16(ip[10:12]), old, binary.BigEndian.Uint16(ip[8:10])))
		if fold(sum(0, ip[:20])) != 0 {
			t.Fatalf("incremental update at TTL %d gives a bad checksum", ttl)
		}
	}
}

func TestClose(t *testing.T) {
	r := New(Options{Name: "c"})
	p, _ := r.AddInterface(IfaceConfig{Name: "x"})
	done := make(chan error)
	go func() {
		_, err := p.ReadFrames(make([]frame.Frame, 1))
		done <- err
	}()
	r.Close()
	r.Close()
	if err := <-done; err == nil {
		t.Errorf("ReadFrames after Close = nil error, want net.ErrClosed")
	}
	if _, err := r.AddInterface(IfaceConfig{Name: "y"}); err == nil {
		t.Errorf("AddInterface after Close = nil, want error")
	}
}
