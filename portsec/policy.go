package portsec

import (
	"net/netip"
	"slices"

	"github.com/vnetd/vnetd/frame"
)

// Policy is what a port may send.
type Policy struct {
	// MACs are the source MACs the port may send from (and claim in ARP and NDP);
	// empty: any.
	MACs []frame.MAC
	// IPs are the addresses the port may send from and claim in ARP and NDP. An IP
	// family is checked only when IPs holds a prefix of it (or, for IPv4, when
	// DHCPSnooping is on). The unspecified address (0.0.0.0 of a DHCP client or an ARP
	// probe, :: of duplicate address detection) is always allowed, and so is the
	// EUI-64 link-local address of every MAC in MACs.
	IPs []netip.Prefix
	// AnySource leaves IP source addresses unchecked while ARP and NDP claims still
	// are: a router leg forwards other hosts' packets.
	AnySource bool
	// DHCPSnooping allows, for its lease, every IPv4 address a DHCPACK written to the
	// port assigns (and turns IPv4 checking on).
	DHCPSnooping bool
	// MaxLearned caps the addresses DHCP snooping holds at once; beyond it the one
	// expiring first is forgotten (counted as snoop_evicted). Default DefaultMaxLearned.
	MaxLearned int
}

// DefaultMaxLearned is the default cap on the addresses snooped per port.
const DefaultMaxLearned = 16

// IsZero reports whether p allows everything.
func (p *Policy) IsZero() bool {
	return len(p.MACs) == 0 && len(p.IPs) == 0 && !p.DHCPSnooping
}

// compiled is a Policy ready for the data path. It is immutable.
type compiled struct {
	pol        Policy
	macs       []frame.MAC
	v4, v6     []netip.Prefix // allowed prefixes per family
	check4     bool           // IPv4 sources and claims are checked
	check6     bool
	anySource  bool
	maxLearned int
}

func compile(p Policy) *compiled {
	if p.IsZero() {
		return nil
	}
	c := &compiled{pol: p, macs: slices.Clone(p.MACs), anySource: p.AnySource, maxLearned: p.MaxLearned}
	if c.maxLearned <= 0 {
		c.maxLearned = DefaultMaxLearned
	}
	for _, pf := range p.IPs {
		pf = pf.Masked()
		if pf.Addr().Is4() || pf.Addr().Is4In6() {
			c.v4 = append(c.v4, netip.PrefixFrom(pf.Addr().Unmap(), min(pf.Bits(), 32)))
		} else {
			c.v6 = append(c.v6, pf)
		}
	}
	c.check4 = len(c.v4) > 0 || p.DHCPSnooping
	c.check6 = len(c.v6) > 0
	if c.check6 {
		for _, m := range c.macs {
			c.v6 = append(c.v6, netip.PrefixFrom(LinkLocal(m), 128))
		}
	}
	return c
}

// LinkLocal is the EUI-64 link-local address of mac (RFC 4291 appendix A).
func LinkLocal(mac frame.MAC) netip.Addr {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8], a[9], a[10] = mac[0]^0x02, mac[1], mac[2]
	a[11], a[12] = 0xff, 0xfe
	a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(a)
}

func (c *compiled) macOK(m []byte) bool {
	if len(c.macs) == 0 {
		return true
	}
	for i := range c.macs {
		if string(c.macs[i][:]) == string(m) {
			return true
		}
	}
	return false
}

func prefixesHold(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
