package l2switch

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/frame/frametest"
	"github.com/vnetd/vnetd/internal/procstat"
)

// counter is a station that counts what reaches it: frames carrying the legit tag and
// everything else.
type counter struct {
	end          *frametest.End
	legit, other atomic.Uint64
}

const legitType = 0x88b6 // the legit flow's ethertype; the flood uses 0x88b5

func addCounter(t *testing.T, sw *Switch, name string) *counter {
	t.Helper()
	near, far := frametest.NewPair(frametest.PairOptions{NameA: name, NameB: name + "-far", QueueLen: 8192})
	if err := sw.AddPort(near, PortConfig{Name: name}); err != nil {
		t.Fatalf("sw.AddPort(%q): %v", name, err)
	}
	c := &counter{end: far}
	go func() {
		bufs := make([]frame.Frame, 64)
		for i := range bufs {
			bufs[i].Buf = make([]byte, frame.MaxSuperFrame)
		}
		for {
			n, err := far.ReadFrames(bufs)
			if err != nil {
				return
			}
			for _, f := range bufs[:n] {
				if f.N >= 14 && binary.BigEndian.Uint16(f.Buf[12:14]) == legitType {
					c.legit.Add(1)
				} else {
					c.other.Add(1)
				}
			}
		}
	}()
	return c
}

// TestMACFloodBounded sends 1,000,000 frames from random source MACs to random unknown
// unicast MACs (macof) into one port while a legit flow runs between two other ports:
// the FDB stops at its cap (the rest counted as limited), the heap and RSS stay
// bounded, the legit flow keeps >= 90% of its frames, and it stays unicast (an
// observer port never sees it, as it would if the FDB had forgotten its MACs).
//
// The flood is paced by what the receivers drained (a window of frames in flight), so
// the figures are frame counts, not a race against a loaded host's scheduler.
func TestMACFloodBounded(t *testing.T) {
	flood := 1_000_000
	if testing.Short() {
		flood = 100_000
	}
	sw := newSwitch(t, Config{AgeEvery: -1})
	b := addCounter(t, sw, "b")
	c := addCounter(t, sw, "c")
	obs := addCounter(t, sw, "observer")
	atk := addCounter(t, sw, "attacker")
	macB, macC := mac(0xb), mac(0xc)
	// b and c announce themselves, so their MACs are learned before the flood.
	for _, h := range []struct {
		c *counter
		m frame.MAC
	}{{b, macB}, {c, macC}} {
		f := eth(frame.Broadcast, h.m, "hello")
		h.c.end.WriteFrames([]frame.Frame{{Buf: f, N: len(f)}})
	}
	waitFor(t, func() bool { return sw.Stats().FDBSize == 2 && obs.other.Load() == 2 },
		func() string {
			return fmt.Sprintf("FDB %d, observer %d frames; want 2, 2", sw.Stats().FDBSize, obs.other.Load())
		})

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	rss0, _ := procstat.RSS()

	legit := eth(macC, macB, "legit")
	binary.BigEndian.PutUint16(legit[12:14], legitType)
	rng := rand.New(rand.NewPCG(3, 4))
	batch := make([]frame.Frame, 64)
	for i := range batch {
		batch[i].Buf = make([]byte, 60)
		batch[i].N = 60
		binary.BigEndian.PutUint16(batch[i].Buf[12:14], 0x88b5)
	}
	const window = 256 // frames in flight per receiver: half a switch port queue
	sent, legitSent := 0, 0
	deadline := time.Now().Add(2 * time.Minute)
	for sent < flood {
		// Each flooded frame reaches b, c and the observer; wait for the slowest.
		for sent-int(min(b.other.Load(), c.other.Load(), obs.other.Load())) > window {
			if time.Now().After(deadline) {
				t.Fatalf("flood stalled after %d frames: b %d c %d observer %d received", sent, b.other.Load(), c.other.Load(), obs.other.Load())
			}
			time.Sleep(50 * time.Microsecond)
		}
		n := min(len(batch), flood-sent)
		for i := range batch[:n] {
			f := batch[i].Buf
			binary.LittleEndian.PutUint64(f[0:8], rng.Uint64())
			f[0] = f[0]&^1 | 2 // unicast, locally administered: an unknown destination
			binary.LittleEndian.PutUint32(f[6:10], rng.Uint32())
			f[6] = f[6]&^1 | 2
		}
		for off := 0; off < n; {
			k, err := atk.end.WriteFrames(batch[off:n])
			if err != nil {
				t.Fatalf("attacker WriteFrames: %v", err)
			}
			if k == 0 {
				time.Sleep(50 * time.Microsecond)
			}
			off += k
		}
		sent += n
		if k, _ := b.end.WriteFrames([]frame.Frame{{Buf: legit, N: len(legit)}}); k == 1 {
			legitSent++
		}
	}
	// Everything in flight arrives, or is dropped and counted: wait until the
	// receivers' counts stop moving.
	waitStable(t, func() uint64 { return obs.other.Load() + b.other.Load() + c.other.Load() + c.legit.Load() })

	st := sw.Stats()
	if st.FDBSize != int64(st.MaxMACs) || st.MaxMACs != 8192 {
		t.Errorf("after the flood: FDBSize = %d, MaxMACs = %d; want the default cap 8192 reached and held", st.FDBSize, st.MaxMACs)
	}
	if want := uint64(flood - (8192 - 2)); st.Limited < want*99/100 {
		t.Errorf("Stats().Limited = %d, want about %d (sources not learned at the cap)", st.Limited, want)
	}
	if got := c.legit.Load(); got < uint64(legitSent)*9/10 {
		t.Errorf("legit flow: %d of %d frames delivered, want >= 90%%", got, legitSent)
	}
	if got := obs.legit.Load() + atk.legit.Load(); got != 0 {
		t.Errorf("legit flow flooded: %d of its frames reached other ports", got)
	}

	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	rss1, _ := procstat.RSS()
	const bound = 64 << 20
	if grow := int64(after.HeapInuse) - int64(before.HeapInuse); grow > bound {
		t.Errorf("heap in use grew by %d MiB during the flood, want < %d MiB", grow>>20, bound>>20)
	}
	if grow := rss1 - rss0; rss0 > 0 && grow > bound {
		t.Errorf("RSS grew by %d MiB during the flood, want < %d MiB", grow>>20, bound>>20)
	}
	t.Logf("flood %d frames: FDB %d/%d, limited %d, legit %d/%d delivered, heap %+d KiB, RSS %+d KiB",
		flood, st.FDBSize, st.MaxMACs, st.Limited, c.legit.Load(), legitSent,
		(int64(after.HeapInuse)-int64(before.HeapInuse))>>10, (rss1-rss0)>>10)
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, cond func() bool, state func() string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %s", state())
		}
	}
}

// waitStable polls v until it has not changed for 200 ms (at most 30 s).
func waitStable(t *testing.T, v func() uint64) {
	t.Helper()
	last, since := v(), time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Since(since) < 200*time.Millisecond; time.Sleep(5 * time.Millisecond) {
		if now := v(); now != last {
			last, since = now, time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("counts still moving after 30 s")
		}
	}
}
