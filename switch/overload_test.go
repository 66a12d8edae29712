package l2switch

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/frame/frametest"
)

// udpFrame builds an IPv4/UDP frame from src to dst.
func udpFrame(t *testing.T, dst, src frame.MAC, sport, dport uint16) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: src[:], DstMAC: dst[:], EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: []byte{10, 0, 0, src[5]}, DstIP: []byte{10, 0, 0, dst[5]}}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatalf("udp.SetNetworkLayerForChecksum: %v", err)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload(make([]byte, 512))); err != nil {
		t.Fatalf("gopacket.SerializeLayers: %v", err)
	}
	return buf.Bytes()
}

// slowStation is a port whose far end drains only as many frames as it is granted.
type slowStation struct {
	end     *frametest.End
	grant   chan struct{}
	drained atomic.Uint64
}

func addSlowStation(t *testing.T, sw *Switch, name string, queueLen, grants int) *slowStation {
	t.Helper()
	near, far := frametest.NewPair(frametest.PairOptions{NameA: name, NameB: name + "-far", QueueLen: queueLen})
	if err := sw.AddPort(near, PortConfig{Name: name}); err != nil {
		t.Fatalf("sw.AddPort(%q): %v", name, err)
	}
	s := &slowStation{end: far, grant: make(chan struct{}, grants)}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		bufs := []frame.Frame{{Buf: make([]byte, frame.MaxSuperFrame)}}
		for {
			select {
			case <-s.grant:
			case <-stop:
				return
			}
			if _, err := far.ReadFrames(bufs); err != nil {
				return
			}
			s.drained.Add(1)
		}
	}()
	return s
}

