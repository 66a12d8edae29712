package nsstack

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/vnetd/vnetd/frame"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// wireSpy is a pass-through decorator that records the EtherType of every frame read
// from the port it wraps.
type wireSpy struct {
	frame.Port
	types chan uint16
}

func (w *wireSpy) ReadFrames(frames []frame.Frame) (int, error) {
	n, err := w.Port.ReadFrames(frames)
	w.record(frames[:n])
	return n, err
}

// ReadPackets implements frame.PacketReader, so the frames still go by reference.
func (w *wireSpy) ReadPackets(frames []frame.Frame) (int, error) {
	n, err := w.Port.(frame.PacketReader).ReadPackets(frames)
	w.record(frames[:n])
	return n, err
}

func (w *wireSpy) record(frames []frame.Frame) {
	for _, f := range frames {
		select {
		case w.types <- uint16(f.Buf[12])<<8 | uint16(f.Buf[13]):
		default:
		}
	}
}

// An L3 pair carries ping and TCP (bytes verified) in both families with only host
// addresses (/32, /128) and a route to the peer through the NIC; nothing on the wire is
// ARP or NDP, and neither namespace has a neighbour entry or a neighbour table.
func TestL3PairPingAndTCP(t *testing.T) {
	for _, mtu := range []int{1500, 9000} {
		t.Run(fmt.Sprint("mtu", mtu), func(t *testing.T) {
			a, b := newNS(t, "a"), newNS(t, "b")
			na, err := a.AddNIC(NICConfig{Name: "v0", Kind: NICL3, MTU: mtu, NoGSO: noGSO})
			if err != nil {
				t.Fatalf("a.AddNIC(v0, l3): %v", err)
			}
			nb, err := b.AddNIC(NICConfig{Name: "v0", Kind: NICL3, MTU: mtu, NoGSO: noGSO})
			if err != nil {
				t.Fatalf("b.AddNIC(v0, l3): %v", err)
			}
			for ns, own := range map[*Namespace][]string{a: {"10.9.0.1/32", "fd09::1/128"}, b: {"10.9.0.2/32", "fd09::2/128"}} {
				for _, p := range own {
					if err := ns.AddAddress("v0", netip.MustParsePrefix(p)); err != nil {
						t.Fatalf("%s.AddAddress(v0, %s): %v", ns.Name(), p, err)
					}
				}
			}
			// The peer routes to it: each side's host route to the other.
			for ns, peer := range map[*Namespace][]string{a: {"10.9.0.2/32", "fd09::2/128"}, b: {"10.9.0.1/32", "fd09::1/128"}} {
				for _, p := range peer {
					if err := ns.AddRoute(Route{To: netip.MustParsePrefix(p), NIC: "v0"}); err != nil {
						t.Fatalf("%s.AddRoute(%s dev v0): %v", ns.Name(), p, err)
					}
				}
			}
			spyA := &wireSpy{Port: na, types: make(chan uint16, 1<<16)}
			spyB := &wireSpy{Port: nb, types: make(chan uint16, 1<<16)}
			stop := Connect(spyA, spyB)
			defer stop()
			for _, dst := range []string{"10.9.0.2", "fd09::2"} {
				if _, err := a.Ping(ctx(t), netip.MustParseAddr(dst), 1, []byte("hi")); err != nil {
					t.Fatalf("a.Ping(%s): %v", dst, err)
				}
			}
			transfer(t, b, a, ":80", "10.9.0.2:80", 4<<20)
			transfer(t, a, b, ":81", "[fd09::1]:81", 1<<20)
			stop()
			for _, spy := range []*wireSpy{spyA, spyB} {
				close(spy.types)
				n := 0
				for typ := range spy.types {
					n++
					if typ != uint16(header.IPv4ProtocolNumber) && typ != uint16(header.IPv6ProtocolNumber) {
						t.Fatalf("%s sent a frame of EtherType %#04x, want only IPv4 and IPv6", spy.Info().Name, typ)
					}
				}
				if n == 0 {
					t.Fatalf("%s sent nothing", spy.Info().Name)
				}
			}
			for _, ns := range []*Namespace{a, b} {
				if nb := ns.Neighbors(); len(nb) != 0 {
					t.Fatalf("%s.Neighbors() = %+v, want none on an L3 NIC", ns.Name(), nb)
				}
				n, _ := ns.NIC("v0")
				for _, proto := range []tcpip.NetworkProtocolNumber{header.IPv4ProtocolNumber, header.IPv6ProtocolNumber} {
					if _, e := ns.st.Neighbors(n.id, proto); e == nil {
						t.Fatalf("%s: gVisor has a neighbour table for v0 (proto %#x), want none", ns.Name(), proto)
					}
				}
			}
		})
	}
}

// What an L3 NIC refuses: frames that are not IP (an ARP request for its own address
// is dropped and counted, and answered by nothing), and sockets bound to an address
// that is not its own.
func TestL3Refuses(t *testing.T) {
	a := newNS(t, "a")
	n := addL3NIC(t, a, "v0", "10.9.0.1/24", "fd09::1/64")
	arp := arpRequest(frame.LocalMAC("x"), netip.MustParseAddr("10.9.0.2"), netip.MustParseAddr("10.9.0.1"))
	if took, err := n.WriteFrames([]frame.Frame{{Buf: arp, N: len(arp)}}); took != 0 || err != nil {
		t.Fatalf("WriteFrames(ARP request) = %d, %v; want 0, nil", took, err)
	}
	if got := n.Drops()["not_ip"]; got != 1 {
		t.Fatalf("Drops()[not_ip] = %d after an ARP request, want 1", got)
	}
	if q := n.out.Len(); q != 0 {
		t.Fatalf("the NIC queued %d frames after an ARP request, want none", q)
	}
	for _, addr := range []string{"10.9.0.2:80", "10.0.0.1:80", "[fd09::2]:80"} {
		if l, err := a.Listen("tcp", addr); err == nil {
			l.Close()
			t.Fatalf("a.Listen(tcp, %s) succeeded on a foreign address", addr)
		}
		if c, err := a.ListenPacket("udp", addr); err == nil {
			c.Close()
			t.Fatalf("a.ListenPacket(udp, %s) succeeded on a foreign address", addr)
		}
	}
	for _, addr := range []string{"10.9.0.1:80", "[fd09::1]:80"} {
		l, err := a.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("a.Listen(tcp, %s) on its own address: %v", addr, err)
		}
		l.Close()
	}
	its := a.Interfaces()
	if len(its) != 2 || its[1].Name != "v0" || its[1].Kind != "l3" {
		t.Fatalf("Interfaces() = %+v, want lo and v0 of kind l3", its)
	}
}

// arpRequest builds a broadcast ARP request from src (MAC and IPv4) for target.
func arpRequest(mac frame.MAC, src, target netip.Addr) []byte {
	b := make([]byte, header.EthernetMinimumSize+header.ARPSize)
	bcast := frame.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(mac[:]),
		DstAddr: tcpip.LinkAddress(bcast[:]), Type: header.ARPProtocolNumber})
	h := header.ARP(b[header.EthernetMinimumSize:])
	h.SetIPv4OverEthernet()
	h.SetOp(header.ARPRequest)
	s4, t4 := src.As4(), target.As4()
	copy(h.HardwareAddressSender(), mac[:])
	copy(h.ProtocolAddressSender(), s4[:])
	copy(h.ProtocolAddressTarget(), t4[:])
	return b
}
