package l2switch

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/internal/testwait"
)

// refs counts the frame references handed out by refPorts and given back.
type refs struct {
	out, released, copies atomic.Int64
}

// fakePkt is a frame by reference: bytes it copies out on request.
type fakePkt struct {
	b    []byte
	refs *refs
	once *sync.Once
}

func (p fakePkt) CopyTo(b []byte) int { p.refs.copies.Add(1); return copy(b, p.b) }
func (p fakePkt) Clone() frame.Packet {
	p.refs.out.Add(1)
	return fakePkt{b: p.b, refs: p.refs, once: new(sync.Once)}
}
func (p fakePkt) Release() {
	released := false
	p.once.Do(func() { released = true; p.refs.released.Add(1) })
	if !released {
		panic("frame reference released twice")
	}
}

// refPort is a port that reads its frames by reference (a PacketReader, like a namespace
// NIC) and records what it is given to write: whether each frame came by reference, and
// its bytes either way.
type refPort struct {
	name      string
	caps      frame.Caps
	byRefOnly bool // Info.ByRefOnly: the switch reads it into head-sized buffers
	refs      *refs
	in        chan []byte
	done      chan struct{}
	once      sync.Once

	mu  sync.Mutex
	got []written
}

type written struct {
	byRef bool
	bytes []byte
}

func newRefPort(name string, caps frame.Caps, r *refs) *refPort {
	return &refPort{name: name, caps: caps, refs: r, in: make(chan []byte, 64), done: make(chan struct{})}
}

func (p *refPort) Info() frame.Info {
	return frame.Info{Name: p.name, MTU: 9000, MaxFrame: frame.MaxSuperFrame, Caps: p.caps, ByRefOnly: p.byRefOnly}
}

func (p *refPort) ReadFrames(frames []frame.Frame) (int, error) {
	select {
	case b := <-p.in:
		frames[0].N = copy(frames[0].Buf, b)
		frames[0].Meta = frame.Meta{}
		return 1, nil
	case <-p.done:
		return 0, net.ErrClosed
	}
}

func (p *refPort) ReadPackets(frames []frame.Frame) (int, error) {
	select {
	case b := <-p.in:
		f := &frames[0]
		f.N = len(b)
		f.Meta = frame.Meta{}
		copy(f.Buf[:frame.PacketHead], b)
		clear(f.Buf[frame.PacketHead:min(f.N, len(f.Buf))]) // whoever uses these bytes without materializing sees zeros
		p.refs.out.Add(1)
		f.Pkt = fakePkt{b: b, refs: p.refs, once: new(sync.Once)}
		return 1, nil
	case <-p.done:
		return 0, net.ErrClosed
	}
}

func (p *refPort) WriteFrames(frames []frame.Frame) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range frames {
		f := &frames[i]
		w := written{byRef: f.Pkt != nil}
		if f.Pkt != nil {
			if p.caps&frame.CapPacket == 0 {
				panic("frame by reference given to a port without CapPacket")
			}
			if p.caps&frame.CapDirect == 0 && len(f.Buf) < f.N {
				panic("frame by reference without room for all of it given to a port without CapDirect")
			}
			w.bytes = make([]byte, f.N)
			f.Pkt.CopyTo(w.bytes)
			copy(w.bytes, f.Buf[:min(f.N, frame.PacketHead)]) // the head is the frame's
		} else {
			w.bytes = bytes.Clone(f.Bytes())
		}
		p.got = append(p.got, w)
	}
	return len(frames), nil
}

func (p *refPort) Close() error { p.once.Do(func() { close(p.done) }); return nil }

// wait returns the first n frames written to p, failing the test after 5 s.
func (p *refPort) wait(t *testing.T, n int) []written {
	t.Helper()
	return testwait.Value(t, 5*time.Second, func() ([]written, bool) {
		p.mu.Lock()
		got := append([]written(nil), p.got...)
		p.mu.Unlock()
		return got, len(got) >= n
	}, "%s to get %d frames", p.name, n)
}

// bigFrame is a frame from src to dst longer than frame.PacketHead, so that a frame by
// reference forwarded without materializing would lose its tail.
func bigFrame(dst, src frame.MAC, tag byte) []byte {
	b := eth(dst, src, "by reference")
	for len(b) < 3000 { // more than a head-sized buffer holds
		b = append(b, tag)
	}
	return b
}

