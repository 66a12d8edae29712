package l2switch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/frame/frametest"
	"github.com/vnetd/vnetd/internal/testwait"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// host is a test station: the far end of a veth pair whose near end is a switch port.
// Everything the switch sends to the port arrives on rx.
type host struct {
	t    *testing.T
	name string
	mac  frame.MAC
	end  *frametest.End
	rx   chan []byte
}

func mac(i int) frame.MAC { return frame.MAC{0x02, 0, 0, 0, byte(i >> 8), byte(i)} }

// addHost attaches a new host to sw on a port configured by pc.
func addHost(t *testing.T, sw *Switch, name string, m frame.MAC, pc PortConfig) *host {
	t.Helper()
	near, far := frametest.NewPair(frametest.PairOptions{NameA: name, NameB: name + "-far", QueueLen: 4096})
	pc.Name = name
	if err := sw.AddPort(near, pc); err != nil {
		t.Fatalf("sw.AddPort(%q): %v", name, err)
	}
	h := &host{t: t, name: name, mac: m, end: far, rx: make(chan []byte, 4096)}
	go func() {
		bufs := make([]frame.Frame, 16)
		for i := range bufs {
			bufs[i].Buf = make([]byte, frame.MaxSuperFrame)
		}
		for {
			n, err := far.ReadFrames(bufs)
			if err != nil {
				close(h.rx)
				return
			}
			for _, f := range bufs[:n] {
				h.rx <- bytes.Clone(f.Bytes())
			}
		}
	}()
	return h
}

// eth builds an untagged frame with a payload tag.
func eth(dst, src frame.MAC, payload string) []byte {
	b := make([]byte, 14, 64)
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:14], 0x88b5) // local experimental ethertype
	b = append(b, payload...)
	for len(b) < 60 {
		b = append(b, 0)
	}
	return b
}

// tagged builds an 802.1Q frame.
func tagged(dst, src frame.MAC, vlan uint16, payload string) []byte {
	u := eth(dst, src, payload)
	b := make([]byte, 0, len(u)+4)
	b = append(b, u[:12]...)
	b = binary.BigEndian.AppendUint16(b, 0x8100)
	b = binary.BigEndian.AppendUint16(b, vlan)
	return append(b, u[12:]...)
}

func (h *host) send(pkts ...[]byte) {
	h.t.Helper()
	for _, p := range pkts {
		if n, err := h.end.WriteFrames([]frame.Frame{{Buf: p, N: len(p)}}); n != 1 || err != nil {
			h.t.Fatalf("%s: WriteFrames = %d, %v", h.name, n, err)
		}
	}
}

// payload returns the payload tag of an (untagged or tagged) test frame.
func payload(b []byte) string {
	off := 14
	if binary.BigEndian.Uint16(b[12:14]) == 0x8100 {
		off = 18
	}
	return string(bytes.TrimRight(b[off:], "\x00"))
}

// expect waits for the next frame at h and checks its payload.
func (h *host) expect(want string) []byte {
	h.t.Helper()
	select {
	case b := <-h.rx:
		if got := payload(b); got != want {
			h.t.Fatalf("%s received %q, want %q", h.name, got, want)
		}
		return b
	case <-time.After(5 * time.Second):
		h.t.Fatalf("%s received nothing, want %q", h.name, want)
	}
	return nil
}

// expectNone checks that nothing is waiting at h, after the switch has had time to
// deliver: callers first send a frame that they expect elsewhere, so FIFO ordering makes
// this a sync point rather than a guess.
func (h *host) expectNone() {
	h.t.Helper()
	time.Sleep(20 * time.Millisecond)
	select {
	case b := <-h.rx:
		h.t.Fatalf("%s received %q, want nothing", h.name, payload(b))
	default:
	}
}

func newSwitch(t *testing.T, cfg Config) *Switch {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "sw"
	}
	sw := New(cfg)
	t.Cleanup(func() { sw.Close() })
	return sw
}

