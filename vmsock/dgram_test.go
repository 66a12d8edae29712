package vmsock

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/internal/procstat"
	"github.com/vnetd/vnetd/internal/testwait"
	l2switch "github.com/vnetd/vnetd/switch"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// dgramPeer binds a unixgram socket in dir and connects it to path.
func dgramPeer(t testing.TB, dir, name, path string) *net.UnixConn {
	t.Helper()
	local := &net.UnixAddr{Name: filepath.Join(dir, name), Net: "unixgram"}
	c, err := net.DialUnix("unixgram", local, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatalf("DialUnix(%q) = %v", path, err)
	}
	t.Cleanup(func() { c.Close(); os.Remove(local.Name) })
	return c
}

// bcastFrame is a broadcast frame from a unicast source MAC made of i.
func bcastFrame(i int) []byte {
	f := make([]byte, 60)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, byte(i >> 16), byte(i >> 8), byte(i), 0x08, 0x06})
	return f
}

func listenDgramTest(t testing.TB, o Options) (*Listener, string, string, *events) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "d.sock")
	ev := &events{ports: make(chan frame.Port, 16), gone: make(chan string, 16)}
	o.Path, o.Protocol = path, "dgram"
	o.OnPort = func(p frame.Port, name string) { ev.ports <- p }
	o.OnPortGone = func(name string) { ev.gone <- name }
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := Listen(o)
	if err != nil {
		t.Fatalf("Listen(dgram %q) = %v", path, err)
	}
	t.Cleanup(func() { l.Close() })
	return l, dir, path, ev
}

