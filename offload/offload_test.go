package offload

import (
	"bytes"
	"errors"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vnetd/vnetd/frame"
)

type super struct {
	v6, udp, vlan bool
	df            bool // IPv4 don't-fragment
	payload       int
	flags         string // TCP flags on the superframe: F, P, C
}

func payloadOf(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return p
}

// build serializes a superframe with gopacket, checksums computed.
func build(t testing.TB, s super) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	var ls []gopacket.SerializableLayer
	ls = append(ls, eth)
	var netl gopacket.NetworkLayer
	l3type := layers.EthernetTypeIPv4
	if s.v6 {
		l3type = layers.EthernetTypeIPv6
	}
	proto := layers.IPProtocolTCP
	if s.udp {
		proto = layers.IPProtocolUDP
	}
	if s.vlan {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: 10, Type: l3type})
	} else {
		eth.EthernetType = l3type
	}
	if s.v6 {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
		netl = ip
		ls = append(ls, ip)
	} else {
		ip := &layers.IPv4{Version: 4, TTL: 64, Id: 1000, Protocol: proto, SrcIP: net.IPv4(10, 0, 0, 1), DstIP: net.IPv4(10, 0, 0, 2)}
		if s.df {
			ip.Flags = layers.IPv4DontFragment
		}
		netl = ip
		ls = append(ls, ip)
	}
	if s.udp {
		u := &layers.UDP{SrcPort: 1000, DstPort: 2000}
		_ = u.SetNetworkLayerForChecksum(netl)
		ls = append(ls, u)
	} else {
		tcp := &layers.TCP{SrcPort: 1000, DstPort: 2000, Seq: 0xfffff000, Ack: 5, ACK: true, Window: 100,
			FIN: bytes.ContainsRune([]byte(s.flags), 'F'), PSH: bytes.ContainsRune([]byte(s.flags), 'P'), CWR: bytes.ContainsRune([]byte(s.flags), 'C')}
		_ = tcp.SetNetworkLayerForChecksum(netl)
		ls = append(ls, tcp)
	}
	ls = append(ls, gopacket.Payload(payloadOf(s.payload)))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("SerializeLayers() = %v", err)
	}
	return buf.Bytes()
}

// reserialize decodes b and serializes it again with lengths and checksums computed by
// gopacket; a correct segment comes out byte for byte the same.
func reserialize(t *testing.T, b []byte) ([]byte, gopacket.Packet) {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("decode segment: %v", el.Error())
	}
	var ls []gopacket.SerializableLayer
	var netl gopacket.NetworkLayer
	for _, l := range p.Layers() {
		switch v := l.(type) {
		case *layers.IPv4:
			netl = v
		case *layers.IPv6:
			netl = v
		case *layers.TCP:
			_ = v.SetNetworkLayerForChecksum(netl)
		case *layers.UDP:
			_ = v.SetNetworkLayerForChecksum(netl)
		}
		if sl, ok := l.(gopacket.SerializableLayer); ok {
			ls = append(ls, sl)
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("SerializeLayers() = %v", err)
	}
	return buf.Bytes(), p
}

