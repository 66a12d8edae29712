package forward

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vnetd/vnetd/internal/testwait"
)

// hostNet dials on the host: the namespace side of the forward in these tests.
type hostNet struct{}

func (hostNet) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}
func (hostNet) ListenPacket(network, addr string) (net.PacketConn, error) {
	return net.ListenPacket(network, "127.0.0.1"+addr)
}

func start(t *testing.T, proto string, target net.Addr) *Forward {
	t.Helper()
	f, err := Start(Options{
		Protocol: proto, Listen: netip.MustParseAddrPort("127.0.0.1:0"),
		Target: netip.MustParseAddrPort(target.String()), Dialer: func() Dialer { return hostNet{} },
		UDPIdle: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("Start(%s) = %v", proto, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestTCPHalfCloseAndConcurrency: the client half-closes after sending; the target
// reads to EOF, then answers with the byte count, which must reach the client.
func TestTCPHalfCloseAndConcurrency(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				n, _ := io.Copy(io.Discard, c)
				c.Write([]byte{byte(n), byte(n >> 8)})
			}()
		}
	}()
	f := start(t, "tcp", ln.Addr())
	const conns = 50
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func(size int) {
			defer wg.Done()
			c, err := net.Dial("tcp", f.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write(make([]byte, size))
			c.(*net.TCPConn).CloseWrite()
			b, err := io.ReadAll(c)
			if err != nil || len(b) != 2 || int(b[0])|int(b[1])<<8 != size {
				errs <- io.ErrUnexpectedEOF
			}
		}(1000 + i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("half-closed exchange through the forward: %v", err)
	}
	st := f.Stats()
	if st.Accepted != conns || st.DialErrors != 0 || st.BytesOut != 2*conns {
		t.Errorf("Stats() = %+v, want %d accepted, 0 dial errors, %d bytes out", st, conns, 2*conns)
	}
	f.Close()
	f.Close()
}

func TestUDPFlows(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	echo, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(buf[:n], from)
		}
	}()
	f := start(t, "udp", echo.LocalAddr())
	defer f.Close()
	for i := 0; i < 3; i++ {
		c, err := net.Dial("udp", f.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		c.Write([]byte("ping"))
		buf := make([]byte, 16)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "ping" {
			t.Errorf("client %d: Read() = %q, %v; want \"ping\"", i, buf[:n], err)
		}
		c.Close()
	}
	// A flow counts the bytes of a reply after writing it: the client can read the
	// reply a moment before it is counted.
	if !testwait.Until(2*time.Second, func() bool {
		st := f.Stats()
		return st.Accepted == 3 && st.BytesIn == 12 && st.BytesOut == 12
	}) {
		t.Errorf("Stats() = %+v, want 3 flows, 12 bytes each way", f.Stats())
	}
	// The flows idle out within 800ms.
	if !testwait.Until(800*time.Millisecond, func() bool { return f.Stats().Active == 0 }) {
		t.Errorf("Stats().Active after idle = %d, want 0", f.Stats().Active)
	}
}

func TestDialFailureCounted(t *testing.T) {
	f, err := Start(Options{Protocol: "tcp", Listen: netip.MustParseAddrPort("127.0.0.1:0"),
		Target: netip.MustParseAddrPort("127.0.0.1:1"), Dialer: func() Dialer { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := net.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	io.ReadAll(c)
	c.Close()
	if st := f.Stats(); st.DialErrors != 1 {
		t.Errorf("Stats().DialErrors = %d, want 1 (namespace gone)", st.DialErrors)
	}
}
