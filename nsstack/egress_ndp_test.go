package nsstack

import (
	"net/netip"
	"testing"

	"github.com/vnetd/vnetd/frame"
)

// bytesPacket is a frame.Packet over a byte slice.
type bytesPacket []byte

func (p bytesPacket) CopyTo(b []byte) int { return copy(b, p) }
func (p bytesPacket) Clone() frame.Packet { return p }
func (p bytesPacket) Release()            {}

// TestForeignSolicitation: a terminating NIC drops neighbour solicitations for
// addresses it does not answer for (its own and its NDP aliases), multicast or
// unicast, tagged or not, behind the extension headers the stack skips, and in a
// frame by reference whose head ends before the target; it lets the rest through.
func TestForeignSolicitation(t *testing.T) {
	own := &neighborOwn{v4: map[[4]byte]bool{}, v6: map[[16]byte]bool{
		netip.MustParseAddr("fd00::2").As16(): true, netip.MustParseAddr("fd00::3").As16(): true}}
	// frame6 builds an Ethernet frame carrying an IPv6 packet (ICMPv6 type typ about target) behind ext, each
	// extension header 8 bytes of which the first is the next header.
	frame6 := func(typ byte, target string, tagged bool, ext ...byte) []byte {
		b := []byte{0x33, 0x33, 0xff, 0, 0, 0x77, 2, 0, 0, 0, 0, 1}
		if tagged {
			b = append(b, 0x81, 0x00, 0, 10)
		}
		b = append(b, 0x86, 0xdd)
		next := byte(58)
		if len(ext) > 0 {
			next = ext[0]
		}
		payload := 8*len(ext) + 32
		b = append(b, 0x60, 0, 0, 0, byte(payload>>8), byte(payload), next, 255)
		src, dst := netip.MustParseAddr("fd00::10").As16(), netip.MustParseAddr("ff02::1:ff00:77").As16()
		b = append(append(b, src[:]...), dst[:]...)
		for i := range ext {
			n := byte(58)
			if i+1 < len(ext) {
				n = ext[i+1]
			}
			b = append(b, n, 0, 0, 0, 0, 0, 0, 0)
		}
		tg := netip.MustParseAddr(target).As16()
		b = append(b, typ, 0, 0, 0, 0, 0, 0, 0)
		b = append(b, tg[:]...)
		return append(b, 1, 1, 2, 0, 0, 0, 0, 1) // source link-layer address option
	}
	const ns, na = 135, 136
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"solicitation for another address", frame6(ns, "fd00::77", false), true},
		{"solicitation for our own address", frame6(ns, "fd00::2", false), false},
		{"solicitation for an alias", frame6(ns, "fd00::3", false), false},
		{"solicitation sharing our solicited-node group", frame6(ns, "fd00:1::2", false), true},
		{"tagged solicitation for another address", frame6(ns, "fd00::77", true), true},
		{"behind hop-by-hop and destination options", frame6(ns, "fd00::77", false, 0, 60), true},
		{"own, behind hop-by-hop", frame6(ns, "fd00::3", false, 0), false},
		{"fragment: the stack drops fragmented NDP", frame6(ns, "fd00::77", false, 44), false},
		{"an advertisement", frame6(na, "fd00::77", false), false},
		{"cut before the target", frame6(ns, "fd00::77", false)[:70], false},
		{"not IPv6", append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00}, make([]byte, 80)...), false},
	} {
		f := frame.Frame{Buf: tc.b, N: len(tc.b)}
		if got := own.foreign(&f); got != tc.want {
			t.Errorf("%s: foreign = %v, want %v", tc.name, got, tc.want)
		}
		// The same frame by reference: only the head is in the buffer, and past it
		// the buffer holds garbage.
		buf := make([]byte, len(tc.b))
		copy(buf, tc.b[:min(len(tc.b), frame.PacketHead)])
		for i := frame.PacketHead; i < len(buf); i++ {
			buf[i] = 0xee
		}
		f = frame.Frame{Buf: buf, N: len(tc.b), Pkt: bytesPacket(tc.b)}
		if got := own.foreign(&f); got != tc.want {
			t.Errorf("%s, by reference: foreign = %v, want %v", tc.name, got, tc.want)
		}
	}
}
