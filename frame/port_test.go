package frame

import "testing"

func TestCapsAccepts(t *testing.T) {
	tests := []struct {
		name string
		caps Caps
		meta Meta
		want bool
	}{
		{"plain to none", 0, Meta{}, true},
		{"csum to none", 0, Meta{NeedsCsum: true}, false},
		{"csum to csum", CapCsum, Meta{NeedsCsum: true}, true},
		{"tso4 to csum only", CapCsum, Meta{GSO: GSOTCPv4, NeedsCsum: true}, false},
		{"tso4 to tso4+csum", CapCsum | CapTSO4, Meta{GSO: GSOTCPv4, NeedsCsum: true}, true},
		{"tso6 to tso4", CapCsum | CapTSO4, Meta{GSO: GSOTCPv6, NeedsCsum: true}, false},
		{"uso to all", CapsAll, Meta{GSO: GSOUDPL4, NeedsCsum: true}, true},
		{"unknown gso", CapsAll, Meta{GSO: 9}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.caps.Accepts(&tt.meta); got != tt.want {
				t.Fatalf("Caps(%b).Accepts(%+v) = %v, want %v", tt.caps, tt.meta, got, tt.want)
			}
		})
	}
}

func TestMetaShift(t *testing.T) {
	m := Meta{GSO: GSOTCPv4, NeedsCsum: true, HdrLen: 54, CsumStart: 34, CsumOffset: 16, GSOSize: 1448}
	m.Shift(VLANTagLen)
	if m.HdrLen != 58 || m.CsumStart != 38 || m.CsumOffset != 16 || m.GSOSize != 1448 {
		t.Fatalf("after Shift(+4): %+v", m)
	}
	m.Shift(-VLANTagLen)
	if m.HdrLen != 54 || m.CsumStart != 34 {
		t.Fatalf("after Shift(-4): %+v", m)
	}
	var plain Meta
	plain.Shift(4)
	if plain != (Meta{}) {
		t.Fatalf("Shift moved a plain frame's zero offsets: %+v", plain)
	}
}

func TestBufPool(t *testing.T) {
	for _, n := range []int{0, 60, 2048, 2049, 9018, 16384, MaxSuperFrame} {
		b := GetBuf(n)
		if len(b.B) < n || b.N != 0 {
			t.Fatalf("GetBuf(%d): len %d, N %d", n, len(b.B), b.N)
		}
		f := Frame{Buf: make([]byte, n), N: n, Meta: Meta{GSO: GSOTCPv6}}
		b.CopyFrom(&f)
		if b.N != n || b.Meta.GSO != GSOTCPv6 {
			t.Fatalf("CopyFrom: N %d Meta %+v", b.N, b.Meta)
		}
		small := Frame{Buf: make([]byte, n/2)}
		if n > 1 && b.CopyTo(&small) {
			t.Fatalf("CopyTo into a %d-byte buffer of a %d-byte frame succeeded", n/2, n)
		}
		b.Release()
	}
}

func TestGetBufTooBigPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("GetBuf(MaxSuperFrame+Headroom+1) did not panic")
		}
	}()
	GetBuf(MaxSuperFrame + Headroom + 1)
}

func BenchmarkBufPool(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		GetBuf(1500).Release()
	}
}
