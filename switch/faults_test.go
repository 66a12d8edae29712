package l2switch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/frame/frametest"
	"github.com/vnetd/vnetd/internal/testwait"
)

// stuckPort never returns from WriteFrames until released: a dead VM, a full socket.
type stuckPort struct {
	name    string
	release chan struct{}
	once    sync.Once
	closed  chan struct{}
}

func newStuckPort(name string) *stuckPort {
	return &stuckPort{name: name, release: make(chan struct{}), closed: make(chan struct{})}
}

func (p *stuckPort) ReadFrames([]frame.Frame) (int, error) { <-p.closed; return 0, net.ErrClosed }
func (p *stuckPort) WriteFrames(f []frame.Frame) (int, error) {
	select {
	case <-p.release:
	case <-p.closed:
		return 0, net.ErrClosed
	}
	return len(f), nil
}
func (p *stuckPort) Info() frame.Info {
	return frame.Info{Name: p.name, MTU: 1500, MaxFrame: frame.MaxFrameFor(1500, false)}
}
func (p *stuckPort) Close() error { p.once.Do(func() { close(p.closed) }); return nil }

func TestSlowPortDoesNotStallOthers(t *testing.T) {
	sw := newSwitch(t, Config{QueueLen: 8})
	h1 := addHost(t, sw, "p1", mac(1), PortConfig{})
	h2 := addHost(t, sw, "p2", mac(2), PortConfig{})
	stuck := newStuckPort("stuck")
	if err := sw.AddPort(stuck, PortConfig{}); err != nil {
		t.Fatalf("sw.AddPort(stuck): %v", err)
	}
	// Broadcasts reach p2 and the stuck port; its queue fills, p2 keeps receiving.
	const total = 200
	for i := 0; i < total; i++ {
		h1.send(eth(frame.Broadcast, h1.mac, "b"))
		h2.expect("b")
	}
	st := portStatus(t, sw, "stuck")
	// At most the queue plus one batch in the writer's hands got through.
	if st.Drops[DropQueueFull] < total-8-64 {
		t.Fatalf("stuck drops[%s] = %d, want at least %d", DropQueueFull, st.Drops[DropQueueFull], total-8-64)
	}
	// A frame is counted once its write returns, so h2 may have read the last one first.
	if got := testwait.Value(t, 5*time.Second, func() (uint64, bool) {
		got := portStatus(t, sw, "p2").Counters.TxFrames
		return got, got >= total
	}, "p2 tx_frames = %d", total); got != total {
		t.Fatalf("p2 tx_frames = %d, want %d", got, total)
	}
	close(stuck.release)
}

// failingPort fails its reads like a TAP deleted under vnetd.
type failingPort struct {
	*frametest.End
	fail chan struct{}
}

func (p *failingPort) ReadFrames(f []frame.Frame) (int, error) {
	<-p.fail
	return 0, errors.New("read tap0: input/output error")
}

func TestPortFailureTakesOnlyItDown(t *testing.T) {
	sw := newSwitch(t, Config{})
	h1 := addHost(t, sw, "p1", mac(1), PortConfig{})
	h2 := addHost(t, sw, "p2", mac(2), PortConfig{})
	a, b := frametest.NewPair(frametest.PairOptions{NameA: "bad"})
	defer b.Close()
	fp := &failingPort{End: a, fail: make(chan struct{})}
	if err := sw.AddPort(fp, PortConfig{}); err != nil {
		t.Fatalf("sw.AddPort(bad): %v", err)
	}
	close(fp.fail)
	testwait.Eventually(t, 5*time.Second, func() bool { return !portStatus(t, sw, "bad").Up }, "the failed port to go down")
	h1.send(eth(frame.Broadcast, h1.mac, "still-works"))
	h2.expect("still-works")
	if err := sw.RemovePort("bad"); err != nil {
		t.Fatalf("sw.RemovePort(bad): %v", err)
	}
}

func TestSuperframeToPlainPortIsNotPassedWhole(t *testing.T) {
	sw := newSwitch(t, Config{})
	h1 := addHost(t, sw, "p1", mac(1), PortConfig{})
	plainCaps := frame.Caps(0)
	near, far := frametest.NewPair(frametest.PairOptions{NameA: "plain", Caps: &plainCaps})
	defer far.Close()
	if err := sw.AddPort(near, PortConfig{}); err != nil {
		t.Fatalf("sw.AddPort(plain): %v", err)
	}
	h2 := addHost(t, sw, "p2", mac(2), PortConfig{})
	super := eth(frame.Broadcast, h1.mac, "super")
	m := frame.Meta{GSO: frame.GSOTCPv4, GSOSize: 1448, HdrLen: 54, NeedsCsum: true, CsumStart: 34, CsumOffset: 16}
	if n, err := h1.end.WriteFrames([]frame.Frame{{Buf: super, N: len(super), Meta: m}}); n != 1 || err != nil {
		t.Fatalf("WriteFrames = %d, %v", n, err)
	}
	// The offload-capable port gets it whole, metadata intact.
	h2.expect("super")
	// The plain port never sees a superframe: its writer segments it or, as here (the
	// frame is not really TCP), counts it as an offload drop.
	st := testwait.Value(t, 2*time.Second, func() (PortStatus, bool) {
		st := portStatus(t, sw, "plain")
		return st, st.Counters.TxFrames != 0 || st.Drops[DropOffload]+st.Segments != 0
	}, "the plain port to segment the superframe or count it as an offload drop")
	if st.Counters.TxFrames != 0 {
		t.Fatalf("plain port tx_frames = %d, want 0", st.Counters.TxFrames)
	}
}

