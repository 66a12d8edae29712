package l2switch

import (
	"encoding/binary"
	"testing"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/frame/frametest"
	"github.com/vnetd/vnetd/internal/worker"
)

// directPorts builds a switch whose ports are attached but driven by the test: frames
// go straight into forwardBatch, and egress queues are drained by hand.
type direct struct {
	sw    *Switch
	ports []*swPort
	b     *batch
}

func newDirect(tb testing.TB, pcs ...PortConfig) *direct {
	tb.Helper()
	d := &direct{sw: New(Config{Name: "direct", AgeEvery: -1, QueueLen: 1 << 12})}
	ports := make([]*swPort, 0, len(pcs))
	for i, pc := range pcs {
		a, b := frametest.NewPair(frametest.PairOptions{})
		tb.Cleanup(func() { a.Close(); b.Close() })
		if pc.Name == "" {
			pc.Name = string(rune('a' + i))
		}
		sp := newSwPort(a, pc, 1<<12, 1<<30, 0)
		close(sp.done)                    // no reader: the test drives the port
		sp.writer = worker.New(func() {}) // nor writer: drain empties the queues
		ports = append(ports, sp)
	}
	d.sw.ports.Store(&ports)
	d.ports = ports
	d.b = newBatch(64, frame.MaxSuperFrame)
	tb.Cleanup(func() { d.b.release(); d.drain(); d.sw.Close() })
	return d
}

// drain empties every egress queue, returning how many frames were queued.
func (d *direct) drain() int {
	var out [64]*frame.Buf
	total := 0
	for _, p := range d.ports {
		for {
			n := p.out.TryPop(out[:])
			if n == 0 {
				break
			}
			for _, b := range out[:n] {
				b.Release()
			}
			total += n
		}
	}
	return total
}

func FuzzSwitchInput(f *testing.F) {
	f.Add(eth(frame.Broadcast, mac(1), "x"), uint8(0), uint8(0), uint16(0))
	f.Add(tagged(mac(2), mac(1), 10, "t"), uint8(2), uint8(1), uint16(0))
	f.Add([]byte{1, 2, 3}, uint8(1), uint8(0), uint16(0))
	f.Add(tagged(frame.Broadcast, mac(3), 20, "t"), uint8(2), uint8(frame.GSOTCPv4), uint16(34))
	f.Fuzz(func(t *testing.T, pkt []byte, port uint8, gso uint8, csumStart uint16) {
		d := newDirect(t, PortConfig{}, PortConfig{VLAN: 10}, PortConfig{Trunk: []uint16{10, 20}, Native: 1})
		in := d.ports[int(port)%len(d.ports)]
		if len(pkt) > len(d.b.frames[0].Buf) {
			pkt = pkt[:len(d.b.frames[0].Buf)]
		}
		for i := 0; i < 2; i++ { // twice: the second pass sees what the first learned
			fr := &d.b.frames[0]
			fr.N = copy(fr.Buf, pkt)
			fr.Meta = frame.Meta{GSO: frame.GSOType(gso % 5), NeedsCsum: gso&8 != 0, CsumStart: csumStart, HdrLen: csumStart}
			d.sw.forwardBatch(in, d.b, 1)
		}
		for _, p := range d.ports {
			var out [64]*frame.Buf
			n := p.out.TryPop(out[:])
			for _, b := range out[:n] {
				got := b.Bytes()
				// Whatever leaves a port is a well-formed frame for that port.
				if len(got) < frame.EthHeaderLen {
					t.Fatalf("port %s emitted a %d-byte frame", p.name, len(got))
				}
				isTagged := binary.BigEndian.Uint16(got[12:14]) == etherTypeVLAN
				if !p.trunk && isTagged {
					t.Fatalf("access port %s emitted a tagged frame % x", p.name, got[:18])
				}
				if p == in {
					t.Fatalf("port %s sent a frame back out of its ingress port", p.name)
				}
				if isTagged && len(got) >= frame.EthHeaderLen+frame.VLANTagLen {
					if v := binary.BigEndian.Uint16(got[14:16]) & tciVIDMask; !p.carries(v) || v == p.access {
						t.Fatalf("trunk %s emitted VLAN %d tagged, which it does not carry tagged", p.name, v)
					}
				}
				b.Release()
			}
		}
	})
}

func TestTooShortCounted(t *testing.T) {
	d := newDirect(t, PortConfig{}, PortConfig{Trunk: []uint16{5}})
	for _, tc := range []struct {
		in  *swPort
		pkt []byte
	}{
		{d.ports[0], []byte{1, 2, 3}},
		{d.ports[1], tagged(frame.Broadcast, mac(1), 5, "")[:15]},
	} {
		d.b.frames[0].N = copy(d.b.frames[0].Buf, tc.pkt)
		d.sw.forwardBatch(tc.in, d.b, 1)
		if got := tc.in.drops[dropTooShort].Load(); got != 1 {
			t.Fatalf("port %s drops[too_short] = %d after a %d-byte frame, want 1", tc.in.name, got, len(tc.pkt))
		}
	}
	if n := d.drain(); n != 0 {
		t.Fatalf("%d frames forwarded, want 0", n)
	}
}
