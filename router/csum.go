package router

import "encoding/binary"

// sum adds b to a ones' complement running sum (not folded).
func sum(acc uint32, b []byte) uint32 {
	for len(b) >= 2 {
		acc += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

// fold folds a running sum into a 16-bit checksum (complemented).
func fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = (acc >> 16) + (acc & 0xffff)
	}
	return ^uint16(acc)
}

// csumUpdate returns checksum hc updated for one 16-bit word changing from m to m2
// (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
func csumUpdate(hc, m, m2 uint16) uint16 {
	acc := uint32(^hc) + uint32(^m) + uint32(m2)
	for acc > 0xffff {
		acc = (acc >> 16) + (acc & 0xffff)
	}
	return ^uint16(acc)
}
