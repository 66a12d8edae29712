package main

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vnetd/vnetd/frame"
)

// TestUDPFrame checks the generator's frames decode as the UDP/IPv4 datagram meant,
// with a valid IPv4 header checksum, at both sizes the bench uses.
func TestUDPFrame(t *testing.T) {
	to := frame.MAC{2, 0, 0, 0, 0, 9}
	src, dst := netip.MustParseAddr("10.0.2.16"), netip.MustParseAddr("10.0.2.2")
	for _, size := range []int{60, 1514} {
		f := udpFrame(to, src, dst, 9, size)
		if len(f) != size {
			t.Fatalf("size %d: frame is %d bytes", size, len(f))
		}
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if eth == nil || ip == nil || udp == nil {
			t.Fatalf("size %d: not Ethernet/IPv4/UDP: %v", size, p)
		}
		if frame.MAC(eth.DstMAC) != to || frame.MAC(eth.SrcMAC) != vmMAC {
			t.Errorf("size %d: MACs %v -> %v", size, eth.SrcMAC, eth.DstMAC)
		}
		if !ip.SrcIP.Equal(src.AsSlice()) || !ip.DstIP.Equal(dst.AsSlice()) || int(ip.Length) != size-14 {
			t.Errorf("size %d: IPv4 %v -> %v length %d", size, ip.SrcIP, ip.DstIP, ip.Length)
		}
		if udp.DstPort != 9 || int(udp.Length) != size-34 || len(udp.Payload) != size-42 {
			t.Errorf("size %d: UDP port %d length %d payload %d", size, udp.DstPort, udp.Length, len(udp.Payload))
		}
		var sum uint32
		for i := 14; i < 34; i += 2 {
			sum += uint32(f[i])<<8 | uint32(f[i+1])
		}
		for sum > 0xffff {
			sum = sum>>16 + sum&0xffff
		}
		if sum != 0xffff {
			t.Errorf("size %d: IPv4 header checksum does not verify (sum %#x)", size, sum)
		}
	}
}

// TestARP checks the request decodes as "who has tpa", and that readFrames picks the
// sender's MAC out of a length-framed reply for that address, ignoring one for another.
func TestARP(t *testing.T) {
	spa, tpa := netip.MustParseAddr("192.168.127.2"), netip.MustParseAddr("192.168.127.1")
	p := gopacket.NewPacket(arpRequest(spa, tpa), layers.LayerTypeEthernet, gopacket.Default)
	arp, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if arp == nil || arp.Operation != layers.ARPRequest || !net.IP(arp.DstProtAddress).Equal(tpa.AsSlice()) ||
		!net.IP(arp.SourceProtAddress).Equal(spa.AsSlice()) {
		t.Fatalf("request = %v", p)
	}
	reply := func(mac frame.MAC, from netip.Addr) []byte {
		f := arpRequest(from, spa)
		f[21] = 2 // reply
		copy(f[22:], mac[:])
		return withLength(f)
	}
	gw, other := frame.MAC{0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd}, frame.MAC{2, 0, 0, 0, 0, 1}
	a, b := net.Pipe()
	defer a.Close()
	replies := make(chan frame.MAC, 1)
	go readFrames(b, tpa, replies)
	go func() {
		a.Write(reply(other, netip.MustParseAddr("192.168.127.9")))
		a.Write(reply(gw, tpa))
	}()
	select {
	case got := <-replies:
		if got != gw {
			t.Fatalf("resolved %v, want %v", got, gw)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no reply resolved")
	}
}
