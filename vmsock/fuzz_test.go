package vmsock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
)

// readerConn is a net.Conn whose peer sent r's bytes and then closed.
type readerConn struct {
	net.Conn // nil: only Read, Write and Close are used
	r        io.Reader
}

func (c *readerConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *readerConn) Write(b []byte) (int, error) { return len(b), nil }
func (c *readerConn) Close() error                { return nil }

// The port sets a read deadline while a frame it started is incomplete; the bytes
// here are all there is, so deadlines change nothing.
func (c *readerConn) SetDeadline(time.Time) error      { return nil }
func (c *readerConn) SetReadDeadline(time.Time) error  { return nil }
func (c *readerConn) SetWriteDeadline(time.Time) error { return nil }

// writeDatagram sends d on c, waiting while the listener's socket queue is full. Go
// returns EAGAIN at once for a zero-length write instead of waiting, as it does for
// any other length.
func writeDatagram(c *net.UnixConn, d []byte) error {
	for i := 0; ; i++ {
		_, err := c.Write(d)
		if err == nil || !errors.Is(err, syscall.EAGAIN) || i == 5000 {
			return err
		}
		time.Sleep(time.Millisecond)
	}
}

// streamFrames is the model of QEMU's stream framing: the frames a reader must return
// for src when its buffers hold bufLen bytes, how many it must drop for not fitting,
// and whether src has an impossible length (which ends the stream).
func streamFrames(src []byte, bufLen, maxFrame int) (frames [][]byte, dropped int, malformed bool) {
	for len(src) >= 4 {
		ln := int(binary.BigEndian.Uint32(src))
		if ln < frame.EthHeaderLen || ln > maxFrame {
			return frames, dropped, true
		}
		if len(src)-4 < ln {
			break // cut short: the peer went away mid-frame
		}
		if ln > bufLen {
			dropped++
		} else {
			frames = append(frames, src[4:4+ln])
		}
		src = src[4+ln:]
	}
	return frames, dropped, false
}

// FuzzStreamFraming feeds a byte stream from a VM to a stream port. The port must
// return exactly the frames of the stream's valid prefix, in order, count the frames
// too big for the reader's buffers as dropped, stop at an impossible length (closing
// the port) and then report net.ErrClosed.
func FuzzStreamFraming(f *testing.F) {
	frameOf := func(ln int, b byte) []byte {
		var h [4]byte
		binary.BigEndian.PutUint32(h[:], uint32(ln))
		return append(h[:], bytes.Repeat([]byte{b}, ln)...)
	}
	f.Add(uint8(0), frameOf(60, 1))
	f.Add(uint8(1), append(frameOf(60, 1), frameOf(1514, 2)...))
	f.Add(uint8(2), append(frameOf(14, 1), 0, 0, 0, 3))
	f.Add(uint8(3), append(append(frameOf(200, 1), 0xff, 0xff, 0xff, 0xff), frameOf(60, 2)...))
	f.Add(uint8(4), frameOf(1600, 1)[:900])
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, shape uint8, src []byte) {
		// Framing only: coalescing (fuzzed in offload) would merge TCP segments.
		l := &Listener{opts: Options{MTU: 1500, Logger: discard, NoCoalesce: true}, log: discard, ports: map[*Port]struct{}{}}
		p := newPort(l, &readerConn{r: bytes.NewReader(src)}, "fuzz")
		l.ports[p] = struct{}{}
		maxFrame := p.Info().MaxFrame
		bufLen := maxFrame
		if shape&1 != 0 {
			bufLen = 100 // some frames do not fit
		}
		frames := make([]frame.Frame, 1+int(shape>>1)%16)
		for i := range frames {
			frames[i].Buf = make([]byte, bufLen)
		}
		want, wantDropped, malformed := streamFrames(src, bufLen, maxFrame)
		var got [][]byte
		var err error
		for range len(src) + 2 {
			var n int
			n, err = p.ReadFrames(frames)
			if err != nil {
				if n != 0 {
					t.Fatalf("ReadFrames = %d, %v: frames with an error", n, err)
				}
				break
			}
			if n < 1 || n > len(frames) {
				t.Fatalf("ReadFrames = %d, nil with %d buffers", n, len(frames))
			}
			for _, fr := range frames[:n] {
				got = append(got, bytes.Clone(fr.Bytes()))
			}
		}
		if err == nil {
			t.Fatalf("ReadFrames never returned an error for a %d-byte stream", len(src))
		}
		if len(got) != len(want) {
			t.Fatalf("got %d frames, want %d (malformed %v)", len(got), len(want), malformed)
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("frame %d = % x, want % x", i, got[i], want[i])
			}
		}
		if d := p.Counters().RxDropped.Load(); d != uint64(wantDropped) {
			t.Fatalf("RxDropped = %d, want %d", d, wantDropped)
		}
		if m := l.Malformed(); (m == 1) != malformed || m > 1 {
			t.Fatalf("Malformed() = %d, want malformed %v", m, malformed)
		}
		if n, err := p.ReadFrames(frames); n != 0 || !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadFrames after the end = %d, %v, want 0, net.ErrClosed", n, err)
		}
	})
}