func TestFloodThenUnicast(t *testing.T) {
	sw := newSwitch(t, Config{})
	h1 := addHost(t, sw, "p1", mac(1), PortConfig{})
	h2 := addHost(t, sw, "p2", mac(2), PortConfig{})
	h3 := addHost(t, sw, "p3", mac(3), PortConfig{})

	// Broadcast floods to every other port, never back to the ingress port.
	h1.send(eth(frame.Broadcast, h1.mac, "bcast"))
	h2.expect("bcast")
	h3.expect("bcast")
	h1.expectNone()

	// Unknown unicast floods.
	h1.send(eth(mac(9), h1.mac, "unknown"))
	h2.expect("unknown")
	h3.expect("unknown")

	// h1 is learned: a frame to it goes to p1 only.
	h2.send(eth(h1.mac, h2.mac, "to-h1"))
	h1.expect("to-h1")
	// h2 is learned now too: known unicast both ways, h3 sees none of it.
	h1.send(eth(h2.mac, h1.mac, "to-h2"))
	h2.expect("to-h2")
	h3.send(eth(frame.Broadcast, h3.mac, "sync"))
	h1.expect("sync")
	h2.expect("sync")
	h3.expectNone()

	// Multicast floods like broadcast.
	h2.send(eth(frame.MAC{0x01, 0, 0x5e, 0, 0, 1}, h2.mac, "mcast"))
	h1.expect("mcast")
	h3.expect("mcast")

	fdb := map[frame.MAC]string{}
	for _, e := range sw.FDB() {
		if e.VLAN != DefaultVLAN {
			t.Fatalf("FDB entry %+v: VLAN %d, want %d", e, e.VLAN, DefaultVLAN)
		}
		fdb[e.MAC] = e.Port
	}
	want := map[frame.MAC]string{h1.mac: "p1", h2.mac: "p2", h3.mac: "p3"}
	if fmt.Sprint(fdb) != fmt.Sprint(want) {
		t.Fatalf("FDB() = %v, want %v", fdb, want)
	}
	if st := sw.Stats(); st.FDBSize != 3 || st.Learned != 3 || st.Ports != 3 {
		t.Fatalf("Stats() = %+v, want 3 learned, 3 ports", st)
	}
	if p, ok := sw.LookupPort(0, h2.mac); !ok || p.Info().Name != "p2" {
		t.Fatalf("LookupPort(0, h2) = %v, %v; want p2", p, ok)
	}
	if _, ok := sw.LookupPort(0, mac(77)); ok {
		t.Fatal("LookupPort of an unknown MAC succeeded")
	}
}

func portStatus(t *testing.T, sw *Switch, name string) PortStatus {
	t.Helper()
	for _, p := range sw.Ports() {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no port %q in Ports()", name)
	return PortStatus{}
}

func TestSamePortDropped(t *testing.T) {
	sw := newSwitch(t, Config{})
	h1 := addHost(t, sw, "p1", mac(1), PortConfig{})
	h2 := addHost(t, sw, "p2", mac(2), PortConfig{})
	// mac(5) lives behind p1 as well (a host behind another switch).
	h1.send(eth(frame.Broadcast, mac(5), "learn5"))
	h2.expect("learn5")
	h1.send(eth(mac(5), h1.mac, "hairpin"))
	h1.send(eth(frame.Broadcast, h1.mac, "sync"))
	h2.expect("sync")
	h1.expectNone()
	h2.expectNone()
	if got := portStatus(t, sw, "p1").Drops[DropSamePort]; got != 1 {
		t.Fatalf("p1 drops[%s] = %d, want 1", DropSamePort, got)
	}
}

func TestAgingAndMove(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	sw := newSwitch(t, Config{MACAging: time.Minute, Now: clock, AgeEvery: -1})
	h1 := addHost(t, sw, "p1", mac(1), PortConfig{})
	h2 := addHost(t, sw, "p2", mac(2), PortConfig{})
	h3 := addHost(t, sw, "p3", mac(3), PortConfig{})

	h1.send(eth(frame.Broadcast, h1.mac, "hello"))
	h2.expect("hello")
	h3.expect("hello")
	advance(30 * time.Second)
	sw.Age(clock())
	if st := sw.Stats(); st.FDBSize != 1 || st.Aged != 0 {
		t.Fatalf("after 30s: Stats() = %+v, want h1 still learned", st)
	}
	if e := sw.FDB(); len(e) != 1 || e[0].Age != 30*time.Second {
		t.Fatalf("FDB() = %+v, want one entry aged 30s", e)
	}
	advance(31 * time.Second)
	sw.Age(clock())
	if st := sw.Stats(); st.FDBSize != 0 || st.Aged != 1 {
		t.Fatalf("after 61s: Stats() = %+v, want h1 aged out", st)
	}
	// Forgotten: traffic to h1 floods again.
	h2.send(eth(h1.mac, h2.mac, "flooded"))
	h1.expect("flooded")
	h3.expect("flooded")

	// h1 moves to p3: the entry follows it.
	h1.send(eth(frame.Broadcast, h1.mac, "at-p1"))
	h2.expect("at-p1")
	h3.expect("at-p1")
	h3.send(eth(frame.Broadcast, h1.mac, "moved"))
	h1.expect("moved")
	h2.expect("moved")
	h2.send(eth(h1.mac, h2.mac, "after-move"))
	h3.expect("after-move")
	h2.send(eth(frame.Broadcast, h2.mac, "sync"))
	h1.expect("sync")
	h3.expect("sync")
	h1.expectNone()
	if st := sw.Stats(); st.Moved != 1 {
		t.Fatalf("Stats().Moved = %d, want 1", st.Moved)
	}
}

func TestMACLimits(t *testing.T) {
	tests := []struct {
		name           string
		cfg            Config
		wantLearned    int64
		wantLimited    uint64
		wantPortLimits uint64
	}{
		{"max_macs", Config{MaxMACs: 3}, 3, 2, 0},
		{"port_max_macs learn-only", Config{PortMaxMACs: 2, PortMaxMACsLearnOnly: true}, 3, 0, 2}, // 2 behind p1 + h2
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sw := newSwitch(t, tt.cfg)
			h1 := addHost(t, sw, "p1", mac(1), PortConfig{})
			h2 := addHost(t, sw, "p2", mac(2), PortConfig{})
			h2.send(eth(frame.Broadcast, h2.mac, "h2"))
			h1.expect("h2")
			for i := 10; i < 14; i++ {
				h1.send(eth(frame.Broadcast, mac(i), fmt.Sprint("src", i)))
				h2.expect(fmt.Sprint("src", i))
			}
			st := sw.Stats()
			if st.FDBSize != tt.wantLearned || st.Limited != tt.wantLimited || st.PortLimited != tt.wantPortLimits {
				t.Fatalf("Stats() = %+v, want size %d limited %d port_limited %d", st, tt.wantLearned, tt.wantLimited, tt.wantPortLimits)
			}
			// An unlearned source is still reachable: frames to it flood.
			h2.send(eth(mac(13), h2.mac, "to-unlearned"))
			h1.expect("to-unlearned")
		})
	}
}