func TestSegment(t *testing.T) {
	tests := []struct {
		name     string
		s        super
		gso      frame.GSOType
		mss, mtu int
		want     int
	}{
		{"tcp4 exact", super{payload: 4000, flags: "FPC"}, frame.GSOTCPv4, 1000, 1500, 4},
		{"tcp4 tail", super{payload: 4321, flags: "P"}, frame.GSOTCPv4, 1448, 1500, 3},
		{"tcp4 mtu smaller than mss", super{payload: 3000}, frame.GSOTCPv4, 1448, 576, 6},
		{"tcp4 vlan", super{payload: 3000, vlan: true, flags: "FC"}, frame.GSOTCPv4, 1448, 1500, 3},
		{"tcp6", super{v6: true, payload: 65000, flags: "P"}, frame.GSOTCPv6, 1428, 1500, 46},
		{"tcp6 vlan", super{v6: true, vlan: true, payload: 2000}, frame.GSOTCPv6, 1428, 1500, 2},
		{"udp4", super{udp: true, payload: 5000}, frame.GSOUDPL4, 1200, 1500, 5},
		{"udp6 vlan", super{udp: true, v6: true, vlan: true, payload: 2500}, frame.GSOUDPL4, 1000, 1500, 3},
		{"single segment", super{payload: 100, flags: "F"}, frame.GSOTCPv4, 1448, 1500, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := build(t, tt.s)
			f := frame.Frame{Buf: raw, N: len(raw), Meta: frame.Meta{GSO: tt.gso, GSOSize: uint16(tt.mss), NeedsCsum: true}}
			var got [][]byte
			n, err := Segment(&f, tt.mtu, func(b *frame.Buf) bool {
				got = append(got, append([]byte(nil), b.Bytes()...))
				if b.Meta != (frame.Meta{}) {
					t.Errorf("segment Meta = %+v, want zero", b.Meta)
				}
				b.Release()
				return true
			})
			if err != nil || n != tt.want || len(got) != tt.want {
				t.Fatalf("Segment() = %d, %v (yielded %d), want %d, nil", n, err, len(got), tt.want)
			}
			var payload []byte
			var nextSeq uint32 = 0xfffff000
			for i, seg := range got {
				again, p := reserialize(t, seg)
				if !bytes.Equal(again, seg) {
					t.Errorf("segment %d: lengths or checksums wrong:\n got %x\nwant %x", i, seg, again)
				}
				if nl := p.NetworkLayer(); nl != nil {
					if l3 := len(nl.LayerContents()) + len(nl.LayerPayload()); l3 > tt.mtu {
						t.Errorf("segment %d: %d L3 bytes > MTU %d", i, l3, tt.mtu)
					}
				}
				if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok && ip.Id != uint16(1000+i) {
					t.Errorf("segment %d: IPv4 ID = %d, want %d", i, ip.Id, 1000+i)
				}
				if tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
					last := i == len(got)-1
					if tcp.Seq != nextSeq {
						t.Errorf("segment %d: seq = %#x, want %#x", i, tcp.Seq, nextSeq)
					}
					nextSeq += uint32(len(tcp.Payload))
					wantF := last && bytes.ContainsRune([]byte(tt.s.flags), 'F')
					wantP := last && bytes.ContainsRune([]byte(tt.s.flags), 'P')
					wantC := i == 0 && bytes.ContainsRune([]byte(tt.s.flags), 'C')
					if tcp.FIN != wantF || tcp.PSH != wantP || tcp.CWR != wantC || !tcp.ACK {
						t.Errorf("segment %d: FIN,PSH,CWR,ACK = %v,%v,%v,%v, want %v,%v,%v,true", i, tcp.FIN, tcp.PSH, tcp.CWR, tcp.ACK, wantF, wantP, wantC)
					}
				}
				if al := p.ApplicationLayer(); al != nil {
					payload = append(payload, al.Payload()...)
				}
			}
			if !bytes.Equal(payload, payloadOf(tt.s.payload)) {
				t.Errorf("reassembled payload: %d bytes, differs from the %d sent", len(payload), tt.s.payload)
			}
		})
	}
}

func TestSegmentStopsWhenYieldRefuses(t *testing.T) {
	raw := build(t, super{payload: 5000})
	f := frame.Frame{Buf: raw, N: len(raw), Meta: frame.Meta{GSO: frame.GSOTCPv4, GSOSize: 1000}}
	n, err := Segment(&f, 1500, func(b *frame.Buf) bool { b.Release(); return false })
	if n != 1 || err != nil {
		t.Fatalf("Segment(yield false) = %d, %v, want 1, nil", n, err)
	}
}

