package portsec

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/frame/frametest"
)

var (
	vmMAC     = frame.MAC{0x52, 0x54, 0, 0, 0, 1}
	victimMAC = frame.MAC{0x02, 0, 0, 0, 0, 9}
	vmIP      = netip.MustParseAddr("10.0.0.50")
	victimIP  = netip.MustParseAddr("10.0.0.10")
	bcast     = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("SerializeLayers: %v", err)
	}
	return buf.Bytes()
}

func arpFrame(t *testing.T, sha frame.MAC, spa netip.Addr) []byte {
	eth := &layers.Ethernet{SrcMAC: sha[:], DstMAC: bcast, EthernetType: layers.EthernetTypeARP}
	a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPReply, SourceHwAddress: sha[:], SourceProtAddress: spa.AsSlice(), DstHwAddress: bcast, DstProtAddress: []byte{10, 0, 0, 20}}
	return serialize(t, eth, a)
}

func udpFrame(t *testing.T, src frame.MAC, sip, dip netip.Addr, sport, dport uint16, payload []byte) []byte {
	eth := &layers.Ethernet{SrcMAC: src[:], DstMAC: bcast, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: sip.AsSlice(), DstIP: dip.AsSlice()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth, ip, udp, gopacket.Payload(payload))
}

func naFrame(t *testing.T, src frame.MAC, sip, target netip.Addr, tlla frame.MAC) []byte {
	eth := &layers.Ethernet{SrcMAC: src[:], DstMAC: bcast, EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: sip.AsSlice(), DstIP: net.ParseIP("ff02::1")}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0)}
	icmp.SetNetworkLayerForChecksum(ip)
	na := &layers.ICMPv6NeighborAdvertisement{Flags: 0x20, TargetAddress: target.AsSlice(),
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: tlla[:]}}}
	return serialize(t, eth, ip, icmp, na)
}

// rig is a Port wrapping one end of a pair; the test plays the VM on the other.
type rig struct {
	p  *Port
	vm *frametest.End
}

func newRig(t *testing.T, pol Policy, now func() time.Time) *rig {
	a, b := frametest.NewPair(frametest.PairOptions{})
	t.Cleanup(func() { a.Close() })
	return &rig{p: Wrap(a, Options{Policy: pol, Now: now}), vm: b}
}

// send has the VM send every frame and reports which of them came out of the Port,
// by index. A sentinel frame from the allowed source ends the read.
func (r *rig) send(t *testing.T, sentinel []byte, frames ...[]byte) []bool {
	t.Helper()
	fs := make([]frame.Frame, 0, len(frames)+1)
	for _, b := range append(frames, sentinel) {
		fs = append(fs, frame.Frame{Buf: b, N: len(b)})
	}
	if n, err := r.vm.WriteFrames(fs); n != len(fs) || err != nil {
		t.Fatalf("vm.WriteFrames: %d, %v", n, err)
	}
	got := make([]bool, len(frames))
	out := make([]frame.Frame, 8)
	for i := range out {
		out[i].Buf = make([]byte, 2048)
	}
	for {
		n, err := r.p.ReadFrames(out)
		if err != nil {
			t.Fatalf("ReadFrames: %v", err)
		}
		for _, f := range out[:n] {
			if string(f.Bytes()) == string(sentinel) {
				return got
			}
			for i, b := range frames {
				if string(f.Bytes()) == string(b) {
					got[i] = true
				}
			}
		}
	}
}

