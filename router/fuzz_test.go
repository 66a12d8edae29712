package router

import (
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
)

// FuzzRouterInput feeds arbitrary frames to a router interface: nothing may panic, and
// every frame the router emits must be a well-formed Ethernet frame from its own MAC.
func FuzzRouterInput(f *testing.F) {
	l := newLab(f, Options{ICMPRate: -1})
	l.resolve(f)
	f.Add(udp4(l.lan0.mac, hostA, ipA, ipB, 64, 20, true), uint8(0), uint16(0), uint16(0))
	f.Add(udp4(l.lan0.mac, hostA, ipA, ipB, 1, 20, true), uint8(0), uint16(0), uint16(0))
	f.Add(arp(1, bcast, hostA, ipA, rtr0), uint8(0), uint16(0), uint16(0))
	f.Add(udp6(l.lan0.mac, hostA, ip6A, ip6B, 5, 20), uint8(3), uint16(62), uint16(1200))
	f.Fuzz(func(t *testing.T, b []byte, gso uint8, hdr, size uint16) {
		l.now = l.now.Add(time.Millisecond)
		m := frame.Meta{GSO: frame.GSOType(gso % 4), HdrLen: hdr, GSOSize: size}
		in := l.lan0
		if gso&0x80 != 0 {
			in = l.lan1
		}
		in.WriteFrames([]frame.Frame{{Buf: b, N: len(b), Meta: m}})
		for _, p := range []*iface{l.lan0, l.lan1} {
			for _, o := range drain(p) {
				bs := o.Bytes()
				if len(bs) < frame.EthHeaderLen || frame.MAC(bs[6:12]) != p.mac {
					t.Errorf("router emitted % x on %s, want a frame from %v", bs, p.cfg.Name, p.mac)
				}
				o.Release()
			}
		}
	})
}
