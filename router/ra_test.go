package router

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vnetd/vnetd/frame"
)

// raFrames decodes every router advertisement queued on p.
func raFrames(t *testing.T, p *iface) []gopacket.Packet {
	t.Helper()
	var out []gopacket.Packet
	for _, b := range drain(p) {
		pkt := gopacket.NewPacket(append([]byte(nil), b.Bytes()...), layers.LayerTypeEthernet, gopacket.Default)
		b.Release()
		if pkt.Layer(layers.LayerTypeICMPv6RouterAdvertisement) != nil {
			out = append(out, pkt)
		}
	}
	return out
}

func checkRA(t *testing.T, pkt gopacket.Packet, mac frame.MAC, dst netip.Addr, dmac frame.MAC, prefixes []string) {
	t.Helper()
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	ra := pkt.Layer(layers.LayerTypeICMPv6RouterAdvertisement).(*layers.ICMPv6RouterAdvertisement)
	if frame.MAC(eth.DstMAC) != dmac || frame.MAC(eth.SrcMAC) != mac {
		t.Errorf("RA ethernet %v -> %v, want %v -> %v", eth.SrcMAC, eth.DstMAC, mac, dmac)
	}
	if want := linkLocal(mac); !ip.SrcIP.Equal(net.IP(want.AsSlice())) || !ip.SrcIP.IsLinkLocalUnicast() {
		t.Errorf("RA source %v, want the link-local %v", ip.SrcIP, want)
	}
	if !ip.DstIP.Equal(net.IP(dst.AsSlice())) || ip.HopLimit != 255 {
		t.Errorf("RA to %v hop limit %d, want %v and 255", ip.DstIP, ip.HopLimit, dst)
	}
	// The checksum over the pseudo-header and body, checksum included, must fold to 0.
	body := ip.Payload
	if c := icmp6Csum(ip.SrcIP, ip.DstIP, body); c != 0 && c != 0xffff {
		t.Errorf("RA checksum does not verify (folded sum %#x)", c)
	}
	if ra.RouterLifetime == 0 {
		t.Error("RA router lifetime 0: hosts would not use the router as default")
	}
	var got []string
	var sll frame.MAC
	var mtu uint32
	for _, o := range ra.Options {
		switch o.Type {
		case layers.ICMPv6OptSourceAddress:
			copy(sll[:], o.Data)
		case layers.ICMPv6OptMTU:
			mtu = uint32(o.Data[2])<<24 | uint32(o.Data[3])<<16 | uint32(o.Data[4])<<8 | uint32(o.Data[5])
		case layers.ICMPv6OptPrefixInfo:
			if o.Data[1]&0xc0 != 0xc0 {
				t.Errorf("prefix option flags %#x, want on-link and autonomous", o.Data[1])
			}
			a, _ := netip.AddrFromSlice(o.Data[14:30])
			got = append(got, netip.PrefixFrom(a, int(o.Data[0])).String())
		}
	}
	if sll != mac || mtu != 1500 {
		t.Errorf("RA options: source MAC %v, MTU %d; want %v, 1500", sll, mtu, mac)
	}
	if len(got) != len(prefixes) {
		t.Fatalf("RA prefixes %v, want %v", got, prefixes)
	}
	for k := range got {
		if got[k] != prefixes[k] {
			t.Errorf("RA prefixes %v, want %v", got, prefixes)
		}
	}
}

func rs(src netip.Addr, smac frame.MAC) []byte {
	icmp := []byte{icmp6RS, 0, 0, 0, 0, 0, 0, 0}
	if !src.IsUnspecified() {
		icmp = append(icmp, 1, 1)
		icmp = append(icmp, smac[:]...)
	}
	b := make([]byte, 14+40+len(icmp))
	copy(b[0:6], []byte{0x33, 0x33, 0, 0, 0, 2})
	copy(b[6:12], smac[:])
	b[12], b[13] = 0x86, 0xdd
	ip := b[14:]
	ip[0] = 0x60
	ip[5] = byte(len(icmp))
	ip[6], ip[7] = 58, 255
	s, d := src.As16(), netip.MustParseAddr("ff02::2").As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	copy(ip[40:], icmp)
	c := icmp6Csum(ip[8:24], ip[24:40], ip[40:])
	ip[42], ip[43] = byte(c>>8), byte(c)
	return b
}

