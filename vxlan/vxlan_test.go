package vxlan

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/nsstack"
	l2switch "github.com/vnetd/vnetd/switch"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// freePort returns a UDP port free on 127.0.0.1 and 127.0.0.2 a moment ago.
func freePort(t testing.TB) uint16 {
	t.Helper()
	for range 20 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatalf("ListenUDP: %v", err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c2, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: port})
		c.Close()
		if err == nil {
			c2.Close()
			return uint16(port)
		}
	}
	t.Fatal("no free UDP port on 127.0.0.1 and 127.0.0.2")
	return 0
}

func open(t testing.TB, o Options) *Port {
	t.Helper()
	if o.AgeEvery == 0 {
		o.AgeEvery = -1
	}
	p, err := Open(o)
	if err != nil {
		t.Fatalf("Open(%+v): %v", o, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// pair is two tunnel ends on 127.0.0.1 and 127.0.0.2, each the other's remote.
func pair(t testing.TB, mod func(*Options)) (a, b *Port) {
	t.Helper()
	port := freePort(t)
	lo1, lo2 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	oa := Options{Name: "a", Local: netip.AddrPortFrom(lo1, port), DstPort: port, VNI: 42, Remotes: []netip.Addr{lo2}}
	ob := Options{Name: "b", Local: netip.AddrPortFrom(lo2, port), DstPort: port, VNI: 42, Remotes: []netip.Addr{lo1}}
	if mod != nil {
		mod(&oa)
		mod(&ob)
	}
	return open(t, oa), open(t, ob)
}

func eth(dst, src frame.MAC, n int) []byte {
	b := make([]byte, n)
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	b[12], b[13] = 0x88, 0xb5 // local experimental ethertype
	for i := 14; i < n; i++ {
		b[i] = byte(i)
	}
	return b
}

func write(t testing.TB, p *Port, pkts ...[]byte) {
	t.Helper()
	fs := make([]frame.Frame, len(pkts))
	for i, b := range pkts {
		fs[i] = frame.Frame{Buf: b, N: len(b)}
	}
	if n, err := p.WriteFrames(fs); err != nil || n != len(pkts) {
		t.Fatalf("%s.WriteFrames(%d frames) = %d, %v", p.Name(), len(pkts), n, err)
	}
}

// read reads one frame from p within a second, or fails.
func read(t testing.TB, p *Port) []byte {
	t.Helper()
	type res struct {
		b   []byte
		err error
	}
	ch := make(chan res, 1)
	go func() {
		fs := []frame.Frame{{Buf: make([]byte, p.Info().MaxFrame)}}
		n, err := p.ReadFrames(fs)
		if n == 0 {
			ch <- res{nil, err}
			return
		}
		ch <- res{fs[0].Bytes(), err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("%s.ReadFrames: %v", p.Name(), r.err)
		}
		return r.b
	case <-time.After(2 * time.Second):
		p.Close() // releases the reader
		<-ch
		t.Fatalf("%s.ReadFrames: nothing within 2s", p.Name())
	}
	return nil
}

var (
	macA = frame.MAC{2, 0, 0, 0, 0, 0xa}
	macB = frame.MAC{2, 0, 0, 0, 0, 0xb}
	macC = frame.MAC{2, 0, 0, 0, 0, 0xc}
)

func TestHeader(t *testing.T) {
	var h [HeaderLen]byte
	PutHeader(h[:], 0xabcdef)
	if want := []byte{0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0}; !bytes.Equal(h[:], want) {
		t.Fatalf("PutHeader(0xabcdef) = % x, want % x", h, want)
	}
	inner := eth(frame.Broadcast, macA, 60)
	for _, c := range []struct {
		name string
		b    []byte
		vni  uint32
		err  error
	}{
		{"ok", append(h[:], inner...), 0xabcdef, nil},
		{"reserved bits ignored", append([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 42, 0xff}, inner...), 42, nil},
		{"short header", h[:7], 0, ErrShort},
		{"no inner frame", append(h[:], inner[:13]...), 0, ErrShort},
		{"I flag clear", append([]byte{0, 0, 0, 0, 0, 0, 42, 0}, inner...), 0, ErrNoVNI},
	} {
		t.Run(c.name, func(t *testing.T) {
			vni, got, err := Decap(c.b)
			if !errors.Is(err, c.err) || vni != c.vni {
				t.Fatalf("Decap = %d, %v; want %d, %v", vni, err, c.vni, c.err)
			}
			if err == nil && !bytes.Equal(got, inner) {
				t.Fatalf("Decap inner frame differs")
			}
		})
	}
}

func TestOptions(t *testing.T) {
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	lo6 := netip.MustParseAddrPort("[::1]:0")
	for _, c := range []struct {
		name    string
		o       Options
		mtu     int
		wantErr bool
	}{
		{"v4 default mtu", Options{Local: lo}, 1450, false},
		{"v6 default mtu", Options{Local: lo6}, 1430, false},
		{"jumbo underlay", Options{Local: lo, UnderlayMTU: 9000}, 8950, false},
		{"explicit mtu", Options{Local: lo, MTU: 1400}, 1400, false},
		{"mtu past underlay", Options{Local: lo, MTU: 1451}, 0, true},
		{"v6 mtu past underlay", Options{Local: lo6, MTU: 1450}, 0, true},
		{"tiny underlay", Options{Local: lo, UnderlayMTU: 100}, 0, true},
		{"vni too big", Options{Local: lo, VNI: 1 << 24}, 0, true},
		{"no local", Options{}, 0, true},
		{"remote of other family", Options{Local: lo, Remotes: []netip.Addr{netip.MustParseAddr("::1")}}, 0, true},
		{"multicast remote", Options{Local: lo, Remotes: []netip.Addr{netip.MustParseAddr("239.1.1.1")}}, 0, true},
		{"duplicate remote", Options{Local: lo, Remotes: []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.2")}}, 0, true},
		{"too many source ports", Options{Local: lo, SourcePorts: 65}, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := c.o
			err := o.check()
			if (err != nil) != c.wantErr {
				t.Fatalf("check(%+v) = %v, want error %v", c.o, err, c.wantErr)
			}
			if err != nil && !errors.Is(err, ErrOptions) {
				t.Fatalf("check error %v does not wrap ErrOptions", err)
			}
			if err == nil && o.MTU != c.mtu {
				t.Fatalf("MTU = %d, want %d", o.MTU, c.mtu)
			}
		})
	}
	if _, err := Open(Options{Name: "x", Local: lo, MTU: 9000}); err == nil {
		t.Fatal("Open with an inner MTU past the underlay's succeeded")
	}
}

// TestFloodLearnUnicast: an unknown destination is flooded to the remote, the far end
// learns the sender behind the near end's address, then answers by unicast; counters
// per tunnel and per remote match.
func TestFloodLearnUnicast(t *testing.T) {
	a, b := pair(t, nil)
	f := eth(frame.Broadcast, macA, 100)
	write(t, a, f)
	if got := read(t, b); !bytes.Equal(got, f) {
		t.Fatalf("b read % x, want % x", got, f)
	}
	macs := b.MACs()
	if len(macs) != 1 || macs[0].MAC != macA || macs[0].Remote != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("b.MACs() = %+v, want %s behind 127.0.0.1", macs, macA)
	}
	r := eth(macA, macB, 200)
	write(t, b, r)
	if got := read(t, a); !bytes.Equal(got, r) {
		t.Fatalf("a read % x, want % x", got, r)
	}
	if s := b.Stats(); s.TxFlooded != 0 || s.Learned != 1 || s.Counters.TxFrames != 1 || s.Counters.RxFrames != 1 || s.Counters.RxBytes != 100 {
		t.Fatalf("b.Stats() = %+v, want one frame each way, one learned, nothing flooded", s)
	}
	if s := a.Stats(); s.TxFlooded != 1 {
		t.Fatalf("a.Stats().TxFlooded = %d, want 1", s.TxFlooded)
	}
	rs := a.Remotes()
	if len(rs) != 1 || !rs[0].Static || rs[0].Counters.TxFrames != 1 || rs[0].Counters.RxFrames != 1 || rs[0].Counters.TxBytes != 100 {
		t.Fatalf("a.Remotes() = %+v, want 127.0.0.2 with one frame each way", rs)
	}
}

// TestDstPorts: the tunnel works on the kernel's legacy port and containerlab's.
func TestDstPorts(t *testing.T) {
	for _, port := range []uint16{8472, 14789, DefaultDstPort} {
		lo1, lo2 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
		a, err := Open(Options{Name: "a", Local: netip.AddrPortFrom(lo1, 0), DstPort: port, VNI: 7, Remotes: []netip.Addr{lo2}, AgeEvery: -1})
		if err != nil {
			t.Logf("port %d busy here: %v", port, err)
			continue
		}
		b, err := Open(Options{Name: "b", Local: netip.AddrPortFrom(lo2, 0), DstPort: port, VNI: 7, AgeEvery: -1})
		if err != nil {
			a.Close()
			t.Fatalf("Open(b on %d): %v", port, err)
		}
		if got := a.LocalAddr().Port(); got != port {
			t.Fatalf("local port %d, want the dstport %d", got, port)
		}
		f := eth(frame.Broadcast, macA, 80)
		write(t, a, f)
		if got := read(t, b); !bytes.Equal(got, f) {
			t.Fatalf("port %d: b read % x, want % x", port, got, f)
		}
		a.Close()
		b.Close()
	}
}

// TestDrops: oversize frames, superframes, other VNIs, malformed datagrams and floods
// with no remote are dropped and counted, never sent or delivered.
func TestDrops(t *testing.T) {
	a, b := pair(t, nil)
	write(t, a, eth(frame.Broadcast, macA, 1450+14+1))
	gso := frame.Frame{Buf: eth(frame.Broadcast, macA, 100), N: 100, Meta: frame.Meta{GSO: frame.GSOTCPv4, GSOSize: 50}}
	if _, err := a.WriteFrames([]frame.Frame{gso}); err != nil {
		t.Fatalf("WriteFrames(superframe): %v", err)
	}
	if s := a.Stats(); s.TxOversize != 1 || s.TxMalformed != 1 || s.Counters.TxDropped != 2 || s.Counters.TxFrames != 0 {
		t.Fatalf("a.Stats() = %+v, want an oversize and a malformed (not TCP) superframe dropped, nothing sent", s)
	}
	// Raw datagrams to b from a plain socket on 127.0.0.3.
	c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3)}, net.UDPAddrFromAddrPort(b.LocalAddr()))
	if err != nil {
		t.Fatalf("DialUDP: %v", err)
	}
	defer c.Close()
	hdr := func(vni uint32) []byte { var h [HeaderLen]byte; PutHeader(h[:], vni); return h[:] }
	inner := eth(frame.Broadcast, macC, 64)
	for _, d := range [][]byte{
		append(hdr(43), inner...),                            // other VNI
		{0, 0, 0, 0, 0, 0, 42, 0},                            // no I flag, no frame
		append(hdr(42), inner[:10]...),                       // inner too short
		append(hdr(42), eth(frame.Broadcast, macC, 1500)...), // oversize inner
		append(hdr(42), eth(macA, frame.Broadcast, 64)...),   // multicast source
		append(hdr(42), inner...),                            // good
	} {
		if _, err := c.Write(d); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if got := read(t, b); !bytes.Equal(got, inner) {
		t.Fatalf("b read % x, want only the good datagram", got)
	}
	s := b.Stats()
	if s.RxBadVNI != 1 || s.RxMalformed != 3 || s.RxOversize != 1 || s.Counters.RxDropped != 5 || s.Counters.RxFrames != 1 {
		t.Fatalf("b.Stats() = %+v, want 1 bad VNI, 3 malformed, 1 oversize", s)
	}
	// b learned macC behind 127.0.0.3, a dynamic remote.
	rs := b.Remotes()
	if len(rs) != 2 || rs[1].Addr != netip.MustParseAddr("127.0.0.3") || rs[1].Static {
		t.Fatalf("b.Remotes() = %+v, want the static remote then 127.0.0.3 learned", rs)
	}
	// A flood from a port with no static remote is dropped.
	if err := b.SetRemotes(nil); err != nil {
		t.Fatalf("SetRemotes(nil): %v", err)
	}
	write(t, b, eth(frame.Broadcast, macB, 60))
	if s := b.Stats(); s.TxNoRemote != 1 {
		t.Fatalf("b.Stats().TxNoRemote = %d, want 1", s.TxNoRemote)
	}
}

// TestAgingLimitsRemotes: learned MACs age out with the time passed in, the table is
// capped (counted), and removing a remote forgets the MACs behind it.
func TestAgingLimitsRemotes(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	a, b := pair(t, func(o *Options) { o.Now = clock; o.MaxMACs = 2; o.MACAging = time.Minute })
	for i := range 3 {
		write(t, a, eth(frame.Broadcast, frame.MAC{2, 0, 0, 0, 1, byte(i)}, 60))
		read(t, b)
	}
	if s := b.Stats(); s.MACs != 2 || s.Learned != 2 || s.LearnLimited != 1 {
		t.Fatalf("b.Stats() = %+v, want 2 learned and 1 limited", s)
	}
	now = now.Add(30 * time.Second)
	write(t, a, eth(frame.Broadcast, frame.MAC{2, 0, 0, 0, 1, 0}, 60))
	read(t, b)
	now = now.Add(45 * time.Second) // 02:..:01:01 idle 75s, 01:00 idle 45s
	b.Age(now)
	if m := b.MACs(); len(m) != 1 || m[0].MAC != (frame.MAC{2, 0, 0, 0, 1, 0}) || m[0].Age != 45*time.Second {
		t.Fatalf("b.MACs() after aging = %+v, want only 02:00:00:00:01:00, 45s old", m)
	}
	if s := b.Stats(); s.Aged != 1 {
		t.Fatalf("b.Stats().Aged = %d, want 1", s.Aged)
	}
	// Removing the remote forgets what was learned behind it; re-adding starts afresh.
	if err := b.SetRemotes([]netip.Addr{netip.MustParseAddr("127.0.0.9")}); err != nil {
		t.Fatalf("SetRemotes: %v", err)
	}
	if m := b.MACs(); len(m) != 0 {
		t.Fatalf("b.MACs() after removing its remote = %+v, want none", m)
	}
	if err := b.SetRemotes([]netip.Addr{netip.MustParseAddr("::1")}); err == nil {
		t.Fatal("SetRemotes with an IPv6 remote on an IPv4 tunnel succeeded")
	}
	if rs := b.Remotes(); len(rs) != 1 || rs[0].Addr != netip.MustParseAddr("127.0.0.9") {
		t.Fatalf("b.Remotes() after a refused SetRemotes = %+v, want 127.0.0.9 alone", rs)
	}
}

// TestHeadEndReplication: a broadcast goes once to each of three remotes; a unicast to
// a learned MAC goes only to its remote.
func TestHeadEndReplication(t *testing.T) {
	port := freePort(t)
	var far []*Port
	var addrs []netip.Addr
	for i := 2; i <= 4; i++ {
		a := netip.AddrFrom4([4]byte{127, 0, 0, byte(i)})
		addrs = append(addrs, a)
		far = append(far, open(t, Options{Name: a.String(), Local: netip.AddrPortFrom(a, port), DstPort: port, VNI: 1, Remotes: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}))
	}
	hub := open(t, Options{Name: "hub", Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), DstPort: port, VNI: 1, Remotes: addrs})
	f := eth(frame.Broadcast, macA, 90)
	write(t, hub, f)
	for _, p := range far {
		if got := read(t, p); !bytes.Equal(got, f) {
			t.Fatalf("%s read % x, want the broadcast", p.Name(), got)
		}
	}
	write(t, far[1], eth(macA, macB, 70)) // hub learns macB behind 127.0.0.3
	read(t, hub)
	write(t, hub, eth(macB, macA, 75))
	if got := read(t, far[1]); len(got) != 75 {
		t.Fatalf("127.0.0.3 read %d bytes, want the 75-byte unicast", len(got))
	}
	for i, r := range hub.Remotes() {
		want := uint64(1)
		if i == 1 {
			want = 2
		}
		if r.Counters.TxFrames != want {
			t.Fatalf("hub remote %s sent %d frames, want %d", r.Addr, r.Counters.TxFrames, want)
		}
	}
}

