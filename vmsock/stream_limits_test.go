package vmsock

import (
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
)

func listenStreamTest(t testing.TB, o Options) (*Listener, string, *events) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vm.sock")
	ev := &events{ports: make(chan frame.Port, 16), gone: make(chan string, 16)}
	o.Path = path
	o.OnPort = func(p frame.Port, name string) { ev.ports <- p }
	o.OnPortGone = func(name string) { ev.gone <- name }
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := Listen(o)
	if err != nil {
		t.Fatalf("Listen(%q) = %v", path, err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path, ev
}

func dial(t testing.TB, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("Dial(%q) = %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestStreamConnCap: the MaxConns+1th connection is closed and counted; once one
// leaves, a new one is taken.
func TestStreamConnCap(t *testing.T) {
	l, path, ev := listenStreamTest(t, Options{MaxConns: 2})
	first := dial(t, path)
	p1 := waitPort(t, ev)
	dial(t, path)
	waitPort(t, ev)
	extra := dial(t, path)
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("Read on the connection beyond MaxConns = %d, %v, want EOF (closed by vnetd)", n, err)
	}
	if st := l.Stats(); st.Refused != 1 || st.Ports != 2 || st.Limit != 2 {
		t.Errorf("Stats() = %+v, want 1 refused, 2 ports, limit 2", st)
	}
	select {
	case p := <-ev.ports:
		t.Fatalf("port %q added beyond MaxConns", p.Info().Name)
	default:
	}
	first.Close()
	if n, err := p1.ReadFrames([]frame.Frame{{Buf: make([]byte, 2048)}}); err != net.ErrClosed {
		t.Fatalf("ReadFrames(closed by the VM) = %d, %v, want net.ErrClosed", n, err)
	}
	dial(t, path)
	waitPort(t, ev)
}

// TestStreamFrameTimeout: a connection that sent half a length prefix is closed after
// FrameTimeout and counted; a connection that sends nothing stays, and still
// delivers a frame sent afterwards.
func TestStreamFrameTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	l, path, ev := listenStreamTest(t, Options{FrameTimeout: timeout})
	idleC := dial(t, path)
	idle := waitPort(t, ev)
	stallC := dial(t, path)
	stall := waitPort(t, ev)

	type result struct {
		n   int
		err error
	}
	read := func(p frame.Port) chan result {
		ch := make(chan result, 1)
		go func() {
			n, err := p.ReadFrames([]frame.Frame{{Buf: make([]byte, 2048)}})
			ch <- result{n, err}
		}()
		return ch
	}
	idleR, stallR := read(idle), read(stall)
	stallC.Write([]byte{0, 0}) // half a length prefix, then nothing
	select {
	case r := <-stallR:
		if r.err != net.ErrClosed {
			t.Errorf("stalled ReadFrames() = %d, %v, want net.ErrClosed", r.n, r.err)
		}
	case <-time.After(20 * timeout):
		t.Fatalf("stalled connection not closed within %v (FrameTimeout %v)", 20*timeout, timeout)
	}
	if st := l.Stats(); st.Stalled != 1 {
		t.Errorf("Stats().Stalled = %d, want 1", st.Stalled)
	}
	select {
	case r := <-idleR:
		t.Fatalf("idle connection's ReadFrames returned %d, %v: a quiet VM must stay", r.n, r.err)
	case <-time.After(5 * timeout):
	}
	if err := writeQEMU(idleC, ethFrame(60, 2)); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-idleR:
		if r.n != 1 || r.err != nil {
			t.Errorf("idle connection's ReadFrames() = %d, %v, want 1, nil", r.n, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("frame from the once idle connection not read within 5s")
	}
	if st := l.Stats(); st.Ports != 1 || st.Stalled != 1 {
		t.Errorf("Stats() = %+v, want 1 port, 1 stalled", st)
	}
}
