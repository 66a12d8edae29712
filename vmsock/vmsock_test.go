package vmsock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
)

type events struct {
	ports chan frame.Port
	gone  chan string
}

func listen(t testing.TB) (*Listener, string, *events) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vm.sock")
	ev := &events{ports: make(chan frame.Port, 8), gone: make(chan string, 8)}
	l, err := Listen(Options{Path: path,
		OnPort:     func(p frame.Port, name string) { ev.ports <- p },
		OnPortGone: func(name string) { ev.gone <- name }})
	if err != nil {
		t.Fatalf("Listen(%q) = %v", path, err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path, ev
}

func waitPort(t testing.TB, ev *events) frame.Port {
	t.Helper()
	select {
	case p := <-ev.ports:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("OnPort not called within 5s")
	}
	return nil
}

func ethFrame(n int, b byte) []byte {
	f := bytes.Repeat([]byte{b}, n)
	return f
}

func writeQEMU(w io.Writer, f []byte) error {
	var h [4]byte
	binary.BigEndian.PutUint32(h[:], uint32(len(f)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(f)
	return err
}

func TestStreamRoundTrip(t *testing.T) {
	_, path, ev := listen(t)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("Dial(%q) = %v", path, err)
	}
	defer c.Close()
	p := waitPort(t, ev)
	if want := "sock:" + path + "#1"; p.Info().Name != want {
		t.Errorf("Info().Name = %q, want %q", p.Info().Name, want)
	}
	for _, size := range []int{14, 60, 1514} {
		if err := writeQEMU(c, ethFrame(size, byte(size))); err != nil {
			t.Fatal(err)
		}
	}
	frames := make([]frame.Frame, 4)
	for i := range frames {
		frames[i].Buf = make([]byte, p.Info().MaxFrame)
	}
	got := 0
	for _, want := range []int{14, 60, 1514} {
		if got == 0 {
			n, err := p.ReadFrames(frames[:1])
			if err != nil || n != 1 {
				t.Fatalf("ReadFrames() = %d, %v", n, err)
			}
		}
		if frames[0].N != want || !bytes.Equal(frames[0].Bytes(), ethFrame(want, byte(want))) {
			t.Errorf("ReadFrames() frame len %d, want %d with matching bytes", frames[0].N, want)
		}
	}
	// Port -> VM.
	out := []frame.Frame{{Buf: ethFrame(100, 7), N: 100}}
	if n, err := p.WriteFrames(out); n != 1 || err != nil {
		t.Fatalf("WriteFrames() = %d, %v", n, err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var h [4]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		t.Fatalf("read header: %v", err)
	}
	if l := binary.BigEndian.Uint32(h[:]); l != 100 {
		t.Fatalf("header length = %d, want 100", l)
	}
	body := make([]byte, 100)
	if _, err := io.ReadFull(c, body); err != nil || !bytes.Equal(body, ethFrame(100, 7)) {
		t.Fatalf("read body = %v, bytes match %v", err, bytes.Equal(body, ethFrame(100, 7)))
	}
	c.Close()
	if _, err := p.ReadFrames(frames); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrames() after disconnect err = %v, want net.ErrClosed", err)
	}
	select {
	case name := <-ev.gone:
		if name != p.Info().Name {
			t.Errorf("OnPortGone(%q), want %q", name, p.Info().Name)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("OnPortGone not called within 5s of disconnect")
	}
}

func TestMalformedLengthClosesOnlyThatConnection(t *testing.T) {
	l, path, ev := listen(t)
	bad, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	pb := waitPort(t, ev)
	good, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	pg := waitPort(t, ev)
	bad.Write([]byte{0xff, 0xff, 0xff, 0xff})
	writeQEMU(good, ethFrame(60, 1))
	frames := []frame.Frame{{Buf: make([]byte, 2048)}}
	if _, err := pb.ReadFrames(frames); !errors.Is(err, ErrMalformed) {
		t.Errorf("ReadFrames(bad) err = %v, want ErrMalformed", err)
	}
	if l.Malformed() != 1 {
		t.Errorf("Malformed() = %d, want 1", l.Malformed())
	}
	if n, err := pg.ReadFrames(frames); n != 1 || err != nil {
		t.Errorf("ReadFrames(good) = %d, %v, want 1, nil", n, err)
	}
}

func TestStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.sock")
	// A stale socket file: bound then closed without unlink.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	l, err := Listen(Options{Path: path})
	if err != nil {
		t.Fatalf("Listen(stale %q) = %v, want nil", path, err)
	}
	if _, err := Listen(Options{Path: path}); err == nil {
		t.Errorf("Listen(%q) while listening = nil error, want refusal", path)
	}
	l.Close()
	l.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("after Close, Stat(%q) = %v, want not exist", path, err)
	}
}

func TestWriteNeverBlocks(t *testing.T) {
	_, path, ev := listen(t)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := waitPort(t, ev).(*Port)
	out := []frame.Frame{{Buf: ethFrame(1514, 1), N: 1514}}
	// Nobody reads c: the socket buffer and queue fill, then frames are dropped.
	for i := 0; i < 5000; i++ {
		p.WriteFrames(out)
	}
	if p.Counters().TxDropped.Load() == 0 {
		t.Errorf("TxDropped = 0 after 5000 unread writes, want > 0")
	}
}

func BenchmarkStreamRx(b *testing.B) {
	_, path, ev := listen(b)
	c, err := net.Dial("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	p := waitPort(b, ev)
	go func() {
		buf := make([]byte, 0, 64*1518)
		f := ethFrame(1514, 3)
		for i := 0; i < 64; i++ {
			buf = binary.BigEndian.AppendUint32(buf, 1514)
			buf = append(buf, f...)
		}
		for sent := 0; sent < b.N+64; sent += 64 {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	frames := make([]frame.Frame, 64)
	for i := range frames {
		frames[i].Buf = make([]byte, 2048)
	}
	b.ResetTimer()
	b.ReportAllocs()
	start := time.Now()
	for got := 0; got < b.N; {
		n, err := p.ReadFrames(frames)
		if err != nil {
			b.Fatal(err)
		}
		got += n
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "frames/s")
	b.SetBytes(1514)
}

func TestDgramPerPeer(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.sock")
	ev := &events{ports: make(chan frame.Port, 8), gone: make(chan string, 8)}
	l, err := Listen(Options{Path: path, Protocol: "dgram",
		OnPort:     func(p frame.Port, name string) { ev.ports <- p },
		OnPortGone: func(name string) { ev.gone <- name }})
	if err != nil {
		t.Fatalf("Listen(dgram %q) = %v", path, err)
	}
	defer l.Close()
	var peers []*net.UnixConn
	for i := 0; i < 2; i++ {
		local := &net.UnixAddr{Name: filepath.Join(dir, "peer"+string(rune('a'+i))), Net: "unixgram"}
		c, err := net.DialUnix("unixgram", local, &net.UnixAddr{Name: path, Net: "unixgram"})
		if err != nil {
			t.Fatalf("DialUnix(%q) = %v", path, err)
		}
		defer c.Close()
		peers = append(peers, c)
		c.Write(ethFrame(60+i, byte(i)))
	}
	frames := []frame.Frame{{Buf: make([]byte, 2048)}}
	seen := map[int]bool{}
	for i := 0; i < 2; i++ {
		p := waitPort(t, ev)
		n, err := p.ReadFrames(frames)
		if n != 1 || err != nil {
			t.Fatalf("ReadFrames() = %d, %v", n, err)
		}
		seen[frames[0].N] = true
		// Reply goes back to that peer only.
		out := []frame.Frame{{Buf: ethFrame(frames[0].N+100, 9), N: frames[0].N + 100}}
		if n, err := p.WriteFrames(out); n != 1 || err != nil {
			t.Fatalf("WriteFrames() = %d, %v", n, err)
		}
	}
	if !seen[60] || !seen[61] {
		t.Errorf("frames seen by length %v, want 60 and 61 on separate ports", seen)
	}
	for i, c := range peers {
		buf := make([]byte, 2048)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil || n != 160+i {
			t.Errorf("peer %d Read() = %d, %v, want %d", i, n, err, 160+i)
		}
	}
	l.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("after Close, Stat(%q) = %v, want not exist", path, err)
	}
}
