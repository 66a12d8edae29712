package router

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/vnetd/vnetd/frame"
)

// Router advertisement values (RFC 4861 section 6.2.1 defaults, shortened for labs).
const (
	raHopLimit       = 64
	raRouterLifetime = 1800  // seconds this router is a default router
	raValidLifetime  = 86400 // seconds a SLAAC prefix stays valid
	raPreferred      = 14400 // seconds addresses from it stay preferred
)

var (
	allNodes    = netip.MustParseAddr("ff02::1")
	allNodesMAC = frame.MAC{0x33, 0x33, 0, 0, 0, 1}
)

// linkLocal is the EUI-64 link-local address for mac (RFC 4291 appendix A).
func linkLocal(mac frame.MAC) netip.Addr {
	return netip.AddrFrom16([16]byte{0xfe, 0x80, 8: mac[0] ^ 0x02, 9: mac[1], 10: mac[2], 11: 0xff, 12: 0xfe, 13: mac[3], 14: mac[4], 15: mac[5]})
}

// periodicRA sends an unsolicited advertisement when RAInterval has passed since the
// last one (the first one on the first tick).
func (i *iface) periodicRA(now time.Time) {
	if !i.cfg.Advertise || !i.ll.IsValid() || i.closed.Load() {
		return
	}
	last := i.lastRA.Load()
	if last != 0 && now.Sub(time.Unix(0, last)) < i.r.opts.RAInterval {
		return
	}
	if !i.lastRA.CompareAndSwap(last, now.UnixNano()) {
		return // a concurrent Tick sent it
	}
	i.enqueue(i.buildRA(allNodesMAC, allNodes))
}

// inputRS answers a router solicitation: unicast to a host that has an address and
// told us its MAC, else to all nodes.
func (i *iface) inputRS(b, ip []byte, src netip.Addr) {
	ic := ip[40:]
	if len(ic) < 8 || ip[7] != 255 || ic[1] != 0 {
		i.drop(dropMalformed)
		return
	}
	if !i.cfg.Advertise || !i.ll.IsValid() {
		i.drop(dropLocal)
		return
	}
	dst, dmac := allNodes, allNodesMAC
	if mac, ok := llOption(ic[8:], 1); ok && !src.IsUnspecified() && !mac.IsMulticast() {
		dst, dmac = src, mac
	}
	i.enqueue(i.buildRA(dmac, dst))
}

// buildRA builds an advertisement: this router as default router, its MAC, the
// interface MTU and each /64 IPv6 prefix as on-link and autonomous (SLAAC).
func (i *iface) buildRA(dmac frame.MAC, dst netip.Addr) *frame.Buf {
	ra := make([]byte, 16, 16+8+8+32*len(i.cfg.Addresses)) // control path
	ra[0] = icmp6RA
	ra[4] = raHopLimit
	binary.BigEndian.PutUint16(ra[6:8], raRouterLifetime)
	ra = append(ra, 1, 1) // source link-layer address
	ra = append(ra, i.mac[:]...)
	ra = append(ra, 5, 1, 0, 0) // MTU
	ra = binary.BigEndian.AppendUint32(ra, uint32(i.cfg.MTU))
	seen := map[netip.Prefix]bool{}
	for _, p := range i.cfg.Addresses {
		if !p.Addr().Is6() || p.Bits() != 64 || p.Addr().IsLinkLocalUnicast() || seen[p.Masked()] {
			continue
		}
		seen[p.Masked()] = true
		ra = append(ra, 3, 4, 64, 0xc0) // prefix information: on-link, autonomous
		ra = binary.BigEndian.AppendUint32(ra, raValidLifetime)
		ra = binary.BigEndian.AppendUint32(ra, raPreferred)
		ra = append(ra, 0, 0, 0, 0)
		a := p.Masked().Addr().As16()
		ra = append(ra, a[:]...)
	}
	return i.build6(dmac, i.ll, dst, 255, ra)
}
