package l2switch

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/veth"
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
	if got := portStatus(t, sw, "p2").Counters.TxFrames; got != total {
		t.Fatalf("p2 tx_frames = %d, want %d", got, total)
	}
	close(stuck.release)
}

// failingPort fails its reads like a TAP deleted under vnetd.
type failingPort struct {
	*veth.End
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
	a, b := veth.NewPair(veth.Options{NameA: "bad"})
	defer b.Close()
	fp := &failingPort{End: a, fail: make(chan struct{})}
	if err := sw.AddPort(fp, PortConfig{}); err != nil {
		t.Fatalf("sw.AddPort(bad): %v", err)
	}
	close(fp.fail)
	deadline := time.Now().Add(5 * time.Second)
	for portStatus(t, sw, "bad").Up {
		if time.Now().After(deadline) {
			t.Fatal("failed port still up")
		}
		time.Sleep(time.Millisecond)
	}
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
	near, far := veth.NewPair(veth.Options{NameA: "plain", Caps: &plainCaps})
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
	// The plain port never sees a superframe.
	st := portStatus(t, sw, "plain")
	if st.Counters.TxFrames != 0 {
		t.Fatalf("plain port tx_frames = %d, want 0", st.Counters.TxFrames)
	}
	if st.Drops[DropOffload]+st.Segments == 0 {
		t.Fatalf("plain port: neither segmented nor counted as an offload drop: %+v", st)
	}
}