// FuzzDgramFraming sends datagrams from one QEMU dgram peer (src cut into pieces by
// the lengths in cuts) and checks that the peer's port returns exactly those of at
// least an Ethernet header's length, in order, and counts the others as malformed.
func FuzzDgramFraming(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "d.sock")
	ports := make(chan frame.Port, 1)
	l, err := Listen(Options{Path: path, Protocol: "dgram", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnPort: func(p frame.Port, name string) { ports <- p }})
	if err != nil {
		f.Fatalf("Listen(dgram %q) = %v", path, err)
	}
	defer l.Close()
	c, err := net.DialUnix("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "peer"), Net: "unixgram"}, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		f.Fatalf("DialUnix(%q) = %v", path, err)
	}
	defer c.Close()
	// The sentinel ends each input: every datagram before it has been read once the
	// port returns it.
	sentinel := bytes.Repeat([]byte{0xfe}, 64)
	if _, err := c.Write(sentinel); err != nil {
		f.Fatal(err)
	}
	var p frame.Port
	select {
	case p = <-ports:
	case <-time.After(5 * time.Second):
		f.Fatal("no port for the dgram peer within 5s")
	}
	frames := make([]frame.Frame, 8)
	for i := range frames {
		frames[i].Buf = make([]byte, p.Info().MaxFrame)
	}
	readUntilSentinel := func(t testing.TB) [][]byte {
		var got [][]byte
		for {
			n, err := p.ReadFrames(frames)
			if err != nil {
				t.Fatalf("ReadFrames = %d, %v", n, err)
			}
			for _, fr := range frames[:n] {
				if bytes.Equal(fr.Bytes(), sentinel) {
					return got
				}
				got = append(got, bytes.Clone(fr.Bytes()))
			}
		}
	}
	readUntilSentinel(f)
	f.Add([]byte{60, 10, 0}, bytes.Repeat([]byte{1}, 80))
	f.Add([]byte{13, 14}, bytes.Repeat([]byte{2}, 27))
	f.Add([]byte{255, 255, 255}, bytes.Repeat([]byte{3}, 1600))
	f.Fuzz(func(t *testing.T, cuts []byte, src []byte) {
		if len(cuts) > 32 {
			cuts = cuts[:32] // within the peer's receive queue
		}
		var want [][]byte
		malformed := l.Malformed()
		for _, k := range cuts {
			n := min(int(k)*8, len(src), p.Info().MaxFrame)
			d := src[:n]
			src = src[n:]
			if bytes.Equal(d, sentinel) {
				continue
			}
			if err := writeDatagram(c, d); err != nil {
				t.Fatalf("Write(%d bytes) = %v", len(d), err)
			}
			if n >= frame.EthHeaderLen {
				want = append(want, d)
			} else {
				malformed++
			}
		}
		if _, err := c.Write(sentinel); err != nil {
			t.Fatal(err)
		}
		got := readUntilSentinel(t)
		if len(got) != len(want) {
			t.Fatalf("got %d frames, want %d", len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("frame %d = % x, want % x", i, got[i], want[i])
			}
		}
		if m := l.Malformed(); m != malformed {
			t.Fatalf("Malformed() = %d, want %d", m, malformed)
		}
	})
}
