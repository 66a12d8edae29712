package forward

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"runtime/debug"
	"syscall"
	"testing"
	"time"

	"github.com/vnetd/vnetd/internal/procstat"
	"github.com/vnetd/vnetd/internal/testwait"
	"github.com/vnetd/vnetd/nsstack"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// rssBytes is this process's resident set size.
func rssBytes(t testing.TB) int64 {
	t.Helper()
	n, err := procstat.RSS()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// floodNamespace is a namespace with a UDP discard socket on 127.0.0.1:9, the target
// of the flood: the flows' sockets are real gVisor endpoints, as in the daemon.
func floodNamespace(t testing.TB) *nsstack.Namespace {
	t.Helper()
	ns, err := nsstack.New(nsstack.Options{Name: "flood"})
	if err != nil {
		t.Fatalf("nsstack.New: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	sink, err := ns.ListenPacket("udp4", "127.0.0.1:9")
	if err != nil {
		t.Fatalf("ns.ListenPacket: %v", err)
	}
	t.Cleanup(func() { sink.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := sink.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return ns
}

// floodPorts sends one datagram to dst from each of n distinct source ports on
// 127.0.0.1 (ports from 20000 up; ports in use by others are skipped), pausing every
// 256 sends until the forward has seen them all, so no datagram is lost to a full
// socket buffer. It returns how many distinct ports sent.
func floodPorts(t testing.TB, f *Forward, dst netip.AddrPort, n int) int {
	t.Helper()
	sent := 0
	seen := func() uint64 { st := f.Stats(); return st.Accepted + st.Refused + st.DialErrors }
	base := seen()
	to := &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
	for port := 20000; sent < n && port < 65536; port++ {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("socket: %v", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			unix.Close(fd)
			if errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			t.Fatalf("bind 127.0.0.1:%d: %v", port, err)
		}
		err = unix.Sendto(fd, []byte("flood"), 0, to)
		unix.Close(fd)
		if err != nil {
			t.Fatalf("sendto from port %d: %v", port, err)
		}
		sent++
		if sent%256 == 0 || sent == n {
			if !testwait.Until(5*time.Second, func() bool { return seen()-base >= uint64(sent) }) {
				t.Fatalf("after %d sends the forward saw %d new clients (Stats() = %+v)", sent, seen()-base, f.Stats())
			}
		}
	}
	return sent
}

// TestUDPFlowCapUnderFlood: 25,000 client ports each send one datagram; the flow
// table stops at max_flows, every datagram beyond it is counted as refused, resident
// memory grows less than 100 MB, and once the flows idle out new clients get in.
func TestUDPFlowCapUnderFlood(t *testing.T) {
	verifyNoLeaks(t)
	const clients, maxFlows = 25000, 1024
	ns := floodNamespace(t)
	f, err := Start(Options{Protocol: "udp", Listen: netip.MustParseAddrPort("127.0.0.1:0"),
		Target: netip.MustParseAddrPort("127.0.0.1:9"), Dialer: func() Dialer { return ns },
		MaxFlows: maxFlows, UDPIdle: 2 * time.Second})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer f.Close()
	dst := netip.MustParseAddrPort(f.Addr().String())

	runtime.GC()
	debug.FreeOSMemory()
	before := rssBytes(t)
	start := time.Now()
	sent := floodPorts(t, f, dst, clients)
	took := time.Since(start)
	after := rssBytes(t)
	growth := after - before
	t.Logf("25k-client-port flood (max_flows %d): %d ports sent, RSS %d -> %d MiB, growth %.1f MiB", maxFlows, sent, before>>20, after>>20, float64(growth)/(1<<20))

	if sent != clients {
		t.Fatalf("only %d of %d client ports could send", sent, clients)
	}
	st := f.Stats()
	// On a loaded host the flood can outlast udp_idle, so early flows may idle out
	// and free room mid-flood (then more than the cap were accepted in all, and the
	// table can be a few short of the cap at the end): every datagram is still either
	// a flow or a refusal, and the table never passes the cap.
	mayIdle := took >= 2*time.Second // the first flows' udp_idle
	if n := f.Flows(); n > maxFlows || n < maxFlows && !mayIdle {
		t.Errorf("f.Flows() = %d after a %v flood (active %d, accepted %d), want the cap %d", n, took, st.Active, st.Accepted, maxFlows)
	}
	if st.Accepted < maxFlows || st.Active > maxFlows || st.Accepted+st.Refused != clients || st.Limit != maxFlows {
		t.Errorf("Stats() = %+v, want at most %d active, at least %d accepted, accepted+refused = %d, limit %d", st, maxFlows, maxFlows, clients, maxFlows)
	}
	if !raceEnabled && growth > 100<<20 {
		t.Errorf("RSS grew by %d MiB under the flood, want < 100 MiB", growth>>20)
	}

	// The flows idle out; the table empties and takes new clients again.
	testwait.Value(t, 10*time.Second, func() (int, bool) { n := f.Flows(); return n, n == 0 }, "f.Flows() == 0 after the flood (udp idle 2 s)")
	c, err := net.Dial("udp", dst.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("after"))
	testwait.Value(t, 3*time.Second, func() (Stats, bool) { now := f.Stats(); return now, now.Accepted == st.Accepted+1 },
		"a new client after the flows idled out to be accepted (Stats().Accepted == %d)", st.Accepted+1)
}

// TestUDPFlowReused: datagrams from one client port share one flow.
func TestUDPFlowReused(t *testing.T) {
	ns := floodNamespace(t)
	f, err := Start(Options{Protocol: "udp", Listen: netip.MustParseAddrPort("127.0.0.1:0"),
		Target: netip.MustParseAddrPort("127.0.0.1:9"), Dialer: func() Dialer { return ns }, MaxFlows: 1})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer f.Close()
	c, err := net.Dial("udp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 100; i++ {
		c.Write([]byte("same client"))
	}
	testwait.Until(3*time.Second, func() bool { return f.Stats().BytesIn == 1100 })
	if st := f.Stats(); st.Accepted != 1 || st.Refused != 0 || st.BytesIn != 1100 {
		t.Errorf("Stats() = %+v, want 1 flow, 0 refused, 1100 bytes in", st)
	}
}

// TestTCPConnCap: with max_conns 3, a fourth client is reset at once and counted;
// when one of the three leaves, a new client is relayed again.
func TestTCPConnCap(t *testing.T) {
	verifyNoLeaks(t)
	echo := echoServer(t)
	f, err := Start(Options{Protocol: "tcp", Listen: netip.MustParseAddrPort("127.0.0.1:0"),
		Target: netip.MustParseAddrPort(echo.String()), Dialer: func() Dialer { return hostNet{} }, MaxConns: 3})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer f.Close()
	var held []net.Conn
	for i := 0; i < 3; i++ {
		c := dialEcho(t, f.Addr().String())
		held = append(held, c)
		if err := roundTrip(c); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	// The forward resets the fourth client as soon as it accepts it; the reset may
	// reach the client while its connect is still returning (ECONNRESET from Dial)
	// or after (the round trip fails). Either way it gets no echo.
	if over, err := net.Dial("tcp", f.Addr().String()); err == nil {
		if err := roundTrip(over); err == nil {
			t.Errorf("a fourth client beyond max_conns 3 got its echo")
		}
		over.Close()
	}
	testwait.Until(3*time.Second, func() bool { return f.Stats().Refused == 1 })
	if st := f.Stats(); st.Refused != 1 || st.Active != 3 || st.Limit != 3 {
		t.Errorf("Stats() = %+v, want 1 refused, 3 active, limit 3", st)
	}
	held[0].Close()
	testwait.Value(t, 3*time.Second, func() (Stats, bool) { st := f.Stats(); return st, st.Active == 2 }, "Stats().Active == 2 after a client left")
	again := dialEcho(t, f.Addr().String())
	if err := roundTrip(again); err != nil {
		t.Errorf("a client after one left: %v", err)
	}
	again.Close()
	for _, c := range held[1:] {
		c.Close()
	}
}

// TestTCPKeepAlive: the host side of a relayed connection probes an idle peer per
// DefaultKeepAlive (Go's own default would be 15 s idle and the kernel's 9 probes).
func TestTCPKeepAlive(t *testing.T) {
	echo := echoServer(t)
	f := start(t, "tcp", echo)
	c := dialEcho(t, f.Addr().String())
	defer c.Close()
	if err := roundTrip(c); err != nil {
		t.Fatal(err)
	}
	var host *net.TCPConn
	f.mu.Lock()
	for k := range f.conns {
		if tc, ok := k.(*net.TCPConn); ok && tc.LocalAddr().String() == f.Addr().String() {
			host = tc
		}
	}
	f.mu.Unlock()
	if host == nil {
		t.Fatal("no host-side connection tracked by the forward")
	}
	raw, err := host.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	raw.Control(func(fd uintptr) {
		for name, opt := range map[string][2]int{"SO_KEEPALIVE": {unix.SOL_SOCKET, unix.SO_KEEPALIVE},
			"TCP_KEEPIDLE": {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE}, "TCP_KEEPINTVL": {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL},
			"TCP_KEEPCNT": {unix.IPPROTO_TCP, unix.TCP_KEEPCNT}} {
			got[name], _ = unix.GetsockoptInt(int(fd), opt[0], opt[1])
		}
	})
	want := map[string]int{"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": 30, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 3}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("host connection %s = %d, want %d", k, got[k], v)
		}
	}
}

// verifyNoLeaks checks, after every other cleanup of t, that no goroutine started
// during the test is left.
func verifyNoLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

func echoServer(t *testing.T) net.Addr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr()
}

func dialEcho(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("net.Dial(%s): %v", addr, err)
	}
	return c
}

// roundTrip writes a line and expects it echoed within 2 s.
func roundTrip(c net.Conn) error {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte("hello\n")); err != nil {
		return err
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != "hello\n" {
		return errors.New("echo mismatch: " + string(buf))
	}
	return nil
}
