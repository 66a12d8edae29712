package nsstack

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/vnetd/vnetd/frame"
	l2switch "github.com/vnetd/vnetd/switch"
)

// plainPump copies frames from src to dst as plain bytes (ReadFrames, never by
// reference), in batches, as a VXLAN or TAP port hands a namespace what the kernel sent.
func plainPump(src, dst frame.Port) {
	frames := make([]frame.Frame, 64)
	for i := range frames {
		frames[i].Buf = make([]byte, frame.MaxSuperFrame)
	}
	for {
		n, err := src.ReadFrames(frames)
		if err != nil {
			return
		}
		if _, err := dst.WriteFrames(frames[:n]); err != nil {
			return
		}
	}
}

// TestGROCoalescesSegments: a sender that cannot make superframes (NoGSO, as a kernel
// peer behind VXLAN or a TAP without offloads) sends MTU-sized segments as plain
// frames; with GRO the receiving stack sees far fewer, larger TCP segments than its
// NIC received frames, and without it (NoGRO) one segment per frame. The bytes arrive
// whole either way (transfer checks them).
func TestGROCoalescesSegments(t *testing.T) {
	for _, noGRO := range []bool{false, true} {
		t.Run(fmt.Sprintf("noGRO=%v", noGRO), func(t *testing.T) {
			a, b := newNS(t, "a"), newNS(t, "b")
			var nics []*NIC
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
				nics = append(nics, nic)
			}
			go plainPump(nics[0], nics[1])
			go plainPump(nics[1], nics[0])
			before := b.st.Stats().TCP.ValidSegmentsReceived.Value()
			transfer(t, b, a, ":80", "10.0.0.2:80", 8<<20)
			segs := b.st.Stats().TCP.ValidSegmentsReceived.Value() - before
			frames := nics[1].Counters().Snapshot().RxFrames
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

// TestGROLeavesSharedFramesAlone: frames by reference (another stack's buffers) are
// never coalesced, whose headers GRO would rewrite in place.
func TestGROLeavesSharedFramesAlone(t *testing.T) {
	sw := newSwitch(t, "lan0")
	a, b := newNS(t, "a"), newNS(t, "b")
	for _, x := range []struct {
		ns   *Namespace
		addr string
	}{{a, "10.0.0.1/24"}, {b, "10.0.0.2/24"}} {
		nic, err := x.ns.AddNIC(NICConfig{Name: "eth0", NoGSO: true})
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
	transfer(t, b, a, ":80", "10.0.0.2:80", 4<<20)
	segs := b.st.Stats().TCP.ValidSegmentsReceived.Value() - before
	c := nb.Counters().Snapshot()
	if c.RxFrames < 2800 || nb.RxByReference() < c.RxFrames*9/10 || segs < c.RxFrames*9/10 {
		t.Fatalf("b's NIC received %d frames (%d by reference), its TCP %d segments; want about one segment per shared frame", c.RxFrames, nb.RxByReference(), segs)
	}
}
