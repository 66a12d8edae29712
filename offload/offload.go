package offload

import (
	"encoding/binary"
	"errors"
	"fmt"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"

	"github.com/vnetd/vnetd/frame"
)

// ErrMalformed is wrapped by every error about a frame or metadata that cannot be
// segmented or checksummed.
var ErrMalformed = errors.New("malformed frame")

const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherTypeVLAN = 0x8100

	protoTCP = 6
	protoUDP = 17

	tcpFlagFIN = 0x01
	tcpFlagPSH = 0x08
	tcpFlagCWR = 0x80

	ipv6HeaderLen = 40
	udpHeaderLen  = 8
)

// layout is where a frame's headers lie.
type layout struct {
	l3    int  // start of the IP header
	l4    int  // start of the L4 header
	hdr   int  // end of the L4 header (start of the payload)
	v6    bool // IPv6 rather than IPv4
	proto uint8
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// parse finds the headers of an Ethernet/[802.1Q]/IP/TCP-or-UDP frame.
func parse(b []byte) (layout, error) {
	var l layout
	if len(b) < frame.EthHeaderLen {
		return l, malformed("frame of %d bytes is shorter than an Ethernet header", len(b))
	}
	et := binary.BigEndian.Uint16(b[12:14])
	l.l3 = frame.EthHeaderLen
	if et == etherTypeVLAN {
		if len(b) < frame.EthHeaderLen+frame.VLANTagLen {
			return l, malformed("truncated 802.1Q tag")
		}
		et = binary.BigEndian.Uint16(b[16:18])
		l.l3 += frame.VLANTagLen
	}
	switch et {
	case etherTypeIPv4:
		if len(b) < l.l3+20 {
			return l, malformed("truncated IPv4 header")
		}
		if b[l.l3]>>4 != 4 {
			return l, malformed("IPv4 ethertype with IP version %d", b[l.l3]>>4)
		}
		ihl := int(b[l.l3]&0x0f) * 4
		if ihl < 20 || len(b) < l.l3+ihl {
			return l, malformed("bad IPv4 header length %d", ihl)
		}
		l.proto = b[l.l3+9]
		l.l4 = l.l3 + ihl
	case etherTypeIPv6:
		if len(b) < l.l3+ipv6HeaderLen {
			return l, malformed("truncated IPv6 header")
		}
		if b[l.l3]>>4 != 6 {
			return l, malformed("IPv6 ethertype with IP version %d", b[l.l3]>>4)
		}
		l.v6 = true
		l.proto = b[l.l3+6]
		l.l4 = l.l3 + ipv6HeaderLen
	default:
		return l, malformed("ethertype %#04x is not IP", et)
	}
	switch l.proto {
	case protoTCP:
		if len(b) < l.l4+20 {
			return l, malformed("truncated TCP header")
		}
		thl := int(b[l.l4+12]>>4) * 4
		if thl < 20 || len(b) < l.l4+thl {
			return l, malformed("bad TCP header length %d", thl)
		}
		l.hdr = l.l4 + thl
	case protoUDP:
		if len(b) < l.l4+udpHeaderLen {
			return l, malformed("truncated UDP header")
		}
		l.hdr = l.l4 + udpHeaderLen
	default:
		return l, malformed("IP protocol %d is neither TCP nor UDP (extension headers are not supported)", l.proto)
	}
	return l, nil
}

// pseudoSum is the checksum of the IP pseudo-header for an L4 segment of length n.
func pseudoSum(b []byte, l layout, n int) uint16 {
	var s uint16
	if l.v6 {
		s = checksum.Checksum(b[l.l3+8:l.l3+40], 0)
	} else {
		s = checksum.Checksum(b[l.l3+12:l.l3+20], 0)
	}
	var tail [4]byte
	binary.BigEndian.PutUint16(tail[0:2], uint16(l.proto))
	binary.BigEndian.PutUint16(tail[2:4], uint16(n))
	return checksum.Checksum(tail[:], s)
}

// Segment splits the superframe f into plain frames carrying at most mtu bytes of L3
// (IP header, L4 header and payload) and at most f.Meta.GSOSize bytes of payload each,
// and hands each to yield in a pooled frame.Buf that yield then owns (and must Release).
// IP total length, ID and header checksum, TCP sequence numbers and flags (FIN and PSH
// only on the last segment, CWR only on the first) and L4 checksums are all rewritten;
// segments carry zero Meta. Segmentation stops early when yield returns false. A frame
// that is not a superframe is handed on as one frame, its checksum completed when
// NeedsCsum is set. Segment returns how many segments yield received.
func Segment(f *frame.Frame, mtu int, yield func(*frame.Buf) bool) (int, error) {
	if f.N < 0 || f.N > len(f.Buf) {
		return 0, malformed("frame length %d outside buffer of %d", f.N, len(f.Buf))
	}
	b := f.Bytes()
	m := f.Meta
	if m.GSO == frame.GSONone {
		out := frame.GetBuf(len(b))
		out.Off = 0
		out.N = copy(out.B, b)
		out.Meta = m
		if err := CompleteChecksum(out.Bytes(), &out.Meta); err != nil {
			out.Release()
			return 0, err
		}
		yield(out)
		return 1, nil
	}
	l, err := parse(b)
	if err != nil {
		return 0, fmt.Errorf("segment %s superframe: %w", m.GSO, err)
	}
	switch m.GSO {
	case frame.GSOTCPv4:
		if l.v6 || l.proto != protoTCP {
			return 0, malformed("GSO type %s on a non-TCP/IPv4 frame", m.GSO)
		}
	case frame.GSOTCPv6:
		if !l.v6 || l.proto != protoTCP {
			return 0, malformed("GSO type %s on a non-TCP/IPv6 frame", m.GSO)
		}
	case frame.GSOUDPL4:
		if l.proto != protoUDP {
			return 0, malformed("GSO type %s on a non-UDP frame", m.GSO)
		}
	default:
		return 0, malformed("unknown GSO type %d", m.GSO)
	}
	if m.GSOSize == 0 {
		return 0, malformed("GSO superframe with zero segment size")
	}
	seg := int(m.GSOSize)
	if room := mtu - (l.hdr - l.l3); room < seg {
		seg = room
	}
	if seg <= 0 {
		return 0, malformed("MTU %d leaves no room for payload after %d header bytes", mtu, l.hdr-l.l3)
	}
	hdr := b[:l.hdr]
	payload := b[l.hdr:]
	var (
		ipID  uint16
		seq   uint32
		flags byte
	)
	if !l.v6 {
		ipID = binary.BigEndian.Uint16(b[l.l3+4 : l.l3+6])
	}
	if l.proto == protoTCP {
		seq = binary.BigEndian.Uint32(b[l.l4+4 : l.l4+8])
		flags = b[l.l4+13]
	}
	n := 0
	for off := 0; off < len(payload) || (off == 0 && len(payload) == 0); off += seg {
		end := off + seg
		if end > len(payload) {
			end = len(payload)
		}
		last := end == len(payload)
		out := frame.GetBuf(len(hdr) + end - off)
		out.Off = 0
		out.Meta = frame.Meta{}
		s := out.B[:len(hdr)+end-off]
		copy(s, hdr)
		copy(s[len(hdr):], payload[off:end])
		out.N = len(s)
		l4len := len(s) - l.l4
		if l.v6 {
			binary.BigEndian.PutUint16(s[l.l3+4:l.l3+6], uint16(l4len))
		} else {
			binary.BigEndian.PutUint16(s[l.l3+2:l.l3+4], uint16(len(s)-l.l3))
			binary.BigEndian.PutUint16(s[l.l3+4:l.l3+6], ipID+uint16(n))
			s[l.l3+10], s[l.l3+11] = 0, 0
			checksum.Put(s[l.l3+10:l.l3+12], ^checksum.Checksum(s[l.l3:l.l4], 0))
		}
		var csumAt int
		if l.proto == protoTCP {
			binary.BigEndian.PutUint32(s[l.l4+4:l.l4+8], seq+uint32(off))
			fl := flags
			if !last {
				fl &^= tcpFlagFIN | tcpFlagPSH
			}
			if n > 0 {
				fl &^= tcpFlagCWR
			}
			s[l.l4+13] = fl
			csumAt = l.l4 + 16
		} else {
			binary.BigEndian.PutUint16(s[l.l4+4:l.l4+6], uint16(l4len))
			csumAt = l.l4 + 6
		}
		s[csumAt], s[csumAt+1] = 0, 0
		c := ^checksum.Checksum(s[l.l4:], pseudoSum(s, l, l4len))
		if c == 0 && l.proto == protoUDP {
			c = 0xffff
		}
		checksum.Put(s[csumAt:csumAt+2], c)
		n++
		if !yield(out) || last {
			break
		}
	}
	return n, nil
}

// CompleteChecksum completes the partial checksum of a NeedsCsum frame b in place: it
// sums b from m.CsumStart to the end, on top of the pseudo-header sum already stored in
// the checksum field, stores the result at m.CsumStart+m.CsumOffset and clears
// m.NeedsCsum. Frames without NeedsCsum are left alone.
func CompleteChecksum(b []byte, m *frame.Meta) error {
	if !m.NeedsCsum {
		return nil
	}
	start, at := int(m.CsumStart), int(m.CsumStart)+int(m.CsumOffset)
	if start >= len(b) || at+2 > len(b) {
		return malformed("checksum start %d offset %d outside frame of %d bytes", m.CsumStart, m.CsumOffset, len(b))
	}
	c := ^checksum.Checksum(b[start:], 0)
	if c == 0 && m.CsumOffset == 6 {
		c = 0xffff // UDP: zero means "no checksum"
	}
	checksum.Put(b[at:at+2], c)
	m.NeedsCsum = false
	return nil
}
