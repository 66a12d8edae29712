package reopen

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
)

var errGone = errors.New("fake device deleted")

// device is a fake TAP: frames pushed on in are read; gone makes it fail as a
// deleted device does.
type device struct {
	id      int
	in      chan []byte
	gone    chan struct{}
	goneOne sync.Once
	closed  chan struct{}
	once    sync.Once
	written atomic.Int64
}

func newDevice(id int) *device {
	return &device{id: id, in: make(chan []byte, 16), gone: make(chan struct{}), closed: make(chan struct{})}
}

func (d *device) vanish() { d.goneOne.Do(func() { close(d.gone) }) }

func (d *device) ReadFrames(f []frame.Frame) (int, error) {
	select {
	case b := <-d.in:
		f[0].N = copy(f[0].Buf, b)
		return 1, nil
	case <-d.gone:
		return 0, fmt.Errorf("read dev%d: %w", d.id, errGone)
	case <-d.closed:
		return 0, net.ErrClosed
	}
}

func (d *device) WriteFrames(f []frame.Frame) (int, error) {
	select {
	case <-d.gone:
		return 0, fmt.Errorf("write dev%d: %w", d.id, errGone)
	case <-d.closed:
		return 0, net.ErrClosed
	default:
	}
	d.written.Add(int64(len(f)))
	return len(f), nil
}

func (d *device) Info() frame.Info { return frame.Info{Name: "dev", MTU: 1500, MaxFrame: 1514} }
func (d *device) Close() error     { d.once.Do(func() { close(d.closed) }); return nil }

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestGoneAndBack: the device vanishes; writes are dropped and counted, the reader
// waits; the open fails twice (the name does not exist yet) then succeeds, and reads
// and writes carry on with the new device. One line is logged each way.
func TestGoneAndBack(t *testing.T) {
	var logs syncBuf
	first := newDevice(1)
	second := newDevice(2)
	var opens atomic.Int32
	p := New(first, Options{
		Name:       "tap0",
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
		MinBackoff: time.Millisecond,
		MaxBackoff: 4 * time.Millisecond,
		Gone:       func(err error) bool { return errors.Is(err, errGone) },
		Open: func() (frame.Port, error) {
			if opens.Add(1) < 3 {
				return nil, errors.New("no such device")
			}
			return second, nil
		},
	})
	defer p.Close()
	reads := make(chan string, 4)
	go func() {
		f := []frame.Frame{{Buf: make([]byte, 64)}}
		for {
			n, err := p.ReadFrames(f)
			if err != nil {
				reads <- "err: " + err.Error()
				return
			}
			if n == 1 {
				reads <- string(f[0].Bytes())
			}
		}
	}()
	first.in <- []byte("one")
	if got := <-reads; got != "one" {
		t.Fatalf("read %q, want one", got)
	}
	first.vanish()
	for deadline := time.Now().Add(5 * time.Second); p.Up() && p.Reopens.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("port still up 5 s after its device vanished")
		}
	}
	for deadline := time.Now().Add(5 * time.Second); !p.Up(); time.Sleep(time.Millisecond) {
		if n, err := p.WriteFrames([]frame.Frame{{Buf: []byte("x"), N: 1}}); err != nil {
			t.Fatalf("WriteFrames while down = %d, %v; want dropped, no error", n, err)
		}
		if time.Now().After(deadline) {
			t.Fatal("port not back 5 s after the device could be opened")
		}
	}
	second.in <- []byte("two")
	if got := <-reads; got != "two" {
		t.Fatalf("read %q after the device came back, want two", got)
	}
	if n, err := p.WriteFrames([]frame.Frame{{Buf: []byte("y"), N: 1}}); n != 1 || err != nil || second.written.Load() != 1 {
		t.Errorf("WriteFrames after reopen = %d, %v (device got %d); want 1 frame on the new device", n, err, second.written.Load())
	}
	if p.Reopens.Load() != 1 || opens.Load() != 3 {
		t.Errorf("Reopens = %d after %d opens, want 1 after 3", p.Reopens.Load(), opens.Load())
	}
	if p.DownDrops.Load() == 0 {
		t.Errorf("DownDrops = 0, want the writes made while down")
	}
	l := logs.String()
	if strings.Count(l, "device gone") != 1 || strings.Count(l, "device back") != 1 {
		t.Errorf("logs:\n%s\nwant one 'device gone' and one 'device back'", l)
	}
	p.Close()
	if got := <-reads; !strings.Contains(got, net.ErrClosed.Error()) {
		t.Errorf("reader after Close got %q, want net.ErrClosed", got)
	}
}

// TestCloseWhileDown: Close ends the reopen loop and the waiting reader.
func TestCloseWhileDown(t *testing.T) {
	d := newDevice(1)
	p := New(d, Options{
		Logger: slog.New(slog.DiscardHandler), MinBackoff: time.Millisecond,
		Gone: func(err error) bool { return errors.Is(err, errGone) },
		Open: func() (frame.Port, error) { return nil, errors.New("no such device") },
	})
	done := make(chan error, 1)
	go func() {
		_, err := p.ReadFrames([]frame.Frame{{Buf: make([]byte, 64)}})
		done <- err
	}()
	d.vanish()
	time.Sleep(20 * time.Millisecond)
	p.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("ReadFrames after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reader still blocked 5 s after Close")
	}
}

// TestOtherErrorsPass: an error that is not "gone" reaches the caller.
func TestOtherErrorsPass(t *testing.T) {
	d := newDevice(1)
	p := New(d, Options{Gone: func(error) bool { return false }, Open: func() (frame.Port, error) { return nil, errGone }})
	d.vanish()
	if _, err := p.WriteFrames([]frame.Frame{{Buf: []byte("x"), N: 1}}); !errors.Is(err, errGone) {
		t.Errorf("WriteFrames = %v, want the device's error", err)
	}
	p.Close()
}