// TestPortMaxMACsDrop: with the default violation, frames from sources beyond a
// port's cap are dropped and counted, not forwarded unlearned.
func TestPortMaxMACsDrop(t *testing.T) {
	sw := newSwitch(t, Config{PortMaxMACs: 2})
	h1 := addHost(t, sw, "p1", mac(1), PortConfig{})
	h2 := addHost(t, sw, "p2", mac(2), PortConfig{})
	for i := 10; i < 14; i++ {
		h1.send(eth(frame.Broadcast, mac(i), fmt.Sprint("src", i)))
		if i < 12 {
			h2.expect(fmt.Sprint("src", i))
		}
	}
	h2.expectNone()
	// A learned source still passes.
	h1.send(eth(frame.Broadcast, mac(10), "again"))
	h2.expect("again")
	var p1 PortStatus
	for _, p := range sw.Ports() {
		if p.Name == "p1" {
			p1 = p
		}
	}
	if p1.Drops[DropPortMACs] != 2 || sw.Stats().PortLimited != 2 {
		t.Fatalf("p1 drops %v, port_limited %d; want %s 2 and 2", p1.Drops, sw.Stats().PortLimited, DropPortMACs)
	}
}

func TestVLANs(t *testing.T) {
	sw := newSwitch(t, Config{})
	a10 := addHost(t, sw, "a10", mac(1), PortConfig{VLAN: 10})
	b10 := addHost(t, sw, "b10", mac(2), PortConfig{VLAN: 10})
	a20 := addHost(t, sw, "a20", mac(3), PortConfig{VLAN: 20})
	tr := addHost(t, sw, "trunk", mac(4), PortConfig{Trunk: []uint16{10, 20}})
	nat := addHost(t, sw, "native", mac(5), PortConfig{Trunk: []uint16{20}, Native: 10})

	// Access VLAN 10 broadcast: b10 untagged, trunk tagged 10, native trunk untagged; not a20.
	a10.send(eth(frame.Broadcast, a10.mac, "v10"))
	b10.expect("v10")
	if got := tr.expect("v10"); binary.BigEndian.Uint16(got[12:14]) != 0x8100 || binary.BigEndian.Uint16(got[14:16])&0xfff != 10 {
		t.Fatalf("trunk got % x, want an 802.1Q tag with VLAN 10", got[:18])
	}
	if got := nat.expect("v10"); binary.BigEndian.Uint16(got[12:14]) == 0x8100 {
		t.Fatalf("native-10 trunk got a tagged frame % x", got[:18])
	}
	a20.send(eth(frame.Broadcast, a20.mac, "sync20"))
	tr.expect("sync20")
	if got := nat.expect("sync20"); binary.BigEndian.Uint16(got[14:16])&0xfff != 20 {
		t.Fatalf("native trunk VLAN 20 frame % x, want tag 20", got[:18])
	}
	// VLAN 10 never reached a20.
	select {
	case b := <-a20.rx:
		t.Fatalf("a20 received %q across VLANs", payload(b))
	default:
	}
	b10.expectNone()

	// Tagged VLAN 20 from the trunk pops at a20, reaches native's tagged 20, not VLAN 10.
	tr.send(tagged(frame.Broadcast, tr.mac, 20, "t20"))
	if got := a20.expect("t20"); binary.BigEndian.Uint16(got[12:14]) == 0x8100 || len(got) != 60 {
		t.Fatalf("a20 got % x (len %d), want the tag popped", got[:16], len(got))
	}
	nat.expect("t20")
	tr.send(tagged(frame.Broadcast, tr.mac, 10, "t10"))
	a10.expect("t10")
	b10.expect("t10")
	nat.expect("t10")
	a20.expectNone()

	// Known unicast across a tag change: a10 → trunk host learned in VLAN 10.
	a10.send(eth(tr.mac, a10.mac, "uni"))
	if got := tr.expect("uni"); binary.BigEndian.Uint16(got[14:16])&0xfff != 10 {
		t.Fatalf("unicast to trunk % x, want tag 10", got[:18])
	}

	// No VLAN hopping: a tagged frame on an access port is dropped.
	a10.send(tagged(frame.Broadcast, a10.mac, 20, "hop"))
	// A VLAN the trunk does not carry is dropped; so is untagged on a trunk without native.
	tr.send(tagged(frame.Broadcast, tr.mac, 30, "v30"), eth(frame.Broadcast, tr.mac, "untagged"))
	a10.send(eth(frame.Broadcast, a10.mac, "sync"))
	b10.expect("sync")
	tr.expect("sync")
	nat.expect("sync")
	a20.expectNone()
	if got := portStatus(t, sw, "a10").Drops[DropTaggedOnAccess]; got != 1 {
		t.Fatalf("a10 drops[%s] = %d, want 1", DropTaggedOnAccess, got)
	}
	if got := portStatus(t, sw, "trunk").Drops[DropVLANNotAllowed]; got != 2 {
		t.Fatalf("trunk drops[%s] = %d, want 2", DropVLANNotAllowed, got)
	}
	// The FDB keeps one entry per (VLAN, MAC).
	seen := map[string]bool{}
	for _, e := range sw.FDB() {
		seen[fmt.Sprint(e.VLAN, e.MAC)] = true
	}
	if !seen[fmt.Sprint(10, tr.mac)] || !seen[fmt.Sprint(20, tr.mac)] {
		t.Fatalf("FDB %v lacks the trunk host in VLANs 10 and 20", seen)
	}
}

