package nsstack

import "testing"

// TestForeignARPRequest: a terminating NIC is in spoofing mode, where gVisor answers
// ARP for every address; only requests for its own addresses may reach the stack (a
// gateway on lan0 answered for router r1's 10.0.0.1 and took the lab's traffic).
func TestForeignARPRequest(t *testing.T) {
	own := map[[4]byte]bool{{10, 0, 0, 2}: true}
	req := func(target [4]byte, op byte, tagged bool) []byte {
		b := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1}
		if tagged {
			b = append(b, 0x81, 0x00, 0, 10)
		}
		b = append(b, 0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, op, 2, 0, 0, 0, 0, 1, 10, 0, 0, 10, 0, 0, 0, 0, 0, 0)
		return append(b, target[:]...)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"request for the router's address", req([4]byte{10, 0, 0, 1}, 1, false), true},
		{"request for our own address", req([4]byte{10, 0, 0, 2}, 1, false), false},
		{"tagged request for another address", req([4]byte{10, 0, 0, 1}, 1, true), true},
		{"a reply", req([4]byte{10, 0, 0, 1}, 2, false), false},
		{"too short", req([4]byte{10, 0, 0, 1}, 1, false)[:30], false},
		{"not ARP", append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00}, make([]byte, 40)...), false},
	} {
		if got := foreignARPRequest(tc.b, own); got != tc.want {
			t.Errorf("foreignARPRequest(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
