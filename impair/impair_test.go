package impair

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/frame/frametest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock moves only when Advance is called.
type fakeClock struct {
	mu   sync.Mutex
	now  time.Time
	tick chan struct{} // closed and replaced on every Advance
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1000, 0), tick: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Wait(d time.Duration, wake <-chan struct{}) {
	c.mu.Lock()
	deadline := c.now.Add(d)
	for c.now.Before(deadline) {
		tick := c.tick
		c.mu.Unlock()
		select {
		case <-tick:
		case <-wake:
			return
		}
		c.mu.Lock()
	}
	c.mu.Unlock()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	close(c.tick)
	c.tick = make(chan struct{})
	c.mu.Unlock()
}

// link is a wrapped veth end (near) and the receiver on its peer (far).
type link struct {
	t    *testing.T
	w    *Port
	far  *frametest.End
	rx   chan []byte
	done chan struct{}
}

func newLink(t *testing.T, c Clock) *link {
	near, far := frametest.NewPair(frametest.PairOptions{NameA: "near", NameB: "far", QueueLen: 8192})
	l := &link{t: t, w: Wrap(near, Options{Clock: c}), far: far, rx: make(chan []byte, 8192), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		readAll(far, func(b []byte) { l.rx <- bytes.Clone(b) })
	}()
	t.Cleanup(func() {
		l.w.Close()
		<-l.done
	})
	return l
}

// readAll reads p until it closes, handing every frame's bytes to fn.
func readAll(p frame.Port, fn func([]byte)) {
	fs := make([]frame.Frame, 16)
	for i := range fs {
		fs[i].Buf = make([]byte, frame.MaxSuperFrame)
	}
	for {
		n, err := p.ReadFrames(fs)
		if err != nil {
			return
		}
		for _, f := range fs[:n] {
			fn(f.Bytes())
		}
	}
}

func frameN(i, size int) []byte {
	b := make([]byte, size)
	copy(b, []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x88, 0xb5})
	binary.BigEndian.PutUint32(b[14:], uint32(i))
	return b
}

func (l *link) send(ps ...[]byte) {
	l.t.Helper()
	fs := make([]frame.Frame, len(ps))
	for i, p := range ps {
		fs[i] = frame.Frame{Buf: p, N: len(p)}
	}
	if n, err := l.w.WriteFrames(fs); n != len(fs) || err != nil {
		l.t.Fatalf("WriteFrames(%d frames) = %d, %v", len(fs), n, err)
	}
}

// expect waits for n frames (the clock being real or already advanced) and returns
// their sequence numbers.
func (l *link) expect(n int) []uint32 {
	l.t.Helper()
	var seqs []uint32
	for len(seqs) < n {
		select {
		case b := <-l.rx:
			seqs = append(seqs, binary.BigEndian.Uint32(b[14:]))
		case <-time.After(5 * time.Second):
			l.t.Fatalf("got %d frames %v, want %d", len(seqs), seqs, n)
		}
	}
	return seqs
}

// none checks that no frame arrives for a moment.
func (l *link) none() {
	l.t.Helper()
	select {
	case b := <-l.rx:
		l.t.Fatalf("frame %d arrived early", binary.BigEndian.Uint32(b[14:]))
	case <-time.After(30 * time.Millisecond):
	}
}

func TestPassThroughWithoutParams(t *testing.T) {
	l := newLink(t, newFakeClock())
	l.send(frameN(1, 60), frameN(2, 60))
	if got := l.expect(2); got[0] != 1 || got[1] != 2 {
		t.Fatalf("frames %v, want [1 2]", got)
	}
	if st := l.w.Status(); st.OutStats.Frames != 0 {
		t.Fatalf("Status().OutStats.Frames = %d, want 0 (pass-through counts nothing)", st.OutStats.Frames)
	}
}