func TestSegmentErrors(t *testing.T) {
	tcp4 := build(t, super{payload: 3000})
	udp6 := build(t, super{v6: true, udp: true, payload: 3000})
	tests := []struct {
		name string
		b    []byte
		m    frame.Meta
		mtu  int
	}{
		{"short", tcp4[:10], frame.Meta{GSO: frame.GSOTCPv4, GSOSize: 1000}, 1500},
		{"truncated tcp", tcp4[:40], frame.Meta{GSO: frame.GSOTCPv4, GSOSize: 1000}, 1500},
		{"zero mss", tcp4, frame.Meta{GSO: frame.GSOTCPv4}, 1500},
		{"type mismatch", tcp4, frame.Meta{GSO: frame.GSOTCPv6, GSOSize: 1000}, 1500},
		{"udp as tcp", udp6, frame.Meta{GSO: frame.GSOTCPv6, GSOSize: 1000}, 1500},
		{"unknown gso", tcp4, frame.Meta{GSO: 9, GSOSize: 1000}, 1500},
		{"tiny mtu", tcp4, frame.Meta{GSO: frame.GSOTCPv4, GSOSize: 1000}, 40},
		{"bad csum start", tcp4, frame.Meta{NeedsCsum: true, CsumStart: 5000, CsumOffset: 16}, 1500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := frame.Frame{Buf: tt.b, N: len(tt.b), Meta: tt.m}
			n, err := Segment(&f, tt.mtu, func(b *frame.Buf) bool { b.Release(); return true })
			if n != 0 || !errors.Is(err, ErrMalformed) {
				t.Errorf("Segment() = %d, %v, want 0, ErrMalformed", n, err)
			}
		})
	}
}

func TestCompleteChecksum(t *testing.T) {
	for _, s := range []super{{payload: 300}, {v6: true, udp: true, payload: 77}, {vlan: true, payload: 3}} {
		good := build(t, s)
		l, err := parse(good)
		if err != nil {
			t.Fatalf("parse() = %v", err)
		}
		off := 16
		if s.udp {
			off = 6
		}
		// Replace the full checksum with the pseudo-header sum, as a sender using
		// checksum offload leaves it.
		b := append([]byte(nil), good...)
		at := l.l4 + off
		ps := pseudoSum(b, l, len(b)-l.l4)
		b[at], b[at+1] = byte(ps>>8), byte(ps)
		m := frame.Meta{NeedsCsum: true, CsumStart: uint16(l.l4), CsumOffset: uint16(off)}
		if err := CompleteChecksum(b, &m); err != nil || m.NeedsCsum {
			t.Fatalf("CompleteChecksum() = %v, NeedsCsum %v, want nil, false", err, m.NeedsCsum)
		}
		if !bytes.Equal(b, good) {
			t.Errorf("CompleteChecksum(%+v): checksum %x, want %x", s, b[at:at+2], good[at:at+2])
		}
	}
}

func FuzzSegment(f *testing.F) {
	f.Add(build(f, super{payload: 3000}), uint8(1), uint16(1000), uint16(34), uint16(16), true, 1500)
	f.Add(build(f, super{v6: true, vlan: true, payload: 2000}), uint8(2), uint16(700), uint16(58), uint16(16), false, 1500)
	f.Add(build(f, super{udp: true, payload: 2000}), uint8(3), uint16(700), uint16(34), uint16(6), true, 9000)
	f.Fuzz(func(t *testing.T, b []byte, gso uint8, mss, cs, co uint16, csum bool, mtu int) {
		if mtu > 1<<20 {
			mtu = 1 << 20
		}
		fr := frame.Frame{Buf: b, N: len(b), Meta: frame.Meta{GSO: frame.GSOType(gso), GSOSize: mss, CsumStart: cs, CsumOffset: co, NeedsCsum: csum}}
		if mss > 0 && mss < 64 && len(b) > 4096 {
			return // bound the work per input
		}
		_, _ = Segment(&fr, mtu, func(s *frame.Buf) bool { s.Release(); return true })
	})
}

func BenchmarkSegmentTCP4(b *testing.B) {
	raw := build(b, super{payload: 65000 - 54})
	f := frame.Frame{Buf: raw, N: len(raw), Meta: frame.Meta{GSO: frame.GSOTCPv4, GSOSize: 1448}}
	segs := 0
	yield := func(s *frame.Buf) bool { segs++; s.Release(); return true }
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Segment(&f, 1500, yield); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(segs)/float64(b.N), "segs/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(segs), "ns/seg")
}
