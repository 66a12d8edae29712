package vnethdr

import (
	"encoding/binary"

	"github.com/vnetd/vnetd/frame"
)

// Len is the size of the header vnetd uses (struct virtio_net_hdr, without the
// num_buffers field of the mergeable-buffers variant).
const Len = 10

// Flags and GSO types of struct virtio_net_hdr (include/uapi/linux/virtio_net.h).
const (
	FlagNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	FlagDataValid = 2 // VIRTIO_NET_HDR_F_DATA_VALID

	GSONone  = 0    // VIRTIO_NET_HDR_GSO_NONE
	GSOTCPv4 = 1    // VIRTIO_NET_HDR_GSO_TCPV4
	GSOUDP   = 3    // VIRTIO_NET_HDR_GSO_UDP (UFO, not supported)
	GSOTCPv6 = 4    // VIRTIO_NET_HDR_GSO_TCPV6
	GSOUDPL4 = 5    // VIRTIO_NET_HDR_GSO_UDP_L4
	GSOECN   = 0x80 // VIRTIO_NET_HDR_GSO_ECN, a flag on the type
)

// Decode translates the header h (at least Len bytes) into m. It reports false for a
// GSO type frame.Meta cannot express (UFO, tunnels): such a frame must be dropped. The
// result is normalised: a plain frame has no HdrLen or GSOSize, a frame without
// NeedsCsum no CsumStart or CsumOffset. The ECN flag is ignored.
func Decode(h []byte, m *frame.Meta) bool {
	_ = h[Len-1]
	*m = frame.Meta{
		NeedsCsum:  h[0]&FlagNeedsCsum != 0,
		CsumValid:  h[0]&FlagDataValid != 0,
		HdrLen:     binary.LittleEndian.Uint16(h[2:4]),
		GSOSize:    binary.LittleEndian.Uint16(h[4:6]),
		CsumStart:  binary.LittleEndian.Uint16(h[6:8]),
		CsumOffset: binary.LittleEndian.Uint16(h[8:10]),
	}
	switch h[1] &^ GSOECN {
	case GSONone:
		m.GSO = frame.GSONone
		m.GSOSize, m.HdrLen = 0, 0
	case GSOTCPv4:
		m.GSO = frame.GSOTCPv4
	case GSOTCPv6:
		m.GSO = frame.GSOTCPv6
	case GSOUDPL4:
		m.GSO = frame.GSOUDPL4
	default:
		return false
	}
	if !m.NeedsCsum {
		m.CsumStart, m.CsumOffset = 0, 0
	}
	return true
}

// Encode writes m as a header into h (at least Len bytes). Fields that do not apply
// are written as zero: HdrLen and GSOSize of a plain frame, CsumStart and CsumOffset
// without NeedsCsum. DATA_VALID is set when m.CsumValid is: a TAP's kernel then skips
// verifying the checksum; callers for which it means nothing clear it first.
func Encode(h []byte, m *frame.Meta) {
	_ = h[Len-1]
	var flags, gso byte
	if m.NeedsCsum {
		flags |= FlagNeedsCsum
	}
	if m.CsumValid {
		flags |= FlagDataValid
	}
	switch m.GSO {
	case frame.GSOTCPv4:
		gso = GSOTCPv4
	case frame.GSOTCPv6:
		gso = GSOTCPv6
	case frame.GSOUDPL4:
		gso = GSOUDPL4
	}
	h[0], h[1] = flags, gso
	var hdrLen, size uint16
	if gso != GSONone {
		hdrLen, size = m.HdrLen, m.GSOSize
	}
	binary.LittleEndian.PutUint16(h[2:4], hdrLen)
	binary.LittleEndian.PutUint16(h[4:6], size)
	var start, off uint16
	if m.NeedsCsum {
		start, off = m.CsumStart, m.CsumOffset
	}
	binary.LittleEndian.PutUint16(h[6:8], start)
	binary.LittleEndian.PutUint16(h[8:10], off)
}
