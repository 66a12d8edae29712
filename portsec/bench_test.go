package portsec

import (
	"net/netip"
	"testing"

	"github.com/vnetd/vnetd/frame"
)

// BenchmarkCheck is the per-frame cost of a namespace NIC's default policy on an
// allowed IPv4 frame: it must not allocate.
func BenchmarkCheck(b *testing.B) {
	p := Wrap(nil, Options{Policy: Policy{MACs: []frame.MAC{vmMAC}, IPs: []netip.Prefix{netip.PrefixFrom(vmIP, 32)}}})
	t := &testing.T{}
	buf := udpFrame(t, vmMAC, vmIP, victimIP, 1000, 7, make([]byte, 1000))
	f := frame.Frame{Buf: buf, N: len(buf)}
	c := p.pol.Load()
	b.ReportAllocs()
	for b.Loop() {
		if p.check(c, &f) != pass {
			b.Fatal("dropped")
		}
	}
}
