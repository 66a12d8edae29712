package nsstack

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// l4ChecksumOK verifies the TCP or UDP checksum of an Ethernet frame that arrived
// without offload metadata. NICs advertise RX checksum offload to gVisor (gVisor
// takes the flag per NIC, not per packet), so frames from senders that computed
// full checksums are checked here instead. Other protocols, fragments and frames
// too short to parse are passed through: gVisor checks what it can itself.
func l4ChecksumOK(b []byte) bool {
	if len(b) < header.EthernetMinimumSize {
		return false
	}
	et := binary.BigEndian.Uint16(b[12:14])
	p := b[header.EthernetMinimumSize:]
	var src, dst tcpip.Address
	var proto uint8
	var l4 []byte
	switch et {
	case uint16(header.IPv4ProtocolNumber):
		ip := header.IPv4(p)
		if !ip.IsValid(len(p)) || ip.More() || ip.FragmentOffset() != 0 {
			return true
		}
		hl, tl := int(ip.HeaderLength()), int(ip.TotalLength())
		if hl > tl || tl > len(p) || !ip.IsChecksumValid() {
			return false
		}
		src, dst, proto, l4 = ip.SourceAddress(), ip.DestinationAddress(), ip.Protocol(), p[hl:tl]
	case uint16(header.IPv6ProtocolNumber):
		ip := header.IPv6(p)
		if !ip.IsValid(len(p)) {
			return true
		}
		// Only the common case without extension headers is checked here.
		src, dst, proto, l4 = ip.SourceAddress(), ip.DestinationAddress(), ip.NextHeader(), p[header.IPv6MinimumSize:header.IPv6MinimumSize+int(ip.PayloadLength())]
	default:
		return true
	}
	switch tcpip.TransportProtocolNumber(proto) {
	case header.TCPProtocolNumber:
		if len(l4) < header.TCPMinimumSize {
			return false
		}
	case header.UDPProtocolNumber:
		if len(l4) < header.UDPMinimumSize {
			return false
		}
		if binary.BigEndian.Uint16(l4[6:8]) == 0 && et == uint16(header.IPv4ProtocolNumber) {
			return true // no checksum
		}
	default:
		return true
	}
	xsum := header.PseudoHeaderChecksum(tcpip.TransportProtocolNumber(proto), src, dst, uint16(len(l4)))
	return checksum.Checksum(l4, xsum) == 0xffff
}
