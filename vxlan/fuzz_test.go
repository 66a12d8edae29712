package vxlan

import (
	"bytes"
	"testing"
)

// FuzzDecap: Decap never panics, and what it accepts re-encodes to the same header
// fields and inner frame.
func FuzzDecap(f *testing.F) {
	var h [HeaderLen]byte
	PutHeader(h[:], 42)
	f.Add(append(h[:], eth([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, macA, 60)...))
	f.Add([]byte{0x08, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 1, 0, 1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		vni, inner, err := Decap(b)
		if err != nil {
			return
		}
		if vni > MaxVNI || len(inner) < 14 || len(inner) != len(b)-HeaderLen {
			t.Fatalf("Decap(% x) = %d, %d bytes", b, vni, len(inner))
		}
		var g [HeaderLen]byte
		PutHeader(g[:], vni)
		if v2, in2, err := Decap(append(g[:], inner...)); err != nil || v2 != vni || !bytes.Equal(in2, inner) {
			t.Fatalf("re-encoded datagram decodes to %d, %v", v2, err)
		}
	})
}
