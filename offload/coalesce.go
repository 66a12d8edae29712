package offload

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"

	"github.com/vnetd/vnetd/frame"
)

// Receive coalescing: the inverse of Segment, as Linux's GRO (tcp_gro_receive) merges
// the in-order segments of a TCP stream on the way in. A port that receives plain
// frames from a wire (a VXLAN tunnel) merges each into the one before it where both
// are segments of one stream, so the switch and the receiving stack handle one
// superframe where there were up to 45, and whatever later needs plain frames gets
// them back from Segment bit for bit (headers, sequence numbers, checksums).
//
// Two segments merge only when nothing is lost by it, the rules of Linux's GRO: the
// same Ethernet header (802.1Q tag included), IPv4 without options, with DF and IDs
// counting up by one (as Linux's TCP sends them and Segment writes them back) or IPv6
// without extension headers, the same TOS or
// traffic class and flow label, TTL or hop limit, addresses and ports; the next
// sequence number; the same acknowledgment, window and TCP options (timestamps
// included); no flag but ACK (PSH on the segment merged last ends the superframe);
// every segment but the last of the same payload size, the MSS. Each segment's TCP
// checksum (and IPv4 header checksum) is verified before it is merged; a segment that
// fails stays a frame of its own for the receiver to drop. The superframe carries
// the metadata a TSO sender's superframe does (GSOTCPv4 or GSOTCPv6, the MSS, a
// partial checksum: NeedsCsum with the pseudo-header sum stored), so every port and
// the switch already know how to take it, complete it or segment it.

const (
	tcpFlagACK     = 0x10
	ipv4FlagDF     = 0x4000
	ipv4MaxLen     = 0xffff
	tcpCsumOffset  = 16
	ipv4HeaderLen  = 20
	ipv4CsumOffset = 10
)

// coalescable parses b as a TCP segment that can take part in coalescing: IPv4
// without options, with DF and not a fragment, or IPv6 without extension headers; IP
// length matching the frame (no padding); only ACK and PSH flags. It does not look at
// checksums.
func coalescable(b []byte) (layout, bool) {
	l, err := parse(b)
	if err != nil || l.proto != protoTCP {
		return l, false
	}
	ip := b[l.l3:]
	if l.v6 {
		if int(binary.BigEndian.Uint16(ip[4:6])) != len(ip)-ipv6HeaderLen {
			return l, false
		}
	} else if l.l4-l.l3 != ipv4HeaderLen || binary.BigEndian.Uint16(ip[6:8]) != ipv4FlagDF ||
		int(binary.BigEndian.Uint16(ip[2:4])) != len(ip) {
		return l, false
	}
	if b[l.l4+13]&^tcpFlagPSH != tcpFlagACK {
		return l, false
	}
	return l, true
}

// sameFlow reports whether the headers of a and b, both laid out as l, are the same
// but for what differs between segments of one stream: IP length, ID and header
// checksum, TCP sequence number, checksum and the PSH flag.
func sameFlow(a, b []byte, l layout) bool {
	if string(a[:l.l3]) != string(b[:l.l3]) {
		return false
	}
	ia, ib := a[l.l3:l.l4], b[l.l3:l.l4]
	if l.v6 {
		if string(ia[0:4]) != string(ib[0:4]) || string(ia[6:]) != string(ib[6:]) {
			return false
		}
	} else if string(ia[0:2]) != string(ib[0:2]) || string(ia[6:10]) != string(ib[6:10]) ||
		string(ia[12:]) != string(ib[12:]) {
		return false
	}
	ta, tb := a[l.l4:l.hdr], b[l.l4:l.hdr]
	return string(ta[0:4]) == string(tb[0:4]) && // ports
		string(ta[8:13]) == string(tb[8:13]) && // ack, data offset
		ta[13]|tcpFlagPSH == tb[13]|tcpFlagPSH &&
		string(ta[14:16]) == string(tb[14:16]) && // window
		string(ta[18:]) == string(tb[18:]) // urgent pointer, options
}

