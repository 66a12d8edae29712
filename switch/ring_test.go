package l2switch

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
)

// matchFunc is a Matcher from a function.
type matchFunc func([]byte) bool

func (m matchFunc) Match(b []byte) bool { return m(b) }

func payloadHas(s string) Matcher {
	return matchFunc(func(b []byte) bool { return strings.Contains(payload(b), s) })
}

// TestRingKeepsNewest pushes frames of random sizes through a small ring: a dump is
// always the newest frames in order, byte for byte, within the cap, and every frame
// pushed is either held or counted overwritten.
func TestRingKeepsNewest(t *testing.T) {
	r := &ring{buf: make([]byte, 4096), maxAge: int64(time.Hour)}
	rng := rand.New(rand.NewPCG(1, 2))
	var pushed [][]byte
	now := int64(1e18)
	for i := 0; i < 2000; i++ {
		n := 14 + rng.IntN(1200)
		if i%97 == 0 {
			n = 4096 - ringHdr // exactly the whole ring
		}
		b := make([]byte, n)
		for k := range b {
			b[k] = byte(i + k)
		}
		pushed = append(pushed, b)
		r.push([]frame.Frame{{Buf: b, N: n}}, now+int64(i), i%2 == 0)

		got := r.dump("p", 0, false, nil, nil)
		if len(got) == 0 {
			t.Fatalf("push %d: dump is empty", i)
		}
		total := 0
		for k, f := range got {
			want := pushed[len(pushed)-len(got)+k]
			idx := len(pushed) - len(got) + k
			if !bytes.Equal(f.Buf.Bytes(), want) || f.Ingress != (idx%2 == 0) || f.Time.UnixNano() != now+int64(idx) {
				t.Fatalf("push %d: dump[%d] is not frame %d (len %d, want %d)", i, k, idx, f.Buf.N, len(want))
			}
			total += recLen(f.Buf.N)
			f.Buf.Release()
		}
		if total > len(r.buf) || int64(total) != r.used.Load() {
			t.Fatalf("push %d: ring holds %d bytes, used says %d, cap %d", i, total, r.used.Load(), len(r.buf))
		}
		if uint64(len(got))+r.overwritten.Load() != uint64(len(pushed)) {
			t.Fatalf("push %d: held %d + overwritten %d != pushed %d", i, len(got), r.overwritten.Load(), len(pushed))
		}
	}
	if r.overwritten.Load() == 0 {
		t.Error("2000 frames in 4 KiB overwrote none")
	}
	big := make([]byte, 5000)
	r.push([]frame.Frame{{Buf: big, N: len(big)}}, now+3000, true)
	if r.skipped.Load() != 1 {
		t.Errorf("a frame larger than the ring: skipped = %d, want 1", r.skipped.Load())
	}
}

func TestRingAges(t *testing.T) {
	r := &ring{buf: make([]byte, 4096), maxAge: int64(10 * time.Second)}
	f := []frame.Frame{{Buf: make([]byte, 60), N: 60}}
	t0 := time.Unix(1000, 0).UnixNano()
	r.push(f, t0, true)
	r.push(f, t0+int64(5*time.Second), true)
	if got := r.dump("p", t0+int64(time.Second), false, nil, nil); len(got) != 1 {
		t.Errorf("dump since t0+1s: %d frames, want 1", len(got))
	} else {
		got[0].Buf.Release()
	}
	r.push(f, t0+int64(12*time.Second), true) // the first is now older than 10s
	got := r.dump("p", 0, false, nil, nil)
	if len(got) != 2 || got[0].Time.UnixNano() != t0+int64(5*time.Second) || r.overwritten.Load() != 1 {
		t.Errorf("after 12s: %d frames, overwritten %d; want 2 (the 5s and 12s ones), 1", len(got), r.overwritten.Load())
	}
	for _, f := range got {
		f.Buf.Release()
	}
}

