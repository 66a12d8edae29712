package vxlan

import (
	"errors"
	"fmt"

	"github.com/vnetd/vnetd/frame"
)

// HeaderLen is the length of a VXLAN header.
const HeaderLen = 8

// flagVNI is the I flag: the VNI field is valid. RFC 7348 section 5: it must be set;
// every other bit of the header is reserved, sent as zero and ignored on receipt.
const flagVNI = 0x08

// MaxVNI is the largest VXLAN network identifier (24 bits).
const MaxVNI = 1<<24 - 1

// Overhead is the bytes a VXLAN tunnel adds around an inner L3 packet on an IPv4
// underlay: outer IPv4 (20), UDP (8), VXLAN (8) and inner Ethernet (14) headers.
// An IPv6 underlay adds 20 more (Overhead6).
const (
	Overhead  = 20 + 8 + HeaderLen + frame.EthHeaderLen
	Overhead6 = 40 + 8 + HeaderLen + frame.EthHeaderLen
)

// Errors Decap wraps.
var (
	// ErrShort: the datagram is shorter than a VXLAN header and an Ethernet header.
	ErrShort = errors.New("vxlan: datagram too short")
	// ErrNoVNI: the I flag is clear.
	ErrNoVNI = errors.New("vxlan: I flag clear")
)

// PutHeader writes a VXLAN header for vni into b[:HeaderLen].
func PutHeader(b []byte, vni uint32) {
	_ = b[HeaderLen-1]
	b[0], b[1], b[2], b[3] = flagVNI, 0, 0, 0
	b[4], b[5], b[6], b[7] = byte(vni>>16), byte(vni>>8), byte(vni), 0
}

// ParseHeader checks the VXLAN header at the start of b and returns its VNI.
func ParseHeader(b []byte) (uint32, error) {
	if len(b) < HeaderLen {
		return 0, fmt.Errorf("%w: %d bytes", ErrShort, len(b))
	}
	if b[0]&flagVNI == 0 {
		return 0, ErrNoVNI
	}
	return uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6]), nil
}

// Decap parses a whole VXLAN datagram (UDP payload) and returns its VNI and the inner
// Ethernet frame, a slice of b (nothing is copied).
func Decap(b []byte) (vni uint32, inner []byte, err error) {
	vni, err = ParseHeader(b)
	if err != nil {
		return 0, nil, err
	}
	inner = b[HeaderLen:]
	if len(inner) < frame.EthHeaderLen {
		return 0, nil, fmt.Errorf("%w: inner frame of %d bytes", ErrShort, len(inner))
	}
	return vni, inner, nil
}