// TestUDPOverloadIsolated sends UDP to one port at twice what its far side drains (the
// reader is granted one frame for every two sent) while two other port pairs carry a
// flow each. The overloaded port drops the excess and counts it as queue_full; every
// UDP frame is either delivered or counted; the other flows keep >= 90% of their
// frames; the heap does not grow with the number of frames sent.
//
// Rates are frame counts per round, not wall clock, so a loaded host changes the
// duration, not the figures.
func TestUDPOverloadIsolated(t *testing.T) {
	rounds := 4000
	if testing.Short() {
		rounds = 1000
	}
	const perRound, legitPerRound = 64, 8
	sw := newSwitch(t, Config{AgeEvery: -1})
	a, b := addCounter(t, sw, "a"), addCounter(t, sw, "b")
	c, d := addCounter(t, sw, "c"), addCounter(t, sw, "d")
	src := addCounter(t, sw, "udp-src")
	victim := addSlowStation(t, sw, "victim", 64, rounds*perRound/2+1)
	macA, macB, macC, macD, macS, macV := mac(0xa), mac(0xb), mac(0xc), mac(0xd), mac(0x5), mac(0x7)

	// Every station announces itself so the flows below are unicast.
	for _, h := range []struct {
		end *frametest.End
		m   frame.MAC
	}{{a.end, macA}, {b.end, macB}, {c.end, macC}, {d.end, macD}, {src.end, macS}, {victim.end, macV}} {
		f := eth(frame.Broadcast, h.m, "hello")
		if k, err := h.end.WriteFrames([]frame.Frame{{Buf: f, N: len(f)}}); k != 1 || err != nil {
			t.Fatalf("WriteFrames(hello from %v) = %d, %v", h.m, k, err)
		}
	}
	victim.grant <- struct{}{} // the victim's hellos from the others: 5 frames to drain
	for range 4 {
		victim.grant <- struct{}{}
	}
	waitFor(t, func() bool { return sw.Stats().FDBSize == 6 && victim.drained.Load() == 5 },
		func() string {
			return fmt.Sprintf("FDB %d, victim drained %d; want 6, 5", sw.Stats().FDBSize, victim.drained.Load())
		})
	base := portStatus(t, sw, "victim")

	udp := udpFrame(t, macV, macS, 40000, 9)
	batch := make([]frame.Frame, perRound)
	for i := range batch {
		batch[i] = frame.Frame{Buf: udp, N: len(udp)}
	}
	ab := udpFrame(t, macB, macA, 40001, 9)
	binary.BigEndian.PutUint16(ab[12:14], legitType) // counted as legit at b
	cd := udpFrame(t, macD, macC, 40002, 9)
	binary.BigEndian.PutUint16(cd[12:14], legitType)
	legitBatch := func(f []byte) []frame.Frame {
		out := make([]frame.Frame, legitPerRound)
		for i := range out {
			out[i] = frame.Frame{Buf: f, N: len(f)}
		}
		return out
	}
	abBatch, cdBatch := legitBatch(ab), legitBatch(cd)

	var udpSent, abSent, cdSent, granted uint64
	const window = 256 // frames in flight per flow, and grants not yet drained
	deadline := time.Now().Add(2 * time.Minute)
	run := func(from, to int) {
		for r := from; r < to; r++ {
			// Pace on what was drained: the legit receivers within a window of what
			// was sent, the victim within a window of what it was granted, so the
			// victim drains one frame for every two sent to it however the
			// scheduler runs the goroutines.
			for abSent-b.legit.Load() > window || cdSent-d.legit.Load() > window || granted-(victim.drained.Load()-5) > window {
				if time.Now().After(deadline) {
					t.Fatalf("round %d: stalled: a->b %d/%d, c->d %d/%d, victim drained %d of %d granted",
						r, b.legit.Load(), abSent, d.legit.Load(), cdSent, victim.drained.Load()-5, granted)
				}
				time.Sleep(50 * time.Microsecond)
			}
			k, err := src.end.WriteFrames(batch)
			if err != nil {
				t.Fatalf("udp-src WriteFrames: %v", err)
			}
			udpSent += uint64(k)
			for range perRound / 2 {
				victim.grant <- struct{}{}
			}
			granted += perRound / 2
			k, _ = a.end.WriteFrames(abBatch)
			abSent += uint64(k)
			k, _ = c.end.WriteFrames(cdBatch)
			cdSent += uint64(k)
		}
	}
	// A first quarter fills the queues and pools; the heap is measured from there, so
	// growth with the number of frames sent shows.
	run(0, rounds/4)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	run(rounds/4, rounds)
	waitStable(t, func() uint64 {
		st := portStatus(t, sw, "victim")
		return b.legit.Load() + d.legit.Load() + victim.drained.Load() + st.Counters.TxFrames + st.Counters.TxDropped
	})

	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	st := portStatus(t, sw, "victim")
	got := st.Counters.TxFrames - base.Counters.TxFrames
	dropped := st.Counters.TxDropped - base.Counters.TxDropped
	queueFull := st.Drops[DropQueueFull] - base.Drops[DropQueueFull]
	if got+dropped != udpSent {
		t.Errorf("victim: %d written + %d dropped = %d, want the %d UDP frames sent (every frame delivered or counted)", got, dropped, got+dropped, udpSent)
	}
	if queueFull != dropped {
		t.Errorf("victim drops = %v; want all %d dropped frames counted as %s", st.Drops, dropped, DropQueueFull)
	}
	if dropped < udpSent*4/10 {
		t.Errorf("victim dropped %d of %d UDP frames, want about half (sent at 2x its drain rate)", dropped, udpSent)
	}
	if v := victim.drained.Load() - 5; v > udpSent/2 {
		t.Errorf("victim drained %d of %d, want at most half", v, udpSent)
	}
	for _, f := range []struct {
		name      string
		got, sent uint64
	}{{"a->b", b.legit.Load(), abSent}, {"c->d", d.legit.Load(), cdSent}} {
		if f.got < f.sent*9/10 {
			t.Errorf("flow %s: %d of %d frames delivered, want >= 90%%", f.name, f.got, f.sent)
		}
	}
	if n := a.other.Load() + c.other.Load() + src.other.Load() - 3*5; n != 0 {
		t.Errorf("%d frames reached ports they were not addressed to", n)
	}
	const bound = 16 << 20
	if grow := int64(after.HeapInuse) - int64(before.HeapInuse); grow > bound {
		t.Errorf("heap in use grew by %d MiB during the overload, want < %d MiB", grow>>20, bound>>20)
	}
	t.Logf("overload %d rounds: UDP %d sent, victim %d written %d dropped (%v), drained %d; a->b %d/%d, c->d %d/%d; heap %+d KiB",
		rounds, udpSent, got, dropped, st.Drops, victim.drained.Load(), b.legit.Load(), abSent, d.legit.Load(), cdSent,
		(int64(after.HeapInuse)-int64(before.HeapInuse))>>10)
}