func TestDumpRing(t *testing.T) {
	sw := newSwitch(t, Config{Ring: RingConfig{Bytes: 1 << 20}})
	a := addHost(t, sw, "a", mac(1), PortConfig{})
	b := addHost(t, sw, "b", mac(2), PortConfig{})
	addHost(t, sw, "c", mac(3), PortConfig{})
	b.send(eth(mac(1), mac(2), "hello a"))
	a.expect("hello a")
	for i := 0; i < 5; i++ {
		a.send(eth(mac(2), mac(1), fmt.Sprint("to b ", i)))
		b.expect(fmt.Sprint("to b ", i))
	}
	all, err := sw.DumpRing("", time.Minute, nil)
	if err != nil {
		t.Fatalf("DumpRing(all): %v", err)
	}
	var got []string
	for _, f := range all {
		if !f.Ingress {
			t.Errorf("switch-wide dump has an egress frame on %s", f.Port)
		}
		got = append(got, f.Port+":"+payload(f.Buf.Bytes()))
		f.Buf.Release()
	}
	want := "b:hello a a:to b 0 a:to b 1 a:to b 2 a:to b 3 a:to b 4"
	if strings.Join(got, " ") != want {
		t.Errorf("DumpRing(all) = %q, want %q", strings.Join(got, " "), want)
	}

	onB, err := sw.DumpRing("b", time.Minute, payloadHas("3"))
	if err != nil {
		t.Fatalf("DumpRing(b): %v", err)
	}
	if len(onB) != 1 || onB[0].Ingress || payload(onB[0].Buf.Bytes()) != "to b 3" {
		t.Errorf("DumpRing(b, filter 3) = %d frames, want the one egress frame \"to b 3\"", len(onB))
	}
	for _, f := range onB {
		f.Buf.Release()
	}
	var st *RingStatus
	for _, p := range sw.Ports() {
		if p.Name == "b" {
			st = p.Ring
		}
	}
	if st == nil || st.Frames != 6 || st.Bytes != int64(6*recLen(60)) || st.CapBytes != 1<<20 {
		t.Errorf("port b ring status = %+v, want 6 frames of %d bytes in 1 MiB", st, recLen(60))
	}
	if _, err := sw.DumpRing("nope", time.Minute, nil); err == nil {
		t.Error("DumpRing(unknown port) succeeded")
	}
	plain := newSwitch(t, Config{})
	if _, err := plain.DumpRing("", time.Minute, nil); !errors.Is(err, ErrNoRing) {
		t.Errorf("DumpRing on a switch without rings = %v, want ErrNoRing", err)
	}
}

func TestCaptureFilter(t *testing.T) {
	sw := newSwitch(t, Config{})
	a := addHost(t, sw, "a", mac(1), PortConfig{})
	b := addHost(t, sw, "b", mac(2), PortConfig{})
	b.send(eth(mac(1), mac(2), "hi"))
	a.expect("hi")
	c, err := sw.CaptureWith(CaptureOptions{QueueLen: 2, Filter: payloadHas("keep")})
	if err != nil {
		t.Fatalf("CaptureWith: %v", err)
	}
	defer c.Close()
	for i := 0; i < 20; i++ {
		a.send(eth(mac(2), mac(1), fmt.Sprint("drop ", i)))
		b.expect(fmt.Sprint("drop ", i))
	}
	a.send(eth(mac(2), mac(1), "keep 1"))
	b.expect("keep 1")
	f := nextFrame(t, c)
	if payload(f.Buf.Bytes()) != "keep 1" {
		t.Errorf("filtered capture took %q, want \"keep 1\"", payload(f.Buf.Bytes()))
	}
	f.Buf.Release()
	if c.Dropped() != 0 {
		t.Errorf("Dropped() = %d: rejected frames must not reach the queue", c.Dropped())
	}
}

// TestFilterAndRingSeeFramesByReferenceWhole: a filter that reads past the head a
// frame by reference keeps in the switch's buffer still sees the whole frame (with
// the buffer's head), and so does a capture ring; neither releases the reference.
func TestFilterAndRingSeeFramesByReferenceWhole(t *testing.T) {
	r := new(refs)
	sw := New(Config{Name: "ref", AgeEvery: -1, Ring: RingConfig{Bytes: 1 << 20}})
	defer sw.Close()
	a := newRefPort("a", frame.CapsAll|frame.CapPacket, r)
	if err := sw.AddPort(a, PortConfig{}); err != nil {
		t.Fatal(err)
	}
	sent := bigFrame(mac(2), mac(1), 'p')
	want := append([]byte{0xee}, sent[1:]...)
	tail := matchFunc(func(b []byte) bool { return len(b) == len(want) && b[0] == 0xee && b[len(b)-1] == 'p' })
	c, err := sw.CaptureWith(CaptureOptions{Port: "a", QueueLen: 4, Filter: tail})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f := frame.Frame{Buf: make([]byte, len(sent)), N: len(sent), Pkt: fakePkt{b: sent, refs: r, once: new(sync.Once)}}
	copy(f.Buf, want[:frame.PacketHead])
	sp := (*sw.ports.Load())[0]
	sw.capture(*sw.captures.Load(), sp, []frame.Frame{f}, false)
	sp.ring.push([]frame.Frame{f}, time.Now().UnixNano(), false)
	got := nextFrame(t, c)
	if !bytes.Equal(got.Buf.Bytes(), want) {
		t.Errorf("filtered capture of a frame by reference: %d bytes, not the whole frame with its head", got.Buf.N)
	}
	got.Buf.Release()
	dump, err := sw.DumpRing("a", time.Minute, tail)
	if err != nil || len(dump) != 1 || !bytes.Equal(dump[0].Buf.Bytes(), want) {
		t.Errorf("DumpRing of a frame by reference = %d frames, %v; want it whole", len(dump), err)
	}
	for _, f := range dump {
		f.Buf.Release()
	}
	if r.released.Load() != 0 {
		t.Error("the capture or the ring released the frame's reference")
	}
}