// tcp4Superframe is a TCPv4 superframe from src to dst carrying payload bytes, with the
// GSO metadata an offload-capable sender gives it (MSS 1448, partial checksum).
func tcp4Superframe(dst, src frame.MAC, payload int) ([]byte, frame.Meta) {
	f := make([]byte, 14+20+20+payload)
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(20+20+payload))
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], 5001)
	binary.BigEndian.PutUint16(tcp[2:], 40000)
	binary.BigEndian.PutUint32(tcp[4:], 1000)
	tcp[12], tcp[13] = 5<<4, 0x10 // ACK
	binary.BigEndian.PutUint16(tcp[14:], 512)
	for i := range payload {
		tcp[20+i] = byte(i)
	}
	return f, frame.Meta{GSO: frame.GSOTCPv4, GSOSize: 1448, HdrLen: 54, NeedsCsum: true, CsumStart: 34, CsumOffset: 16}
}

// Superframes toward a port without offloads are queued whole and segmented by the
// port's writer: a burst of them fits a short output queue (4 entries here) although
// it makes 180 segments, and every segment arrives in order.
func TestSuperframesSegmentedAtTheEgressEdge(t *testing.T) {
	sw := newSwitch(t, Config{QueueLen: 4})
	src := addHost(t, sw, "src", mac(1), PortConfig{})
	plainCaps := frame.Caps(0)
	near, far := frametest.NewPair(frametest.PairOptions{NameA: "plain", Caps: &plainCaps, QueueLen: 4096})
	defer far.Close()
	if err := sw.AddPort(near, PortConfig{}); err != nil {
		t.Fatalf("sw.AddPort(plain): %v", err)
	}
	dst := mac(9)
	// Teach the switch where dst is, so the superframes are unicast to the plain port.
	learn := eth(frame.Broadcast, dst, "learn-dst")
	if _, err := far.WriteFrames([]frame.Frame{{Buf: learn, N: len(learn)}}); err != nil {
		t.Fatal(err)
	}
	src.expect("learn-dst")
	const supers, perSuper = 4, 45
	sf, m := tcp4Superframe(dst, src.mac, perSuper*1448)
	batch := make([]frame.Frame, supers)
	for i := range batch {
		batch[i] = frame.Frame{Buf: sf, N: len(sf), Meta: m}
	}
	if n, err := src.end.WriteFrames(batch); n != supers || err != nil {
		t.Fatalf("WriteFrames = %d, %v", n, err)
	}
	got := 0
	bufs := make([]frame.Frame, 64)
	for i := range bufs {
		bufs[i].Buf = make([]byte, 2048)
	}
	// A read that waits for segments that never come is ended by closing the port.
	stop := time.AfterFunc(5*time.Second, func() { far.Close() })
	defer stop.Stop()
	for got < supers*perSuper {
		n, err := far.ReadFrames(bufs)
		if err != nil {
			break
		}
		for _, f := range bufs[:n] {
			if f.N != 14+20+20+1448 || f.Meta.GSO != frame.GSONone {
				t.Fatalf("segment %d: %d bytes, meta %+v; want a plain %d-byte frame", got, f.N, f.Meta, 14+20+20+1448)
			}
			seq := binary.BigEndian.Uint32(f.Buf[14+20+4:])
			if want := uint32(1000 + 1448*(got%perSuper)); seq != want {
				t.Fatalf("segment %d: seq %d, want %d", got, seq, want)
			}
			got++
		}
	}
	st := portStatus(t, sw, "plain")
	if got != supers*perSuper || st.Segments != supers*perSuper || st.Drops[DropQueueFull] != 0 {
		t.Fatalf("plain port got %d segments, status %+v; want %d segments, no queue_full drops", got, st, supers*perSuper)
	}
}

// TestPortsAddedWhileFlooding adds ports while another port floods: a reader may see a
// new port the moment it is published, so the port must be complete by then (its
// writer once was not, a race found by the daemon's VM test).
func TestPortsAddedWhileFlooding(t *testing.T) {
	sw := newSwitch(t, Config{})
	src := addHost(t, sw, "src", mac(1), PortConfig{})
	const floods = 2000
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := eth(frame.Broadcast, mac(1), "flood")
		for range floods {
			src.end.WriteFrames([]frame.Frame{{Buf: b, N: len(b)}}) // a full queue drops: fine
		}
	}()
	var hosts []*host
	for i := range 40 {
		hosts = append(hosts, addHost(t, sw, fmt.Sprintf("p%d", i), mac(100+i), PortConfig{}))
	}
	<-done
	// A port's queue may still be full of the flood (and drop, as it should), so "last"
	// is sent again every 50 ms until every port has had one. The deadline is generous:
	// under -race on a loaded 2-core host, 40 ports' readers take seconds to drain the
	// 80,000 flooded copies (it failed so at 5 s with the load average at 21).
	deadline := time.Now().Add(30 * time.Second)
	pending := hosts
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s never received a flood sent after it was added", pending[0].name)
		}
		src.send(eth(frame.Broadcast, mac(1), "last"))
		time.Sleep(50 * time.Millisecond)
		var still []*host
		for _, h := range pending {
			got := false
		drain:
			for !got {
				select {
				case b := <-h.rx:
					got = payload(b) == "last"
				default:
					break drain
				}
			}
			if !got {
				still = append(still, h)
			}
		}
		pending = still
	}
}