func TestDelayReleasesInOrderWhenDue(t *testing.T) {
	c := newFakeClock()
	l := newLink(t, c)
	if err := l.w.Set(Out, Params{Delay: 10 * time.Millisecond}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	l.send(frameN(1, 60), frameN(2, 60), frameN(3, 60))
	c.Advance(9 * time.Millisecond)
	l.none()
	c.Advance(time.Millisecond)
	if got := l.expect(3); got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Fatalf("frames %v, want [1 2 3]", got)
	}
	st := l.w.Status().OutStats
	if st.Delayed != 3 || st.Passed != 3 || st.Waiting != 0 {
		t.Fatalf("OutStats = %+v, want 3 delayed, 3 passed, 0 waiting", st)
	}
	// Cleared: frames pass at once again.
	if err := l.w.Set(Out, Params{}); err != nil {
		t.Fatalf("Set(clear): %v", err)
	}
	l.send(frameN(4, 60))
	l.expect(1)
}

func TestRateChargesSerialisationPerByte(t *testing.T) {
	c := newFakeClock()
	l := newLink(t, c)
	// 1 Mbit/s: a 1000-byte frame takes 8 ms, a 4000-byte superframe 32 ms.
	if err := l.w.Set(Out, Params{Rate: 1e6}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	l.send(frameN(1, 1000), frameN(2, 1000), frameN(3, 4000))
	c.Advance(7 * time.Millisecond)
	l.none()
	c.Advance(time.Millisecond)
	l.expect(1)
	c.Advance(7 * time.Millisecond)
	l.none()
	c.Advance(time.Millisecond)
	l.expect(1)
	c.Advance(31 * time.Millisecond)
	l.none()
	c.Advance(time.Millisecond)
	l.expect(1)
}

func TestLimitDropsAndCounts(t *testing.T) {
	c := newFakeClock()
	l := newLink(t, c)
	if err := l.w.Set(Out, Params{Delay: time.Millisecond, Limit: 5}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	var ps [][]byte
	for i := range 10 {
		ps = append(ps, frameN(i, 60))
	}
	l.send(ps...)
	c.Advance(time.Millisecond)
	if got := l.expect(5); got[4] != 4 {
		t.Fatalf("frames %v, want 0-4", got)
	}
	l.none()
	if st := l.w.Status().OutStats; st.Overlimit != 5 {
		t.Fatalf("Overlimit = %d, want 5", st.Overlimit)
	}
}

func TestQueueBytesBounded(t *testing.T) {
	c := newFakeClock()
	l := newLink(t, c)
	l.w.out.maxBytes = 10000
	if err := l.w.Set(Out, Params{Delay: time.Millisecond}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	var ps [][]byte
	for i := range 5 {
		ps = append(ps, frameN(i, 4000)) // two fit in 10000 bytes
	}
	l.send(ps...)
	c.Advance(time.Millisecond)
	l.expect(2)
	l.none()
	if st := l.w.Status().OutStats; st.Overlimit != 3 {
		t.Fatalf("Overlimit = %d, want 3", st.Overlimit)
	}
	// Released frames give their bytes back.
	l.send(frameN(9, 4000))
	c.Advance(time.Millisecond)
	l.expect(1)
}

func TestReorderSkipsDelay(t *testing.T) {
	c := newFakeClock()
	l := newLink(t, c)
	if err := l.w.Set(Out, Params{Delay: 10 * time.Millisecond, Reorder: 100}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	l.send(frameN(1, 60))
	l.expect(1)
	if err := l.w.Set(Out, Params{Delay: 10 * time.Millisecond, Reorder: 50, Seed: 7}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	var ps [][]byte
	for i := range 20 {
		ps = append(ps, frameN(i, 60))
	}
	l.send(ps...)
	re := l.w.Status().OutStats.Reordered
	c.Advance(10 * time.Millisecond)
	got := l.expect(20)
	if re == 0 || re == 20 {
		t.Fatalf("Reordered = %d of 20 at 50%%", re)
	}
	inOrder := true
	for i := 1; i < len(got); i++ {
		inOrder = inOrder && got[i] > got[i-1]
	}
	if inOrder {
		t.Fatalf("frames %v came in order with %d reordered", got, re)
	}
}

func TestDuplicateAndCorrupt(t *testing.T) {
	l := newLink(t, newFakeClock())
	if err := l.w.Set(Out, Params{Duplicate: 100, Seed: 1}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	l.send(frameN(1, 60), frameN(2, 60))
	if got := l.expect(4); got[0] != 1 || got[1] != 1 || got[2] != 2 || got[3] != 2 {
		t.Fatalf("frames %v, want [1 1 2 2]", got)
	}
	if err := l.w.Set(Out, Params{Corrupt: 100, Seed: 1}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	want := frameN(3, 200)
	l.send(bytes.Clone(want))
	var got []byte
	select {
	case got = <-l.rx:
	case <-time.After(5 * time.Second):
		t.Fatal("no corrupted frame")
	}
	diff := 0
	for i := range want {
		for x := want[i] ^ got[i]; x != 0; x &= x - 1 {
			diff++
		}
	}
	if diff != 1 {
		t.Fatalf("corrupted frame differs in %d bits, want 1", diff)
	}
	st := l.w.Status().OutStats
	if st.Duplicated != 2 || st.Corrupted != 1 {
		t.Fatalf("OutStats = %+v, want 2 duplicated, 1 corrupted", st)
	}
}

// lossPattern runs n frames through a line with p and returns which were lost.
func lossPattern(t *testing.T, p Params, n int) []bool {
	l := newLine(newFakeClock(), func(b []*frame.Buf) { frame.ReleaseBufs(b) })
	defer l.close()
	if err := p.Validate(); err != nil {
		t.Fatalf("Validate(%+v): %v", p, err)
	}
	l.set(p)
	lost := make([]bool, n)
	var now []*frame.Buf
	for i := range lost {
		b := frame.GetBuf(64)
		b.N = 64
		now = l.admit(b, now[:0])
		lost[i] = len(now) == 0
		frame.ReleaseBufs(now)
	}
	return lost
}

func count(bs []bool) (k int) {
	for _, b := range bs {
		if b {
			k++
		}
	}
	return k
}

func TestLossMatchesRateAndRepeatsWithSeed(t *testing.T) {
	const n = 100000
	for _, tc := range []struct {
		name     string
		p        Params
		want     float64 // expected fraction lost
		tol      float64 // allowed deviation (about 5 standard deviations)
		maxBurst int     // the longest loss burst is at least this long for GE
	}{
		{"random 1%", Params{Loss: 1, Seed: 42}, 0.01, 0.0016, 0},
		{"random 10%", Params{Loss: 10, Seed: 42}, 0.10, 0.005, 0},
		// Gilbert-Elliott with bad = 100%, good = 0%: loss p/(p+r), in bursts of mean 1/r.
		{"gilbert-elliott", Params{GilbertElliott: &GilbertElliott{P: 1, R: 20, Bad: 100}, Seed: 42}, 1.0 / 21, 0.008, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := lossPattern(t, tc.p, n)
			b := lossPattern(t, tc.p, n)
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("frame %d: lost %v in one run, %v in the other with the same seed", i, a[i], b[i])
				}
			}
			got := float64(count(a)) / n
			if got < tc.want-tc.tol || got > tc.want+tc.tol {
				t.Fatalf("lost %.4f of %d frames, want %.4f ± %.4f", got, n, tc.want, tc.tol)
			}
			t.Logf("lost %.4f of %d frames (configured %.4f)", got, n, tc.want)
			other := tc.p
			other.Seed++
			if c := lossPattern(t, other, n); equal(a, c) {
				t.Fatalf("seed %d and %d gave the same pattern", tc.p.Seed, other.Seed)
			}
			if tc.maxBurst > 0 {
				longest, run := 0, 0
				for _, x := range a {
					if x {
						run++
						longest = max(longest, run)
					} else {
						run = 0
					}
				}
				if longest < tc.maxBurst {
					t.Fatalf("longest loss burst %d, want >= %d for a bursty model", longest, tc.maxBurst)
				}
			}
		})
	}
}

func equal(a, b []bool) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestInDirectionDelaysReads(t *testing.T) {
	c := newFakeClock()
	near, far := frametest.NewPair(frametest.PairOptions{NameA: "near", NameB: "far"})
	w := Wrap(near, Options{Clock: c})
	defer w.Close()
	got := make(chan uint32, 16)
	go func() {
		defer close(got)
		readAll(w, func(b []byte) { got <- binary.BigEndian.Uint32(b[14:]) })
	}()
	write := func(i int) {
		b := frameN(i, 60)
		if _, err := far.WriteFrames([]frame.Frame{{Buf: b, N: len(b)}}); err != nil {
			t.Fatalf("far.WriteFrames: %v", err)
		}
	}
	recv := func() uint32 {
		select {
		case s := <-got:
			return s
		case <-time.After(5 * time.Second):
			t.Fatal("no frame read")
		}
		return 0
	}
	write(1)
	if s := recv(); s != 1 {
		t.Fatalf("read frame %d, want 1", s)
	}
	// Set while the reader waits in the wrapped port: the next frame is impaired.
	if err := w.Set(In, Params{Delay: 5 * time.Millisecond}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	write(2)
	write(3)
	select {
	case s := <-got:
		t.Fatalf("frame %d read before its delay", s)
	case <-time.After(30 * time.Millisecond):
	}
	c.Advance(5 * time.Millisecond)
	if a, b := recv(), recv(); a != 2 || b != 3 {
		t.Fatalf("read %d, %d, want 2, 3", a, b)
	}
	if st := w.Status().InStats; st.Delayed != 2 {
		t.Fatalf("InStats = %+v, want 2 delayed", st)
	}
}

func TestCloseDropsWaitingFrames(t *testing.T) {
	c := newFakeClock()
	near, far := frametest.NewPair(frametest.PairOptions{})
	defer far.Close()
	w := Wrap(near, Options{Clock: c})
	if err := w.Set(Both, Params{Delay: time.Hour / 120}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	b := frameN(1, 60)
	w.WriteFrames([]frame.Frame{{Buf: b, N: len(b)}})
	if st := w.Status().OutStats; st.Waiting != 1 {
		t.Fatalf("Waiting = %d, want 1", st.Waiting)
	}
	w.Close()
	w.Close()
	if st := w.Status().OutStats; st.Waiting != 0 {
		t.Fatalf("Waiting after Close = %d, want 0", st.Waiting)
	}
	if _, err := w.WriteFrames([]frame.Frame{{Buf: b, N: len(b)}}); err == nil {
		t.Fatal("WriteFrames after Close: nil error")
	}
}

func TestValidate(t *testing.T) {
	for _, p := range []Params{
		{Delay: -1}, {Loss: 101}, {Loss: -1}, {Distribution: "pareto"}, {Rate: 10}, {Limit: -1},
		{Reorder: 10}, {Loss: 1, GilbertElliott: &GilbertElliott{P: 1, R: 1}},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", p)
		}
	}
	for s, want := range map[string]uint64{"10mbit": 10e6, "1Gbit/s": 1e9, "500kbit": 500e3, "64000bit": 64000, "1.5mbit": 1.5e6} {
		if got, err := ParseRate(s); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v, want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "10", "10mb", "fast", "0mbit", "-1mbit", "5bit"} {
		if _, err := ParseRate(s); err == nil {
			t.Errorf("ParseRate(%q) = nil error", s)
		}
	}
}

func TestHeapPopsByDueTimeThenArrival(t *testing.T) {
	var h itemHeap
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 1000 {
		h.push(item{at: int64(r.IntN(50)), seq: uint64(i)})
	}
	prev := h.pop()
	for len(h) > 0 {
		it := h.pop()
		if it.at < prev.at || it.at == prev.at && it.seq < prev.seq {
			t.Fatalf("popped (%d, %d) after (%d, %d)", it.at, it.seq, prev.at, prev.seq)
		}
		prev = it
	}
}