func TestInvalidFrames(t *testing.T) {
	sw := newSwitch(t, Config{})
	h1 := addHost(t, sw, "p1", mac(1), PortConfig{})
	h2 := addHost(t, sw, "p2", mac(2), PortConfig{})
	big := eth(frame.Broadcast, h1.mac, "big")
	big = append(big, make([]byte, 1500)...) // 1514+46 > 1500+14
	h1.send(
		eth(frame.Broadcast, frame.MAC{0x01, 0, 0, 0, 0, 1}, "mcast-src"),
		eth(frame.Broadcast, frame.MAC{}, "zero-src"),
		big,
		eth(frame.Broadcast, h1.mac, "ok"),
	)
	h2.expect("ok")
	h2.expectNone()
	st := portStatus(t, sw, "p1")
	want := map[string]uint64{DropBadSource: 2, DropTooBig: 1}
	if fmt.Sprint(st.Drops) != fmt.Sprint(want) {
		t.Fatalf("p1 drops = %v, want %v", st.Drops, want)
	}
	if st.Counters.RxFrames != 4 {
		t.Fatalf("p1 rx_frames = %d, want 4", st.Counters.RxFrames)
	}
}

func TestCountersMatch(t *testing.T) {
	sw := newSwitch(t, Config{})
	h1 := addHost(t, sw, "p1", mac(1), PortConfig{})
	h2 := addHost(t, sw, "p2", mac(2), PortConfig{})
	h2.send(eth(frame.Broadcast, h2.mac, "learn"))
	h1.expect("learn")
	for i := 0; i < 100; i++ {
		h1.send(eth(h2.mac, h1.mac, "x"))
		h2.expect("x")
	}
	// A port's receive counters are added once per batch, after the batch is
	// forwarded: the last frame can reach h2 a moment before p1 counts it.
	var p1, p2 PortStatus
	if !testwait.Until(2*time.Second, func() bool {
		p1, p2 = portStatus(t, sw, "p1"), portStatus(t, sw, "p2")
		return p1.Counters.RxFrames == 100 && p1.Counters.RxBytes == 6000 && p2.Counters.TxFrames == 100 && p2.Counters.TxBytes == 6000 &&
			p2.Counters.RxFrames == 1 && p1.Counters.TxFrames == 1
	}) {
		t.Fatalf("p1 %+v p2 %+v: want p1 rx 100/6000 tx 1, p2 tx 100/6000 rx 1", p1.Counters, p2.Counters)
	}
}