func waitGone(t testing.TB, ev *events, want string) {
	t.Helper()
	select {
	case name := <-ev.gone:
		if name != want {
			t.Fatalf("OnPortGone(%q), want %q", name, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("OnPortGone(%q) not called within 5s", want)
	}
}

// TestDgramPeerIdleExpiry: a peer that sent nothing for PeerIdle is removed and its
// port reported gone; one that spoke since stays; the clock is the test's.
func TestDgramPeerIdleExpiry(t *testing.T) {
	clk := newFakeClock()
	l, dir, path, ev := listenDgramTest(t, Options{PeerIdle: 5 * time.Minute, Now: clk.Now})
	a := dgramPeer(t, dir, "a", path)
	b := dgramPeer(t, dir, "b", path)
	a.Write(bcastFrame(1))
	pa := waitPort(t, ev)
	b.Write(bcastFrame(2))
	pb := waitPort(t, ev)

	clk.Advance(4 * time.Minute)
	if n := l.dgram.expire(clk.Now()); n != 0 {
		t.Fatalf("expire(+4m) = %d, want 0", n)
	}
	a.Write(bcastFrame(1)) // a speaks at +4m
	frames := []frame.Frame{{Buf: make([]byte, 2048)}}
	for i := 0; i < 2; i++ { // the reader has stamped a once its second frame is queued
		if n, err := pa.ReadFrames(frames); n != 1 || err != nil {
			t.Fatalf("ReadFrames(a) = %d, %v", n, err)
		}
	}
	clk.Advance(time.Minute + time.Second)
	if n := l.dgram.expire(clk.Now()); n != 1 {
		t.Fatalf("expire(+5m1s) = %d, want 1 (b only)", n)
	}
	waitGone(t, ev, pb.Info().Name)
	if _, err := pb.ReadFrames(frames); err != net.ErrClosed {
		t.Errorf("expired port ReadFrames() err = %v, want net.ErrClosed", err)
	}
	if st := l.Stats(); st.Ports != 1 || st.Expired != 1 {
		t.Errorf("Stats() = %+v, want 1 port, 1 expired", st)
	}
	// b comes back: a new port.
	b.Write(bcastFrame(2))
	if p := waitPort(t, ev); p.Info().Name == pb.Info().Name {
		t.Errorf("returning peer got the old port name %q", p.Info().Name)
	}
}

// TestDgramPeerCap: datagrams from a peer beyond MaxPeers are dropped and counted;
// once a peer leaves, a new one is admitted.
func TestDgramPeerCap(t *testing.T) {
	clk := newFakeClock()
	l, dir, path, ev := listenDgramTest(t, Options{MaxPeers: 2, Now: clk.Now})
	a := dgramPeer(t, dir, "a", path)
	a.Write(bcastFrame(1))
	waitPort(t, ev)
	b := dgramPeer(t, dir, "b", path)
	b.Write(bcastFrame(2))
	waitPort(t, ev)
	c := dgramPeer(t, dir, "c", path)
	for i := 0; i < 3; i++ {
		c.Write(bcastFrame(3))
	}
	testwait.Until(5*time.Second, func() bool { return l.Stats().Refused >= 3 })
	if st := l.Stats(); st.Refused != 3 || st.Ports != 2 || st.Limit != 2 {
		t.Fatalf("Stats() = %+v, want 3 refused, 2 ports, limit 2", st)
	}
	select {
	case p := <-ev.ports:
		t.Fatalf("port %q added beyond MaxPeers", p.Info().Name)
	default:
	}
	clk.Advance(DefaultPeerIdle + time.Second)
	l.dgram.expire(clk.Now())
	c.Write(bcastFrame(3))
	waitPort(t, ev)
}

// TestDgramPeerGone: a write to a peer whose socket no longer exists removes the peer
// at once instead of keeping a port that floods fill for PeerIdle.
func TestDgramPeerGone(t *testing.T) {
	l, dir, path, ev := listenDgramTest(t, Options{})
	a := dgramPeer(t, dir, "a", path)
	a.Write(bcastFrame(1))
	p := waitPort(t, ev)
	a.Close()
	os.Remove(filepath.Join(dir, "a"))
	out := []frame.Frame{{Buf: bcastFrame(9), N: 60}}
	if _, err := p.WriteFrames(out); err != net.ErrClosed {
		t.Fatalf("WriteFrames(to a vanished peer) err = %v, want net.ErrClosed", err)
	}
	waitGone(t, ev, p.Info().Name)
	if st := l.Stats(); st.Ports != 0 || st.Gone != 1 {
		t.Errorf("Stats() = %+v, want 0 ports, 1 gone", st)
	}
}

// TestDgramPeersMemory is the probe of issue 21: 1,000 unixgram sockets each send one
// broadcast frame through a switch, and then
//   - vanish (closed, their path removed), with the peer cap raised to 1,000 so that
//     every one becomes a port: each is removed at the first frame written to it;
//   - or stay bound, quiet, never reading, with the default cap: 64 become ports, the
//     others are refused, and the 64 leave at the idle timeout.
//
// It reports the RSS growth (it was ~820 MB: every peer stayed a port for good, the
// switch's queue for it filled with the others' floods) and checks it stays under
// 150 MB and that no peer is left after the idle timeout.
func TestDgramPeersMemory(t *testing.T) {
	t.Run("vanish", func(t *testing.T) { dgramPeersMemory(t, false, 1000) })
	t.Run("quiet", func(t *testing.T) { dgramPeersMemory(t, true, 0) })
}

func dgramPeersMemory(t *testing.T, quiet bool, maxPeers int) {
	const peers = 1000
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sw := l2switch.New(l2switch.Config{Name: "s", Logger: log})
	defer sw.Close()
	clk := newFakeClock()
	dir := t.TempDir()
	path := filepath.Join(dir, "d.sock")
	l, err := Listen(Options{Path: path, Protocol: "dgram", Logger: log, MaxPeers: maxPeers, Now: clk.Now,
		OnPort: func(p frame.Port, name string) {
			if err := sw.AddPort(p, l2switch.PortConfig{Name: name}); err != nil {
				p.Close()
			}
		},
		OnPortGone: func(name string) { go sw.RemovePort(name) }})
	if err != nil {
		t.Fatalf("Listen(dgram %q) = %v", path, err)
	}
	defer l.Close()
	runtime.GC()
	before, err := procstat.RSS()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < peers; i++ {
		local := filepath.Join(dir, fmt.Sprint("p", i))
		c, err := net.DialUnix("unixgram", &net.UnixAddr{Name: local, Net: "unixgram"}, &net.UnixAddr{Name: path, Net: "unixgram"})
		if err != nil {
			t.Fatalf("DialUnix(%q) = %v", path, err)
		}
		c.Write(bcastFrame(i))
		if quiet {
			defer c.Close()
			continue
		}
		c.Close()
		os.Remove(local)
	}
	// Wait until every datagram was read (a port made or the peer refused).
	seen := func() uint64 { return l.seq.Load() + l.refused.Load() }
	testwait.Until(20*time.Second, func() bool { return seen() >= peers })
	time.Sleep(500 * time.Millisecond) // let the floods drain
	runtime.GC()
	after, _ := procstat.RSS()
	growth := float64(after-before) / (1 << 20)
	st := l.Stats()
	t.Logf("%d peers, cap %d: RSS growth %.1f MB; %d ports left, %d removed as gone, %d refused at the cap",
		peers, st.Limit, growth, st.Ports, st.Gone, st.Refused)
	if seen() < peers {
		t.Errorf("only %d of %d peers seen", seen(), peers)
	}
	if growth > 150 {
		t.Errorf("RSS grew %.1f MB for %d peers, want < 150 MB", growth, peers)
	}
	clk.Advance(DefaultPeerIdle + time.Second)
	l.dgram.expire(clk.Now())
	testwait.Until(10*time.Second, func() bool { return len(sw.Ports()) == 0 })
	if n, st := len(sw.Ports()), l.Stats(); n != 0 || st.Ports != 0 {
		t.Errorf("after the idle timeout: %d switch ports, Stats() = %+v, want none left", n, st)
	}
}