// segmentOK verifies the IPv4 header checksum (if any) and the TCP checksum of a
// plain segment b laid out as l.
func segmentOK(b []byte, l layout) bool {
	if !l.v6 && checksum.Checksum(b[l.l3:l.l4], 0) != 0xffff {
		return false
	}
	return checksum.Checksum(b[l.l4:], pseudoSum(b, l, len(b)-l.l4)) == 0xffff
}

// Coalesce appends the payload of b, a plain frame just received, to f, the frame
// received before it, when b continues f's TCP stream under the rules above, and
// reports whether it did. f is either a plain segment (its metadata zero, or
// CsumValid) or a superframe that earlier calls (or a TSO sender) made; on success it
// is a superframe holding both. b is not changed. When b does not merge but f, a plain
// segment, was checked on the way, f is marked CsumValid so no one checks it again.
// f's buffer bounds the superframe, as does the IP length field (64 KiB).
func Coalesce(f *frame.Frame, b []byte) bool {
	if f.Pkt != nil || f.N > len(f.Buf) {
		return false
	}
	m := &f.Meta
	a := f.Bytes()
	switch m.GSO {
	case frame.GSONone:
		if m.NeedsCsum {
			return false
		}
	case frame.GSOTCPv4, frame.GSOTCPv6:
		if !m.NeedsCsum || m.GSOSize == 0 {
			return false
		}
	default:
		return false
	}
	l, ok := coalescable(a)
	if !ok || a[l.l4+13]&tcpFlagPSH != 0 {
		return false
	}
	if m.GSO != frame.GSONone && (m.GSO == frame.GSOTCPv6) != l.v6 {
		return false
	}
	lb, ok := coalescable(b)
	if !ok || lb != l || !sameFlow(a, b, l) {
		return false
	}
	payA, payB := len(a)-l.hdr, len(b)-l.hdr
	mss := int(m.GSOSize)
	if m.GSO == frame.GSONone {
		mss = payA
	}
	maxIP := ipv4MaxLen // the IP length field's bound on the whole superframe
	if l.v6 {
		maxIP += ipv6HeaderLen // IPv6 counts its payload only
	}
	if payA == 0 || payB == 0 || payB > mss || payA%mss != 0 ||
		binary.BigEndian.Uint32(a[l.l4+4:])+uint32(payA) != binary.BigEndian.Uint32(b[l.l4+4:]) ||
		len(a)+payB > len(f.Buf) || len(a)+payB-l.l3 > maxIP {
		return false
	}
	if !l.v6 && binary.BigEndian.Uint16(a[l.l3+4:])+uint16(payA/mss) != binary.BigEndian.Uint16(b[l.l3+4:]) {
		return false // IDs not counting up: Segment would not give them back
	}
	if m.GSO == frame.GSONone && !m.CsumValid {
		if !segmentOK(a, l) {
			return false
		}
		m.CsumValid = true
	}
	if !segmentOK(b, l) {
		return false
	}
	s := f.Buf[:len(a)+payB]
	copy(s[len(a):], b[l.hdr:])
	f.N = len(s)
	s[l.l4+13] |= b[l.l4+13] & tcpFlagPSH
	ip := s[l.l3:]
	if l.v6 {
		binary.BigEndian.PutUint16(ip[4:6], uint16(len(ip)-ipv6HeaderLen))
	} else {
		binary.BigEndian.PutUint16(ip[2:4], uint16(len(ip)))
		ip[ipv4CsumOffset], ip[ipv4CsumOffset+1] = 0, 0
		checksum.Put(ip[ipv4CsumOffset:], ^checksum.Checksum(ip[:ipv4HeaderLen], 0))
	}
	checksum.Put(s[l.l4+tcpCsumOffset:], pseudoSum(s, l, len(s)-l.l4))
	gso := frame.GSOTCPv4
	if l.v6 {
		gso = frame.GSOTCPv6
	}
	*m = frame.Meta{GSO: gso, NeedsCsum: true, HdrLen: uint16(l.hdr), GSOSize: uint16(mss),
		CsumStart: uint16(l.l4), CsumOffset: tcpCsumOffset}
	return true
}
