package nsstack

import (
	"fmt"
	"net/netip"
	"testing"

	l2switch "github.com/vnetd/vnetd/switch"
)

// TestGROCoalescesSegments: a sender that cannot make superframes (NoGSO, as a kernel
// peer behind VXLAN or a TAP without offloads) sends MTU-sized segments; with GRO the
// receiving stack sees far fewer, larger TCP segments than its NIC received frames,
// and without it (NoGRO) one segment per frame. The bytes arrive whole either way
// (transfer checks them).
func TestGROCoalescesSegments(t *testing.T) {
	for _, noGRO := range []bool{false, true} {
		t.Run(fmt.Sprintf("noGRO=%v", noGRO), func(t *testing.T) {
			sw := newSwitch(t, "lan0")
			a, b := newNS(t, "a"), newNS(t, "b")
			for _, x := range []struct {
				ns   *Namespace
				addr string
			}{{a, "10.0.0.1/24"}, {b, "10.0.0.2/24"}} {
				nic, err := x.ns.AddNIC(NICConfig{Name: "eth0", NoGSO: true, NoGRO: noGRO})
				if err != nil {
					t.Fatal(err)
				}
				if err := x.ns.AddAddress("eth0", netip.MustParsePrefix(x.addr)); err != nil {
					t.Fatal(err)
				}
				if err := sw.AddPort(nic, l2switch.PortConfig{}); err != nil {
					t.Fatal(err)
				}
			}
			nb, _ := b.NIC("eth0")
			before := b.st.Stats().TCP.ValidSegmentsReceived.Value()
			transfer(t, b, a, ":80", "10.0.0.2:80", 8<<20)
			segs := b.st.Stats().TCP.ValidSegmentsReceived.Value() - before
			frames := nb.Counters().Snapshot().RxFrames
			t.Logf("b's NIC received %d frames, its TCP %d segments", frames, segs)
			// 8 MiB at MTU 1500 is over 5,700 data segments.
			if frames < 5700 {
				t.Fatalf("b's NIC received %d frames, want MTU-sized segments (>= 5700)", frames)
			}
			if noGRO && segs < frames*9/10 {
				t.Errorf("without GRO the stack saw %d segments for %d frames, want about one each", segs, frames)
			}
			if !noGRO && segs > frames/2 {
				t.Errorf("with GRO the stack saw %d segments for %d frames, want them coalesced (<= half)", segs, frames)
			}
		})
	}
}