// TestFramesByReference: frames a PacketReader returns by reference cross the switch
// still by reference toward a port that takes them (a namespace NIC), and as their full
// bytes everywhere else: a port without CapPacket, a flood's copies, a trunk whose tag
// is pushed. Every reference is released exactly once.
// Each runs twice: ports written through their queue and writer, and ports written
// directly by the switch's readers (frame.CapDirect).
// They also run with the ports read into head-sized buffers (Info.ByRefOnly, as
// namespace NICs are).
func TestFramesByReference(t *testing.T) {
	for _, direct := range []frame.Caps{0, frame.CapDirect} {
		for _, refOnly := range []bool{false, true} {
			t.Run(fmt.Sprintf("direct=%v/refonly=%v", direct != 0, refOnly), func(t *testing.T) { testFramesByReference(t, direct, refOnly) })
		}
	}
}

func testFramesByReference(t *testing.T, direct frame.Caps, refOnly bool) {
	r := new(refs)
	sw := New(Config{Name: "ref", AgeEvery: -1})
	a := newRefPort("a", frame.CapsAll|frame.CapPacket|direct, r)
	b := newRefPort("b", frame.CapsAll|frame.CapPacket|direct, r)
	c := newRefPort("c", frame.CapsAll|direct, r)
	d := newRefPort("d", frame.CapsAll|frame.CapPacket|direct, r)
	for _, p := range []*refPort{a, b, c, d} {
		p.byRefOnly = refOnly
	}
	for _, p := range []*refPort{a, b, c} {
		if err := sw.AddPort(p, PortConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.AddPort(d, PortConfig{Trunk: []uint16{1}}); err != nil { // VLAN 1 tagged
		t.Fatal(err)
	}
	ma, mb, mc := mac(1), mac(2), mac(3)
	bcast := frame.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

	// Teach the switch where b and c are (flooded, so materialized), then unicast.
	b.in <- bigFrame(bcast, mb, 'b')
	c.in <- bigFrame(bcast, mc, 'c')
	a.wait(t, 2)
	// d is the last port each broadcast is flooded to: once it has both, b and c have
	// theirs queued ahead of the unicasts below.
	d.wait(t, 2)
	toB, toC := bigFrame(mb, ma, 'x'), bigFrame(mc, ma, 'y')
	a.in <- toB
	a.in <- toC

	gotB := b.wait(t, 2) // c's broadcast, then a's unicast
	if w := gotB[1]; !w.byRef || !bytes.Equal(w.bytes, toB) {
		t.Errorf("b: unicast from a: by reference %v, bytes equal %v; want both", w.byRef, bytes.Equal(w.bytes, toB))
	}
	if gotB[0].byRef || !bytes.Equal(gotB[0].bytes, bigFrame(bcast, mc, 'c')) {
		t.Errorf("b: flooded frame by reference %v or with wrong bytes", gotB[0].byRef)
	}
	gotC := c.wait(t, 2)
	if w := gotC[1]; w.byRef || !bytes.Equal(w.bytes, toC) {
		t.Errorf("c (no CapPacket): unicast from a: by reference %v, bytes equal %v; want plain, equal", w.byRef, bytes.Equal(w.bytes, toC))
	}
	// A unicast to a MAC behind the trunk: its tag is pushed, so it goes as bytes.
	md := mac(4)
	d.in <- tagged(bcast, md, 1, "from d")
	a.wait(t, 3)
	a.in <- bigFrame(md, ma, 'z')
	gotD := d.wait(t, 3) // the two broadcasts, then the unicast, tagged
	for i, w := range gotD {
		if w.byRef || len(w.bytes) != 3004 || w.bytes[12] != 0x81 || w.bytes[len(w.bytes)-1] == 0 {
			t.Errorf("d (trunk): frame %d: by reference %v, %d bytes; want a plain tagged 3004-byte frame", i, w.byRef, len(w.bytes))
		}
	}

	sw.Close()
	if out, rel := r.out.Load(), r.released.Load(); out != 6 || rel != out {
		t.Errorf("references: %d handed out, %d released; want 6 and 6", out, rel)
	}
}

// TestFramesByReferenceDropped: a frame by reference the switch drops (same port, queue
// full, closed port) still has its reference released.
func TestFramesByReferenceDropped(t *testing.T) {
	for _, direct := range []frame.Caps{0, frame.CapDirect} {
		t.Run(fmt.Sprintf("direct=%v", direct != 0), func(t *testing.T) { testFramesByReferenceDropped(t, direct) })
	}
}

func testFramesByReferenceDropped(t *testing.T, direct frame.Caps) {
	r := new(refs)
	sw := New(Config{Name: "ref", AgeEvery: -1, QueueLen: 1})
	a := newRefPort("a", frame.CapsAll|frame.CapPacket|direct, r)
	b := newRefPort("b", frame.CapsAll|frame.CapPacket|direct, r)
	if err := sw.AddPort(a, PortConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := sw.AddPort(b, PortConfig{}); err != nil {
		t.Fatal(err)
	}
	ma, mb := mac(1), mac(2)
	bcast := frame.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	a.in <- bigFrame(bcast, ma, 'a')
	b.wait(t, 1)
	a.in <- bigFrame(ma, mb, 'x') // learned on a: to a from a is dropped (same port)
	for range 50 {                // a 1-entry queue: some of these are dropped
		a.in <- bigFrame(bcast, ma, 'y')
	}
	testwait.Until(5*time.Second, func() bool { return len(a.in) == 0 })
	sameport, queueFull := uint64(0), uint64(0)
	for _, st := range sw.Ports() {
		sameport += st.Drops[DropSamePort]
		queueFull += st.Drops[DropQueueFull]
	}
	if direct != 0 {
		// Written by the reader itself: no queue to overflow, b gets every broadcast.
		if got := len(b.wait(t, 51)); queueFull != 0 || got != 51 {
			t.Errorf("direct writes: %d queue_full drops, b got %d frames; want 0 and 51", queueFull, got)
		}
	}
	sw.Close()
	if out, rel := r.out.Load(), r.released.Load(); out != 52 || rel != out {
		t.Errorf("references: %d handed out, %d released; want 52 and 52", out, rel)
	}
	if sameport != 1 {
		t.Errorf("same_port drops = %d, want 1", sameport)
	}
}

// stuckDirectPort claims direct writes (CapDirect) but blocks in WriteFrames until
// closed: it shows which goroutine writes to it.
type stuckDirectPort struct{ *stuckPort }

func (p stuckDirectPort) Info() frame.Info {
	i := p.stuckPort.Info()
	i.Caps |= frame.CapDirect
	return i
}

// TestDirectWritesOnlyByReference: frames read plainly (from a TAP, say) reach a
// CapDirect port through its queue and writer, not from the ingress port's reader,
// which would then make the receiving port's copy itself: a blocked direct port must not
// hold up the plain ingress's other traffic.
func TestDirectWritesOnlyByReference(t *testing.T) {
	sw := newSwitch(t, Config{})
	h1 := addHost(t, sw, "p1", mac(1), PortConfig{})
	h2 := addHost(t, sw, "p2", mac(2), PortConfig{})
	stuck := stuckDirectPort{newStuckPort("stuck")}
	if err := sw.AddPort(stuck, PortConfig{}); err != nil {
		t.Fatal(err)
	}
	defer close(stuck.release)
	for range 3 { // flooded to the stuck port and to p2
		h1.send(eth(frame.Broadcast, h1.mac, "b"))
		h2.expect("b")
	}
}

// TestCaptureOfFrameByReference: a capture gets a frame by reference whole, its head
// as the switch's buffer holds it (rewritten here) and the rest from the packet.
func TestCaptureOfFrameByReference(t *testing.T) {
	r := new(refs)
	sw := New(Config{Name: "ref", AgeEvery: -1})
	defer sw.Close()
	a := newRefPort("a", frame.CapsAll|frame.CapPacket, r)
	if err := sw.AddPort(a, PortConfig{}); err != nil {
		t.Fatal(err)
	}
	c, err := sw.Capture("a", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent := bigFrame(mac(2), mac(1), 'p')
	want := append([]byte{0xee}, sent[1:]...)
	f := frame.Frame{Buf: make([]byte, len(sent)), N: len(sent), Pkt: fakePkt{b: sent, refs: r, once: new(sync.Once)}}
	copy(f.Buf, want[:frame.PacketHead])
	sw.capture(*sw.captures.Load(), (*sw.ports.Load())[0], []frame.Frame{f}, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := c.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Buf.Release()
	if !bytes.Equal(got.Buf.Bytes(), want) {
		t.Fatalf("captured %d bytes, equal to the frame %v; want the whole frame with its head", got.Buf.N, bytes.Equal(got.Buf.Bytes(), want))
	}
	if r.released.Load() != 0 {
		t.Fatal("the capture released the frame's reference")
	}
}

// portGoroutines counts the goroutines switches run for their ports: readers and
// writers.
func portGoroutines() (readers, writers int) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			st := string(buf[:n])
			return strings.Count(st, "created by github.com/vnetd/vnetd/switch.(*Switch).AddPort"),
				strings.Count(st, "created by github.com/vnetd/vnetd/internal/worker.(*Lazy).Kick")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// settledPortGoroutines is portGoroutines once the count has held still for a while:
// the goroutines of earlier tests' switches may still be winding down.
func settledPortGoroutines() (readers, writers int) {
	r, w := portGoroutines()
	for stable := 0; stable < 5; time.Sleep(20 * time.Millisecond) {
		r2, w2 := portGoroutines()
		if r2 == r && w2 == w {
			stable++
		} else {
			r, w, stable = r2, w2, 0
		}
	}
	return r, w
}

// TestGoroutinesPerPort: an idle port costs one goroutine, its reader (a lab of
// thousands of namespaces has thousands of ports); its writer runs only while frames
// are queued for it, and exits once idle; removing a port stops its goroutines.
func TestGoroutinesPerPort(t *testing.T) {
	defer func(d time.Duration) { writerLinger = d }(writerLinger)
	// Long enough that the writer is still lingering when the test looks for it right
	// after p1 got its frame, even on a loaded host (at 200 ms it once had exited).
	writerLinger = 2 * time.Second
	sw := New(Config{Name: "g", AgeEvery: -1})
	defer sw.Close()
	r0, w0 := settledPortGoroutines()
	const ports = 50
	r := new(refs)
	ps := make([]*refPort, ports)
	for i := range ports {
		ps[i] = newRefPort(fmt.Sprint("p", i), frame.CapsAll|frame.CapPacket, r)
		if err := sw.AddPort(ps[i], PortConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	if rd, wr := portGoroutines(); rd-r0 != ports || wr-w0 != 0 {
		t.Errorf("%d idle ports run %d readers and %d writers, want %d and 0", ports, rd-r0, wr-w0, ports)
	}
	// p1 learns its MAC, then p0 sends it frames: p1's writer starts, and stops.
	ps[1].in <- bigFrame(frame.Broadcast, mac(2), 'l')
	ps[0].wait(t, 1)
	ps[0].in <- bigFrame(mac(2), mac(1), 'x')
	ps[1].wait(t, 1)
	if _, wr := portGoroutines(); wr-w0 < 1 {
		t.Errorf("frames queued for p1, yet %d writers run", wr-w0)
	}
	testwait.Value(t, 15*time.Second, func() (int, bool) { _, wr := portGoroutines(); return wr - w0, wr == w0 },
		"no writer to run after the last frame (writers)")
	// A writer starts again for more frames (the exit did not strand the queue).
	ps[0].in <- bigFrame(mac(2), mac(1), 'y')
	if got := ps[1].wait(t, 2); len(got) < 2 {
		t.Fatal("p1 got nothing after its writer had exited")
	}
	if err := sw.RemovePort("p0"); err != nil { // waits until its reader is done
		t.Fatal(err)
	}
	// The reader's goroutine may still be returning (RemovePort waits for its done
	// signal, sent on its way out), so allow it a moment.
	testwait.Value(t, 5*time.Second, func() (int, bool) { rd, _ := portGoroutines(); return rd - r0, rd-r0 == ports-1 },
		"%d readers after removing a port (readers)", ports-1)
}

// TestDirectQueueLen: a CapDirect port (a namespace NIC) gets the deeper
// DirectQueueLen output queue, other ports QueueLen: with both stuck, a burst of 40
// floods leaves the plain port at most 4 queued (plus the batch its writer holds) and
// the direct one up to 16.
func TestDirectQueueLen(t *testing.T) {
	sw := newSwitch(t, Config{QueueLen: 4, DirectQueueLen: 16})
	h1 := addHost(t, sw, "p1", mac(1), PortConfig{})
	h2 := addHost(t, sw, "p2", mac(2), PortConfig{})
	plain := newStuckPort("plain")
	direct := stuckDirectPort{newStuckPort("direct")}
	for _, p := range []frame.Port{plain, direct} {
		if err := sw.AddPort(p, PortConfig{}); err != nil {
			t.Fatalf("AddPort(%s): %v", p.Info().Name, err)
		}
	}
	defer close(plain.release)
	defer close(direct.release)
	for range 40 {
		h1.send(eth(frame.Broadcast, h1.mac, "b"))
		h2.expect("b")
	}
	drops := map[string]uint64{}
	for _, ps := range sw.Ports() {
		drops[ps.Name] = ps.Drops[DropQueueFull]
	}
	// A queue of n holds n frames, and the stuck writer may hold a batch of up to n
	// more, or none yet if it has not started (on a loaded host).
	if d := drops["plain"]; d < 40-2*4 || d > 40-4 {
		t.Errorf("plain port: %d of 40 dropped as queue_full, want %d-%d (QueueLen 4)", d, 40-2*4, 40-4)
	}
	if d := drops["direct"]; d < 40-2*16 || d > 40-16 {
		t.Errorf("direct port: %d of 40 dropped as queue_full, want %d-%d (DirectQueueLen 16)", d, 40-2*16, 40-16)
	}
}