func TestRouterAdvertisements(t *testing.T) {
	now := time.Unix(1000, 0)
	var clock = func() time.Time { return now }
	r := New(Options{Name: "r", Now: clock, RAInterval: 30 * time.Second})
	defer r.Close()
	mac := frame.MAC{0x02, 0, 0, 0, 0, 0x01}
	p, err := r.AddInterface(IfaceConfig{Name: "lan0", MAC: mac, Advertise: true, Addresses: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("fd00::1/64"),
		netip.MustParsePrefix("fd01::1/48"), netip.MustParsePrefix("fd02::1/64")}})
	if err != nil {
		t.Fatal(err)
	}
	quiet, err := r.AddInterface(IfaceConfig{Name: "lan1", Addresses: []netip.Prefix{netip.MustParsePrefix("fd09::1/64")}})
	if err != nil {
		t.Fatal(err)
	}
	lan0, lan1 := p.(*iface), quiet.(*iface)
	want := []string{"fd00::/64", "fd02::/64"} // the /48 is not a SLAAC prefix

	r.Tick()
	got := raFrames(t, lan0)
	if len(got) != 1 {
		t.Fatalf("first tick: %d RAs, want 1", len(got))
	}
	checkRA(t, got[0], mac, allNodes, allNodesMAC, want)
	r.Tick()
	if n := len(raFrames(t, lan0)); n != 0 {
		t.Errorf("tick before the interval: %d RAs, want 0", n)
	}
	now = now.Add(31 * time.Second)
	r.Tick()
	if n := len(raFrames(t, lan0)); n != 1 {
		t.Errorf("tick after the interval: %d RAs, want 1", n)
	}
	if n := len(raFrames(t, lan1)); n != 0 {
		t.Errorf("interface without Advertise sent %d RAs", n)
	}

	// A solicitation from a host with an address and its MAC gets a unicast answer;
	// one from a host without an address gets a multicast one.
	host := frame.MAC{0x52, 0x54, 0, 0, 0, 9}
	hostLL := linkLocal(host)
	write(t, lan0, rs(hostLL, host), frame.Meta{})
	got = raFrames(t, lan0)
	if len(got) != 1 {
		t.Fatalf("RS: %d RAs, want 1", len(got))
	}
	checkRA(t, got[0], mac, hostLL, host, want)
	write(t, lan0, rs(netip.IPv6Unspecified(), host), frame.Meta{})
	if got = raFrames(t, lan0); len(got) != 1 {
		t.Fatalf("RS from ::: %d RAs, want 1", len(got))
	}
	checkRA(t, got[0], mac, allNodes, allNodesMAC, want)
	write(t, lan1, rs(hostLL, host), frame.Meta{})
	if n := len(raFrames(t, lan1)); n != 0 {
		t.Errorf("RS on an interface without Advertise: %d RAs", n)
	}

	// Hosts resolve the router's link-local address (their default gateway).
	ns := nsFor(host, hostLL, linkLocal(mac))
	write(t, lan0, ns, frame.Meta{})
	found := false
	for _, b := range drain(lan0) {
		pkt := gopacket.NewPacket(b.Bytes(), layers.LayerTypeEthernet, gopacket.Default)
		if na, ok := pkt.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement); ok && na.TargetAddress.Equal(net.IP(linkLocal(mac).AsSlice())) {
			found = true
		}
		b.Release()
	}
	if !found {
		t.Error("no neighbour advertisement for the router's link-local address")
	}
}

// nsFor builds a neighbour solicitation from (smac, src) for target.
func nsFor(smac frame.MAC, src, target netip.Addr) []byte {
	t := target.As16()
	snm := netip.AddrFrom16([16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]})
	icmp := make([]byte, 32)
	icmp[0] = icmp6NS
	copy(icmp[8:24], t[:])
	icmp[24], icmp[25] = 1, 1
	copy(icmp[26:32], smac[:])
	b := make([]byte, 14+40+len(icmp))
	copy(b[0:6], []byte{0x33, 0x33, 0xff, t[13], t[14], t[15]})
	copy(b[6:12], smac[:])
	b[12], b[13] = 0x86, 0xdd
	ip := b[14:]
	ip[0] = 0x60
	ip[5] = byte(len(icmp))
	ip[6], ip[7] = 58, 255
	s, d := src.As16(), snm.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	copy(ip[40:], icmp)
	c := icmp6Csum(ip[8:24], ip[24:40], ip[40:])
	ip[42], ip[43] = byte(c>>8), byte(c)
	return b
}
