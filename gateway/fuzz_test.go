package gateway

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gaissmai/bart"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vnetd/vnetd/frame"
)

// FuzzDestination checks the gateway's policy on arbitrary guest destinations: an
// allowed destination is never the gateway itself, unspecified, multicast, outside
// Allow or inside Deny, and the host aliases map to loopback.
func FuzzDestination(f *testing.F) {
	g := &Gateway{o: Options{
		Host:  netip.MustParseAddr("10.0.2.2"),
		Host6: netip.MustParseAddr("fd00::2:2"),
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("192.0.2.0/24")},
		Deny:  []netip.Prefix{netip.MustParsePrefix("192.0.2.128/25")},
	}, own: map[netip.Addr]bool{netip.MustParseAddr("10.0.0.2"): true}}
	g.allow = nil
	for _, p := range g.o.Allow {
		if g.allow == nil {
			g.allow = new(bart.Lite)
		}
		g.allow.Insert(p)
	}
	for _, p := range g.o.Deny {
		g.deny.Insert(p)
	}
	for _, a := range []string{"10.0.2.2", "fd00::2:2", "10.0.0.2", "192.0.2.200", "192.0.2.1", "0.0.0.0", "224.0.0.1", "::ffff:127.0.0.1", "8.8.8.8"} {
		f.Add(netip.MustParseAddr(a).AsSlice(), uint16(80))
	}
	f.Fuzz(func(t *testing.T, b []byte, port uint16) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		in := netip.AddrPortFrom(a, port)
		out, allowed := g.destination(in)
		if out.Port() != port {
			t.Fatalf("destination(%v) = %v: port changed", in, out)
		}
		if a == g.o.Host && out.Addr() != netip.MustParseAddr("127.0.0.1") || a == g.o.Host6 && out.Addr() != netip.IPv6Loopback() {
			t.Fatalf("destination(%v) = %v, want loopback", in, out)
		}
		if !allowed {
			return
		}
		o := out.Addr()
		if g.own[a] || o.IsUnspecified() || o.IsMulticast() || !g.allow.Lookup(o) || g.deny.Lookup(o) {
			t.Fatalf("destination(%v) = %v allowed; policy forbids it", in, out)
		}
	})
}

// FuzzGuestFrames writes arbitrary frames into a gateway's port as a guest on its
// switch would: nothing may panic or hang. The gateway denies every destination, so
// the guest input reaches the policy (and is counted there) but no host socket opens.
func FuzzGuestFrames(f *testing.F) {
	gw, err := New(Options{
		Name:      "gwfuzz",
		Logger:    slog.New(slog.DiscardHandler),
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/24"), netip.MustParsePrefix("fd00::2/64")},
		Host:      netip.MustParseAddr("10.0.2.2"),
		Deny:      []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
	})
	if err != nil {
		f.Fatalf("New() = %v", err)
	}
	f.Cleanup(func() { gw.Close() })
	gmac := gw.nic.MAC()
	guest := frame.MAC{0x52, 0x54, 0, 0, 0, 0x10}
	for _, s := range []struct {
		dst   string
		proto string
	}{{"10.0.2.2", "tcp"}, {"10.0.2.2", "udp"}, {"8.8.8.8", "tcp"}, {"10.0.0.2", "udp"}, {"fd00::1", "tcp"}} {
		f.Add(guestPacket(f, guest, gmac, netip.MustParseAddr(s.dst), s.proto))
	}
	arp := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(arp, gopacket.SerializeOptions{FixLengths: true},
		&layers.Ethernet{SrcMAC: net.HardwareAddr(guest[:]), DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4, Operation: 1,
			SourceHwAddress: guest[:], SourceProtAddress: []byte{10, 0, 0, 10}, DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 2}})
	f.Add(arp.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > frame.MaxFrameFor(1500, false) {
			b = b[:frame.MaxFrameFor(1500, false)]
		}
		gw.Port().WriteFrames([]frame.Frame{{Buf: b, N: len(b)}})
		if st := gw.Stats(); st.FlowsActive != 0 || st.FlowsTCP+st.FlowsUDP != 0 {
			t.Fatalf("a flow opened through a gateway that denies everything: %+v", st)
		}
	})
	deadline := time.Now().Add(time.Second)
	for gw.Stats().FlowsActive != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// guestPacket is a TCP SYN or UDP datagram from the guest to dst:80, sent to the
// gateway's MAC.
func guestPacket(tb testing.TB, src, dst frame.MAC, to netip.Addr, proto string) []byte {
	tb.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(src[:]), DstMAC: net.HardwareAddr(dst[:])}
	var ip gopacket.NetworkLayer
	var ipl gopacket.SerializableLayer
	if to.Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		v4 := &layers.IPv4{Version: 4, TTL: 64, SrcIP: net.IP{10, 0, 0, 10}, DstIP: net.IP(to.AsSlice())}
		ip, ipl = v4, v4
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		v6 := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: net.ParseIP("fd00::10"), DstIP: net.IP(to.AsSlice())}
		ip, ipl = v6, v6
	}
	var l4 gopacket.SerializableLayer
	switch proto {
	case "tcp":
		tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, Seq: 1, Window: 65535}
		tcp.SetNetworkLayerForChecksum(ip)
		l4 = tcp
	default:
		udp := &layers.UDP{SrcPort: 40000, DstPort: 80}
		udp.SetNetworkLayerForChecksum(ip)
		l4 = udp
	}
	switch v := ip.(type) {
	case *layers.IPv4:
		if proto == "tcp" {
			v.Protocol = layers.IPProtocolTCP
		} else {
			v.Protocol = layers.IPProtocolUDP
		}
	case *layers.IPv6:
		if proto == "tcp" {
			v.NextHeader = layers.IPProtocolTCP
		} else {
			v.NextHeader = layers.IPProtocolUDP
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ipl, l4, gopacket.Payload("x")); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
