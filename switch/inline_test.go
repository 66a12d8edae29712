package l2switch

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/internal/testwait"
)

// inlinePort is a plain port (not a PacketReader, like a TAP) that advertises
// frame.CapInline and records, for each frame it is given, its bytes and whether a port
// writer goroutine (writeLoop) made the call.
type inlinePort struct {
	*refPort
	byWriter []bool
}

func (p *inlinePort) Info() frame.Info {
	i := p.refPort.Info()
	i.Caps |= frame.CapInline
	return i
}

// plainInline hides refPort's ReadPackets: the switch reads inlinePort plainly.
type plainInline struct{ p *inlinePort }

func (p plainInline) Info() frame.Info                         { return p.p.Info() }
func (p plainInline) ReadFrames(f []frame.Frame) (int, error)  { return p.p.ReadFrames(f) }
func (p plainInline) WriteFrames(f []frame.Frame) (int, error) { return p.p.WriteFrames(f) }
func (p plainInline) Close() error                             { return p.p.Close() }

func (p *inlinePort) WriteFrames(frames []frame.Frame) (int, error) {
	stack := make([]byte, 64<<10)
	stack = stack[:runtime.Stack(stack, false)]
	viaWriter := bytes.Contains(stack, []byte(").writeLoop("))
	p.mu.Lock()
	for range frames {
		p.byWriter = append(p.byWriter, viaWriter)
	}
	p.mu.Unlock()
	return p.refPort.WriteFrames(frames)
}

// TestInlinePortWrittenByReaders: frames for a CapInline port (a TAP) are written by
// the reader that switched them, plain ones from a plain port and flooded ones
// included, never through the port's queue and writer goroutine; and they arrive whole.
func TestInlinePortWrittenByReaders(t *testing.T) {
	sw := newSwitch(t, Config{})
	h1 := addHost(t, sw, "p1", mac(1), PortConfig{})
	r := &refs{}
	in := &inlinePort{refPort: newRefPort("tap", frame.CapPacket, r)}
	if err := sw.AddPort(plainInline{in}, PortConfig{}); err != nil {
		t.Fatal(err)
	}
	tapMAC := mac(2)
	in.in <- eth(h1.mac, tapMAC, "learn") // the switch learns the TAP's MAC
	h1.expect("learn")
	sent := [][]byte{eth(frame.Broadcast, h1.mac, "flood"), eth(tapMAC, h1.mac, "unicast-1"), eth(tapMAC, h1.mac, "unicast-2")}
	h1.send(sent...)
	got := in.wait(t, len(sent))
	in.mu.Lock()
	defer in.mu.Unlock()
	for i, w := range got {
		if !bytes.Equal(w.bytes, sent[i]) {
			t.Errorf("frame %d: got %q, want %q", i, payload(w.bytes), payload(sent[i]))
		}
		if in.byWriter[i] {
			t.Errorf("frame %d (%q) was written by the port's writer goroutine, want its reader", i, payload(sent[i]))
		}
	}
}

// TestInlinePortDownDrops: a frame switched to a CapInline port that is down (its
// device gone), in the moment before the port's MACs are forgotten, is counted as
// dropped without a write.
func TestInlinePortDownDrops(t *testing.T) {
	sw := newSwitch(t, Config{})
	h1 := addHost(t, sw, "p1", mac(1), PortConfig{})
	in := &inlinePort{refPort: newRefPort("tap", frame.CapPacket, &refs{})}
	if err := sw.AddPort(plainInline{in}, PortConfig{}); err != nil {
		t.Fatal(err)
	}
	tapMAC := mac(2)
	in.in <- eth(h1.mac, tapMAC, "learn")
	h1.expect("learn")
	for _, sp := range *sw.ports.Load() {
		if sp.name == "tap" {
			sp.up.Store(false) // down, its MAC not yet forgotten
		}
	}
	h1.send(eth(tapMAC, h1.mac, "unicast-1"), eth(tapMAC, h1.mac, "unicast-2"))
	testwait.Value(t, 5*time.Second, func() (map[string]uint64, bool) {
		d := portStatus(t, sw, "tap").Drops
		return d, d[DropQueueFull] >= 2
	}, "2 %s drops on tap", DropQueueFull)
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.got) != 0 {
		t.Errorf("%d frames written to a port that is down", len(in.got))
	}
}

// TestPortDownForgetsItsMACs: when a port's reader fails (a TAP deleted under vnetd),
// the switch forgets the MACs learned on it, as a bridge does for a disabled port:
// frames for them flood to the live ports instead of being dropped at the dead one.
func TestPortDownForgetsItsMACs(t *testing.T) {
	sw := newSwitch(t, Config{})
	h1 := addHost(t, sw, "p1", mac(1), PortConfig{})
	h2 := addHost(t, sw, "p2", mac(2), PortConfig{})
	in := &inlinePort{refPort: newRefPort("tap", frame.CapPacket, &refs{})}
	if err := sw.AddPort(plainInline{in}, PortConfig{}); err != nil {
		t.Fatal(err)
	}
	tapMAC := mac(3)
	in.in <- eth(h1.mac, tapMAC, "learn") // h1 is not known yet: flooded
	h1.expect("learn")
	h2.expect("learn")
	in.Close() // its reader fails
	type state struct{ Up, Known bool }
	testwait.Value(t, 5*time.Second, func() (state, bool) {
		s := state{Up: portStatus(t, sw, "tap").Up}
		for _, e := range sw.FDB() {
			s.Known = s.Known || e.MAC == tapMAC
		}
		return s, !s.Up && !s.Known
	}, "the port to go down and its MAC to be forgotten after its reader failed")
	h1.send(eth(tapMAC, h1.mac, "to-the-gone"))
	h2.expect("to-the-gone") // flooded
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.got) != 0 {
		t.Errorf("%d frames written to a port that is down", len(in.got))
	}
}
