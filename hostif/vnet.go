package hostif

import (
	"encoding/binary"

	"github.com/vnetd/vnetd/frame"
)

// The virtio-net header the kernel puts in front of every frame of a packet socket with
// PACKET_VNET_HDR (struct virtio_net_hdr, little-endian on every host vnetd runs on).
const (
	vnetHdrLen = 10

	vnetFlagNeedsCsum = 1
	vnetFlagDataValid = 2

	vnetGSONone  = 0
	vnetGSOTCPv4 = 1
	vnetGSOTCPv6 = 4
	vnetGSOUDPL4 = 5
	vnetGSOECN   = 0x80
)

// decodeVnet translates a virtio-net header into m. It reports false for a GSO type
// frame.Meta cannot express (UFO, tunnels), whose frame must be dropped.
func decodeVnet(h []byte, m *frame.Meta) bool {
	_ = h[vnetHdrLen-1]
	*m = frame.Meta{
		NeedsCsum:  h[0]&vnetFlagNeedsCsum != 0,
		CsumValid:  h[0]&vnetFlagDataValid != 0,
		HdrLen:     binary.LittleEndian.Uint16(h[2:4]),
		GSOSize:    binary.LittleEndian.Uint16(h[4:6]),
		CsumStart:  binary.LittleEndian.Uint16(h[6:8]),
		CsumOffset: binary.LittleEndian.Uint16(h[8:10]),
	}
	switch h[1] &^ vnetGSOECN {
	case vnetGSONone:
		m.GSO = frame.GSONone
		m.GSOSize, m.HdrLen = 0, 0
	case vnetGSOTCPv4:
		m.GSO = frame.GSOTCPv4
	case vnetGSOTCPv6:
		m.GSO = frame.GSOTCPv6
	case vnetGSOUDPL4:
		m.GSO = frame.GSOUDPL4
	default:
		return false
	}
	if !m.NeedsCsum {
		m.CsumStart, m.CsumOffset = 0, 0
	}
	return true
}

// encodeVnet writes m as a virtio-net header into h for transmission. CsumValid is
// receive-side information and is not sent.
func encodeVnet(h []byte, m *frame.Meta) {
	_ = h[vnetHdrLen-1]
	var flags, gso byte
	if m.NeedsCsum {
		flags |= vnetFlagNeedsCsum
	}
	switch m.GSO {
	case frame.GSOTCPv4:
		gso = vnetGSOTCPv4
	case frame.GSOTCPv6:
		gso = vnetGSOTCPv6
	case frame.GSOUDPL4:
		gso = vnetGSOUDPL4
	}
	h[0], h[1] = flags, gso
	var hdrLen, size uint16
	if gso != vnetGSONone {
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