// TestSourcePortFollowsFlow: the outer source port is one of the port's, the same for
// every frame of a flow, and flows spread over more than one.
func TestSourcePortFollowsFlow(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatalf("ListenUDP: %v", err)
	}
	defer c.Close()
	a := open(t, Options{Name: "a", Local: netip.MustParseAddrPort("127.0.0.1:0"), DstPort: uint16(c.LocalAddr().(*net.UDPAddr).Port), VNI: 5,
		Remotes: []netip.Addr{netip.MustParseAddr("127.0.0.2")}, SourcePorts: 8})
	ours := map[int]bool{}
	for _, sp := range a.SourcePorts() {
		if sp < 1024 {
			t.Fatalf("source port %d is not ephemeral", sp)
		}
		ours[int(sp)] = true
	}
	udp := func(sport uint16) []byte {
		b := eth(frame.Broadcast, macA, 14+20+8+10)
		b[12], b[13] = 0x08, 0x00
		ip := b[14:]
		ip[0], ip[9] = 0x45, 17
		ip[6], ip[7] = 0, 0
		copy(ip[12:20], []byte{10, 0, 0, 1, 10, 0, 0, 2})
		ip[20], ip[21], ip[22], ip[23] = byte(sport>>8), byte(sport), 0, 53
		return b
	}
	buf := make([]byte, 2048)
	recvPort := func() int {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, from, err := c.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("ReadFromUDP: %v", err)
		}
		if !ours[from.Port] {
			t.Fatalf("datagram from port %d, not one of %v", from.Port, a.SourcePorts())
		}
		return from.Port
	}
	seen := map[int]bool{}
	for i := range 32 {
		write(t, a, udp(uint16(1000+i)))
		p1 := recvPort()
		write(t, a, udp(uint16(1000+i)))
		if p2 := recvPort(); p2 != p1 {
			t.Fatalf("flow %d sent from ports %d then %d", i, p1, p2)
		}
		seen[p1] = true
	}
	if len(seen) < 2 {
		t.Fatalf("32 flows all sent from %v", seen)
	}
}