func TestPolicy(t *testing.T) {
	pol := Policy{MACs: []frame.MAC{vmMAC}, IPs: []netip.Prefix{netip.PrefixFrom(vmIP, 32), netip.MustParsePrefix("fd00::50/128")}}
	sentinel := udpFrame(t, vmMAC, vmIP, victimIP, 1, 7, []byte("sentinel"))
	cases := []struct {
		name   string
		frame  []byte
		pass   bool
		reason string
	}{
		{"own", udpFrame(t, vmMAC, vmIP, victimIP, 1000, 7, nil), true, ""},
		{"spoofed MAC", udpFrame(t, victimMAC, vmIP, victimIP, 1000, 7, nil), false, DropSrcMAC},
		{"spoofed IP source", udpFrame(t, vmMAC, victimIP, vmIP, 1000, 7, nil), false, DropIPSource},
		{"DHCP client from 0.0.0.0", udpFrame(t, vmMAC, netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255"), 68, 67, nil), true, ""},
		{"own ARP", arpFrame(t, vmMAC, vmIP), true, ""},
		{"ARP probe", arpFrame(t, vmMAC, netip.IPv4Unspecified()), true, ""},
		{"ARP claiming the victim's address", arpFrame(t, vmMAC, victimIP), false, DropARP},
		{"own NA", naFrame(t, vmMAC, netip.MustParseAddr("fd00::50"), netip.MustParseAddr("fd00::50"), vmMAC), true, ""},
		{"NA from link-local", naFrame(t, vmMAC, LinkLocal(vmMAC), netip.MustParseAddr("fd00::50"), vmMAC), true, ""},
		{"NA claiming another target", naFrame(t, vmMAC, netip.MustParseAddr("fd00::50"), netip.MustParseAddr("fd00::10"), vmMAC), false, DropND},
		{"NA with another link-layer address", naFrame(t, vmMAC, netip.MustParseAddr("fd00::50"), netip.MustParseAddr("fd00::50"), victimMAC), false, DropND},
		{"IPv6 from another address", naFrame(t, vmMAC, netip.MustParseAddr("fd00::10"), netip.MustParseAddr("fd00::50"), vmMAC), false, DropIPSource},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, pol, nil)
			got := r.send(t, sentinel, c.frame)
			if got[0] != c.pass {
				t.Fatalf("frame passed = %v, want %v", got[0], c.pass)
			}
			if c.reason != "" && r.p.Drops(c.reason) != 1 {
				t.Errorf("Drops(%q) = %d, want 1 (status %+v)", c.reason, r.p.Drops(c.reason), r.p.Status())
			}
		})
	}
}

// TestAnySource: a router leg's forwarded packets keep their sources, its ARP does not
// lie.
func TestAnySource(t *testing.T) {
	r := newRig(t, Policy{MACs: []frame.MAC{vmMAC}, IPs: []netip.Prefix{netip.PrefixFrom(vmIP, 32)}, AnySource: true}, nil)
	sentinel := udpFrame(t, vmMAC, vmIP, victimIP, 1, 7, []byte("sentinel"))
	got := r.send(t, sentinel, udpFrame(t, vmMAC, netip.MustParseAddr("10.9.9.9"), victimIP, 1, 7, nil), arpFrame(t, vmMAC, victimIP))
	if !got[0] || got[1] {
		t.Fatalf("forwarded packet passed %v (want true), spoofed ARP passed %v (want false)", got[0], got[1])
	}
}

func dhcpAck(t *testing.T, chaddr frame.MAC, yiaddr netip.Addr, lease time.Duration) []byte {
	m, err := dhcpv4.New(dhcpv4.WithReply(&dhcpv4.DHCPv4{OpCode: dhcpv4.OpcodeBootRequest, ClientHWAddr: chaddr[:]}),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck), dhcpv4.WithYourIP(yiaddr.AsSlice()), dhcpv4.WithLeaseTime(uint32(lease.Seconds())))
	if err != nil {
		t.Fatalf("dhcpv4.New: %v", err)
	}
	return udpFrame(t, victimMAC, victimIP, netip.MustParseAddr("255.255.255.255"), 67, 68, m.ToBytes())
}