func TestAddRemovePortRuntime(t *testing.T) {
	sw := newSwitch(t, Config{})
	h1 := addHost(t, sw, "p1", mac(1), PortConfig{})
	h2 := addHost(t, sw, "p2", mac(2), PortConfig{})
	h2.send(eth(frame.Broadcast, h2.mac, "learn2"))
	h1.expect("learn2")

	// Steady traffic h1→h2 while a third port comes and goes: every frame arrives.
	const total = 2000
	for i := 0; i < total; i++ {
		h1.send(eth(h2.mac, h1.mac, "steady"))
		h2.expect("steady")
		if i == total/4 {
			h3 := addHost(t, sw, "p3", mac(3), PortConfig{})
			h3.send(eth(frame.Broadcast, h3.mac, "hi"))
			h1.expect("hi")
			h2.expect("hi")
		}
		if i == total/2 {
			if err := sw.RemovePort("p3"); err != nil {
				t.Fatalf("sw.RemovePort(p3): %v", err)
			}
		}
	}
	for _, e := range sw.FDB() {
		if e.Port == "p3" {
			t.Fatalf("FDB still has %+v after RemovePort", e)
		}
	}
	if err := sw.RemovePort("p3"); err == nil {
		t.Fatal("second RemovePort(p3) succeeded")
	}
	dupA, dupB := frametest.NewPair(frametest.PairOptions{NameA: "p1"})
	defer dupB.Close()
	if err := sw.AddPort(dupA, PortConfig{}); err == nil {
		t.Fatal("AddPort with a duplicate name succeeded")
	}
}

func TestBadPortConfig(t *testing.T) {
	sw := newSwitch(t, Config{})
	for _, pc := range []PortConfig{{Name: "x", VLAN: 4095}, {Name: "y", Trunk: []uint16{0}}, {Name: "z", Trunk: []uint16{5000}}} {
		a, b := frametest.NewPair(frametest.PairOptions{})
		if err := sw.AddPort(a, pc); err == nil {
			t.Fatalf("AddPort(%+v) succeeded", pc)
		}
		a.Close()
		b.Close()
	}
}