// TestTwoSwitches: two switches each with a namespace, joined only by a tunnel: ping
// and TCP with every byte checked, IPv4 and IPv6 inside, by reference and plain, with
// superframes segmented at the tunnel edge.
func TestTwoSwitches(t *testing.T) {
	for _, gso := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "gso"}[gso], func(t *testing.T) {
			ta, tb := pair(t, nil)
			var nss [2]*nsstack.Namespace
			for i, tp := range []*Port{ta, tb} {
				sw := l2switch.New(l2switch.Config{Name: tp.Name()})
				t.Cleanup(func() { sw.Close() })
				ns, err := nsstack.New(nsstack.Options{Name: tp.Name()})
				if err != nil {
					t.Fatalf("nsstack.New: %v", err)
				}
				t.Cleanup(func() { ns.Close() })
				nic, err := ns.AddNIC(nsstack.NICConfig{Name: "eth0", MTU: tp.Info().MTU, NoGSO: !gso})
				if err != nil {
					t.Fatalf("AddNIC: %v", err)
				}
				for _, pc := range []struct {
					p    frame.Port
					name string
				}{{nic, "nic"}, {tp, "vxlan"}} {
					if err := sw.AddPort(pc.p, l2switch.PortConfig{Name: pc.name}); err != nil {
						t.Fatalf("AddPort(%s): %v", pc.name, err)
					}
				}
				for _, a := range []string{"10.9.0.%d/24", "fd09::%d/64"} {
					if err := ns.AddAddress("eth0", netip.MustParsePrefix(sprintf(a, i+1))); err != nil {
						t.Fatalf("AddAddress: %v", err)
					}
				}
				nss[i] = ns
			}
			for _, dst := range []string{"10.9.0.2", "fd09::2"} {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				var err error
				for range 10 { // IPv6 DAD / neighbour discovery may take a moment
					if _, err = nss[0].Ping(ctx, netip.MustParseAddr(dst), 1, []byte("vxlan")); err == nil {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				cancel()
				if err != nil {
					t.Fatalf("ping %s: %v", dst, err)
				}
				transfer(t, nss[0], nss[1], netip.AddrPortFrom(netip.MustParseAddr(dst), 7000).String(), 2<<20)
			}
			s := ta.Stats()
			if s.TxOversize != 0 || s.TxMalformed != 0 || s.Counters.TxFrames == 0 {
				t.Fatalf("a.Stats() = %+v, want frames sent and none dropped", s)
			}
			if gso && (s.TxSegmented == 0 || s.TxGSO == 0) {
				t.Fatalf("a.Stats() = %+v: superframes were not segmented here and sent with UDP GSO", s)
			}
		})
	}
}

