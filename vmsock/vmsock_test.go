package vmsock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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

// dialVM connects a VM to a new listener and returns its port and the VM's end.
func dialVM(t testing.TB) (frame.Port, net.Conn) {
	t.Helper()
	_, path, ev := listen(t)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("Dial(%q) = %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return waitPort(t, ev), c
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

// TestSocketPathNotASocket: a regular file or an empty directory at a VM socket path
// is refused by name and left untouched, for both protocols.
func TestSocketPathNotASocket(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "vm.sock")
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, proto := range []string{"stream", "dgram"} {
		for _, p := range []string{file, empty} {
			l, err := Listen(Options{Path: p, Protocol: proto})
			if err == nil {
				l.Close()
				t.Fatalf("Listen(%s %q) = nil error, want a refusal", proto, p)
			}
			if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "not a socket") {
				t.Errorf("Listen(%s %q) = %v, want an error naming the path and saying it is not a socket", proto, p, err)
			}
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep" {
		t.Errorf("ReadFile(%q) = %q, %v: the file must survive untouched", file, b, err)
	}
	if fi, err := os.Stat(empty); err != nil || !fi.IsDir() {
		t.Errorf("Stat(%q) = %v, %v: the directory must survive", empty, fi, err)
	}
}

// TestWriteBlocksUntilClosed: toward a VM that does not read, WriteFrames blocks once
// the socket is full (the switch's queue for the port then drops), and closing the
// port, as the switch's RemovePort does, releases it.
func TestWriteBlocksUntilClosed(t *testing.T) {
	port, _ := dialVM(t) // the VM never reads
	p := port.(*Port)
	out := []frame.Frame{{Buf: ethFrame(1514, 1), N: 1514}}
	var written atomic.Int64
	done := make(chan error, 1)
	go func() {
		for range 1 << 20 { // bounded: far more than any socket buffer holds
			if _, err := p.WriteFrames(out); err != nil {
				done <- err
				return
			}
			written.Add(1)
		}
		done <- nil
	}()
	// Wait until the writes stop making progress: the socket is full.
	for last := int64(-1); ; {
		time.Sleep(100 * time.Millisecond)
		n := written.Load()
		if n == last && n > 0 {
			break
		}
		last = n
	}
	select {
	case err := <-done:
		t.Fatalf("WriteFrames returned %v while the VM read nothing; want it blocked", err)
	default:
	}
	p.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked WriteFrames returned %v after Close, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WriteFrames still blocked 5 s after Close")
	}
}

// slicedPkt is a frame by reference whose bytes are in several pieces of its own, as
// a gVisor packet's are.
type slicedPkt struct{ parts [][]byte }

func (p slicedPkt) CopyTo(b []byte) int {
	n := 0
	for _, s := range p.parts {
		n += copy(b[n:], s)
	}
	return n
}
func (p slicedPkt) Clone() frame.Packet          { return p }
func (p slicedPkt) Release()                     {}
func (p slicedPkt) Slices(dst [][]byte) [][]byte { return append(dst, p.parts...) }

var _ frame.SlicedPacket = slicedPkt{}

// TestWriteGathersFramesByReference: plain frames and frames by reference (head in the
// buffer, rewritten here, the rest in the packet's pieces) reach the VM whole and in
// order, each behind its length.
func TestWriteGathersFramesByReference(t *testing.T) {
	p, c := dialVM(t)
	if p.Info().Caps&frame.CapPacket == 0 {
		t.Fatal("a stream port does not take frames by reference (CapPacket)")
	}
	var want [][]byte
	var out []frame.Frame
	for i, size := range []int{60, 1514, 300, 1000} {
		b := ethFrame(size, byte(i+1))
		want = append(want, b)
		if i%2 == 0 {
			out = append(out, frame.Frame{Buf: bytes.Clone(b), N: size})
			continue
		}
		// By reference: the packet's own first bytes are stale, the buffer's head is the
		// frame's.
		stale := bytes.Clone(b)
		copy(stale, bytes.Repeat([]byte{0xee}, frame.PacketHead))
		buf := make([]byte, size)
		copy(buf, b[:frame.PacketHead])
		out = append(out, frame.Frame{Buf: buf, N: size, Pkt: slicedPkt{parts: [][]byte{stale[:100], stale[100:700], stale[700:]}}})
	}
	if n, err := p.WriteFrames(out); n != len(out) || err != nil {
		t.Fatalf("WriteFrames = %d, %v", n, err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i, w := range want {
		var h [4]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			t.Fatalf("frame %d: read length: %v", i, err)
		}
		got := make([]byte, binary.BigEndian.Uint32(h[:]))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("frame %d: read %d bytes: %v", i, len(got), err)
		}
		if !bytes.Equal(got, w) {
			t.Errorf("frame %d: VM got %d bytes %x..., want %d bytes %x...", i, len(got), got[:16], len(w), w[:16])
		}
	}
	if got := p.(*Port).Counters().TxFrames.Load(); got != uint64(len(want)) {
		t.Errorf("TxFrames = %d, want %d", got, len(want))
	}
}

func BenchmarkStreamRx(b *testing.B) {
	p, c := dialVM(b)
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

// BenchmarkStreamTx: WriteFrames of 1514-byte frames, 64 per call, to a VM that reads
// as fast as it can; the timer stops once the VM has every frame not dropped.
func BenchmarkStreamTx(b *testing.B) {
	port, c := dialVM(b)
	p := port.(*Port)
	var received atomic.Int64
	go func() {
		buf := make([]byte, 256<<10)
		for {
			k, err := c.Read(buf)
			received.Add(int64(k))
			if err != nil {
				return
			}
		}
	}()
	frames := make([]frame.Frame, 64)
	for i := range frames {
		frames[i] = frame.Frame{Buf: ethFrame(1514, byte(i)), N: 1514}
	}
	b.ResetTimer()
	b.ReportAllocs()
	start := time.Now()
	for sent := 0; sent < b.N; sent += len(frames) {
		k := min(len(frames), b.N-sent)
		if n, err := p.WriteFrames(frames[:k]); n != k || err != nil {
			b.Fatalf("WriteFrames = %d, %v", n, err)
		}
	}
	dropped := int64(p.Counters().TxDropped.Load())
	want := (int64(b.N) - dropped) * (4 + 1514)
	for deadline := time.Now().Add(10 * time.Second); received.Load() < want; time.Sleep(50 * time.Microsecond) {
		if time.Now().After(deadline) {
			b.Fatalf("VM received %d bytes, want %d", received.Load(), want)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(dropped)/float64(b.N), "dropped/op")
	b.ReportMetric(float64(int64(b.N)-dropped)/time.Since(start).Seconds(), "delivered/s")
	b.SetBytes(1514)
}