func TestDoubleTaggedDoesNotHop(t *testing.T) {
	sw := newSwitch(t, Config{})
	a10 := addHost(t, sw, "a10", mac(1), PortConfig{VLAN: 10})
	a20 := addHost(t, sw, "a20", mac(2), PortConfig{VLAN: 20})
	tr := addHost(t, sw, "trunk", mac(3), PortConfig{Trunk: []uint16{10, 20}})
	tr2 := addHost(t, sw, "trunk2", mac(4), PortConfig{Trunk: []uint16{10}})
	nat := addHost(t, sw, "native", mac(5), PortConfig{Trunk: []uint16{20}, Native: 10})

	for _, tt := range []struct {
		name  string
		inner uint16
	}{
		{"802.1Q inside 802.1Q", 0x8100},
		{"802.1ad inside 802.1Q", 0x88a8},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Outer tag VLAN 10, then a second tag claiming VLAN 20.
			inner := tagged(frame.Broadcast, tr.mac, 20, "hop")
			binary.BigEndian.PutUint16(inner[12:14], tt.inner)
			dbl := append(append(append([]byte{}, inner[:12]...), 0x81, 0x00, 0x00, 10), inner[12:]...)
			before := map[string]uint64{}
			for _, n := range []string{"a10", "native"} {
				before[n] = portStatus(t, sw, n).Drops[DropDoubleTagged]
			}
			tr.send(dbl)
			// A trunk carrying VLAN 10 tagged gets the frame whole (Q-in-Q passes through).
			select {
			case got := <-tr2.rx:
				if !bytes.Equal(got, dbl) {
					t.Fatalf("trunk2 got % x, want the double-tagged frame unchanged % x", got[:22], dbl[:22])
				}
			case <-time.After(5 * time.Second):
				t.Fatal("trunk2 received nothing, want the double-tagged frame")
			}
			// Ports that would pop the outer tag drop it and count it.
			tr.send(tagged(frame.Broadcast, tr.mac, 10, "sync"))
			a10.expect("sync")
			nat.expect("sync")
			tr2.expect("sync")
			a20.expectNone()
			for _, n := range []string{"a10", "native"} {
				if got := portStatus(t, sw, n).Drops[DropDoubleTagged] - before[n]; got != 1 {
					t.Fatalf("%s drops[%s] grew by %d, want 1", n, DropDoubleTagged, got)
				}
			}
		})
	}
}

// TestPortMaxMACs: a port's own MaxMACs caps what a flood of source MACs from it can
// learn; the other ports keep their entries and the refusals are counted on the port.
func TestPortMaxMACs(t *testing.T) {
	for _, learnOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("learnOnly=%v", learnOnly), func(t *testing.T) {
			sw := newSwitch(t, Config{PortMaxMACsLearnOnly: learnOnly})
			vm := addHost(t, sw, "vm", mac(1), PortConfig{MaxMACs: 256})
			h2 := addHost(t, sw, "h2", mac(2), PortConfig{})
			h2.send(eth(frame.Broadcast, h2.mac, "h2"))
			vm.expect("h2")
			const sources = 400 // fewer than h2's queue holds, so none is lost there
			for i := 0; i < sources; i++ {
				vm.send(eth(frame.Broadcast, mac(0x1000+i), "flood"))
			}
			vm.send(eth(h2.mac, mac(0x1000), "end")) // a source the port learned
			floods := 0
			for done := false; !done; {
				select {
				case b := <-h2.rx:
					switch payload(b) {
					case "flood":
						floods++
					case "end":
						done = true
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("h2 got %d floods and no end marker", floods)
				}
			}
			want := 256 // drop: frames from sources beyond the cap go nowhere
			if learnOnly {
				want = sources
			}
			if floods != want {
				t.Errorf("h2 received %d floods, want %d", floods, want)
			}
			byPort := map[string]PortStatus{}
			for _, p := range sw.Ports() {
				byPort[p.Name] = p
			}
			if p := byPort["vm"]; p.MACs != 256 || p.MaxMACs != 256 || p.MACLimited != sources-256 {
				t.Errorf("vm port: macs %d, max_macs %d, mac_limited %d; want 256, 256, %d", p.MACs, p.MaxMACs, p.MACLimited, sources-256)
			}
			if p := byPort["h2"]; p.MACs != 1 || p.MaxMACs != 0 {
				t.Errorf("h2 port: macs %d, max_macs %d; want its own entry kept, no cap", p.MACs, p.MaxMACs)
			}
		})
	}
}

// TestPortOwnDropsListed: what a port drops itself (here a pass-through end whose
// peer is down: link_down) is listed by reason with the switch's own drops.
func TestPortOwnDropsListed(t *testing.T) {
	sw := newSwitch(t, Config{})
	h1 := addHost(t, sw, "p1", mac(1), PortConfig{})
	h2 := addHost(t, sw, "p2", mac(2), PortConfig{})
	h2.end.SetUp(false)
	h1.send(eth(frame.Broadcast, h1.mac, "lost"), eth(frame.Broadcast, frame.MAC{0x01}, "bad-source"))
	testwait.Value(t, 5*time.Second, func() (map[string]map[string]uint64, bool) {
		drops := map[string]map[string]uint64{}
		for _, p := range sw.Ports() {
			drops[p.Name] = p.Drops
		}
		return drops, drops["p2"]["link_down"] == 1 && drops["p1"]["bad_source"] == 1
	}, "p2 link_down 1 (the port's own) and p1 bad_source 1 (the switch's) in the port drops")
}