func sprintf(f string, i int) string {
	return string(bytes.ReplaceAll([]byte(f), []byte("%d"), []byte{byte('0' + i)}))
}

// transfer sends n random bytes from a to a server in b at addr, which answers with
// their SHA-256 once the sender closes its side: the digest must match.
func transfer(t testing.TB, a, b *nsstack.Namespace, addr string, n int) {
	t.Helper()
	ln, err := b.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("Listen(%s): %v", addr, err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		h := sha256.New()
		io.Copy(h, c)
		c.Write(h.Sum(nil))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := a.Dial(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("Dial(%s): %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	data := make([]byte, n)
	rand.Read(data)
	want := sha256.Sum256(data)
	if _, err := c.Write(data); err != nil {
		t.Fatalf("Write: %v", err)
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, want[:]) {
		t.Fatalf("server digest %x (%v), want %x of the %d bytes sent", got, err, want, n)
	}
}

// TestClose: Close is idempotent and releases a blocked reader with net.ErrClosed.
func TestClose(t *testing.T) {
	a, _ := pair(t, nil)
	done := make(chan error, 1)
	go func() {
		_, err := a.ReadFrames([]frame.Frame{{Buf: make([]byte, 2048)}})
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	a.Close()
	a.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadFrames after Close = %v, want net.ErrClosed", err)
	}
	if _, err := a.WriteFrames([]frame.Frame{{Buf: eth(frame.Broadcast, macA, 60), N: 60}}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteFrames after Close = %v, want net.ErrClosed", err)
	}
}