func TestDHCPSnooping(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	r := newRig(t, Policy{DHCPSnooping: true}, clock)
	sentinel := udpFrame(t, vmMAC, netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255"), 68, 67, []byte("discover"))
	leased := netip.MustParseAddr("10.0.0.150")
	fromLease := udpFrame(t, vmMAC, leased, victimIP, 1000, 7, nil)

	if got := r.send(t, sentinel, fromLease); got[0] {
		t.Fatalf("a frame from %s passed before any lease", leased)
	}
	// An ACK for a MAC that never asked through this port (flooded) is not learned.
	write := func(b []byte) {
		t.Helper()
		if _, err := r.p.WriteFrames([]frame.Frame{{Buf: b, N: len(b)}}); err != nil {
			t.Fatalf("WriteFrames: %v", err)
		}
	}
	write(dhcpAck(t, frame.MAC{0x52, 0x54, 0, 0, 0, 2}, leased, time.Hour))
	if got := r.send(t, sentinel, fromLease); got[0] {
		t.Fatalf("a frame from %s passed after an ACK for another client", leased)
	}
	write(dhcpAck(t, vmMAC, leased, time.Hour))
	if got := r.send(t, sentinel, fromLease); !got[0] {
		t.Fatalf("a frame from the leased %s was dropped (status %+v)", leased, r.p.Status())
	}
	if st := r.p.Status(); len(st.Learned) != 1 || st.Learned[0].Addr != leased || st.Drops[DropIPSource] != 2 {
		t.Fatalf("Status() = %+v, want one lease of %s and 2 ip_source drops", st, leased)
	}
	if got := r.send(t, sentinel, udpFrame(t, vmMAC, victimIP, leased, 1000, 7, nil)); got[0] {
		t.Fatalf("a frame from the victim's %s passed", victimIP)
	}
	now = now.Add(2 * time.Hour)
	if got := r.send(t, sentinel, fromLease); got[0] {
		t.Fatalf("a frame from %s passed after its lease expired", leased)
	}
}

func TestSnoopingCap(t *testing.T) {
	var s snooper
	s.max.Store(2)
	now := time.Unix(0, 0)
	for i := range 5 {
		s.addLocked(Lease{Addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), MAC: frame.MAC{2, 0, 0, 0, 0, byte(i)}, Expires: now.Add(time.Duration(i+1) * time.Minute)}, now)
	}
	if l := s.list(now); len(l) != 2 || s.evicted.Load() != 3 {
		t.Fatalf("after 5 leases with a cap of 2: %d held, %d evicted; want 2 and 3", len(l), s.evicted.Load())
	}
}

func TestLinkDown(t *testing.T) {
	a, b := frametest.NewPair(frametest.PairOptions{})
	defer a.Close()
	pa, pb := Wrap(a, Options{}), Wrap(b, Options{})
	Pair(pa, pb)
	msg := []byte("0123456789abcdefghij")
	buf := make([]frame.Frame, 4)
	for i := range buf {
		buf[i].Buf = make([]byte, 2048)
	}
	// pa's stack sends (its reader gives the frame to pb's writer).
	sendAB := func() bool {
		if n, _ := a.Peer().WriteFrames([]frame.Frame{{Buf: msg, N: len(msg)}}); n != 1 {
			t.Fatal("inject failed")
		}
		done := make(chan int, 1)
		go func() { n, _ := pa.ReadFrames(buf); done <- n }()
		select {
		case n := <-done:
			return n > 0
		case <-time.After(50 * time.Millisecond):
			return false
		}
	}
	if !sendAB() {
		t.Fatal("a frame did not cross an up pair")
	}
	pb.SetUp(false)
	if sendAB() {
		t.Fatal("a frame crossed to a down peer")
	}
	st := pa.Status()
	if st.TxDropped != 1 || st.Drops[DropPeerDown] != 1 || st.PeerUp == nil || *st.PeerUp {
		t.Fatalf("pa.Status() = %+v, want tx_dropped 1, peer_down 1, peer_up false", st)
	}
	if n, _ := pb.WriteFrames([]frame.Frame{{Buf: msg, N: len(msg)}}); n != 0 || pb.Drops(DropLinkDown) != 1 {
		t.Fatalf("write to a down port: accepted %d, link_down_out %d; want 0 and 1", n, pb.Drops(DropLinkDown))
	}
	pb.SetUp(true)
	a.Close() // ends the reader left waiting
}
