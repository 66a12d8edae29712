package nsstack

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/internal/testwait"
	l2switch "github.com/vnetd/vnetd/switch"
	"go.uber.org/goleak"
	"gvisor.dev/gvisor/pkg/refs"
)

var noGSO = os.Getenv("NOGSO") != ""

// TestMain checks for leaked goroutines and, under the race detector, for leaked gVisor
// references (packets a NIC queued and never released, for one): gVisor's leak checker
// panics if any reference-counted object is still live once every test has cleaned up.
// It is off without -race because it tracks every packet in a global map, which would
// skew the benchmarks.
func TestMain(m *testing.M) {
	if raceEnabled {
		refs.SetLeakMode(refs.LeaksPanic)
	}
	goleak.VerifyTestMain(refsCheckingM{m})
}

type refsCheckingM struct{ m *testing.M }

func (r refsCheckingM) Run() int {
	code := r.m.Run()
	if code == 0 && refs.LeakCheckEnabled() && goleak.Find() == nil {
		refs.DoLeakCheck() // once the goroutines that could hold references are gone
	}
	return code
}

func newNS(t testing.TB, name string) *Namespace {
	t.Helper()
	ns, err := New(Options{Name: name})
	if err != nil {
		t.Fatalf("New(%q): %v", name, err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

func newSwitch(t testing.TB, name string) *l2switch.Switch {
	t.Helper()
	sw := l2switch.New(l2switch.Config{Name: name})
	t.Cleanup(func() { sw.Close() })
	return sw
}

// plug adds NIC eth0 with addrs to ns and attaches it to sw.
func plug(t testing.TB, ns *Namespace, sw *l2switch.Switch, mtu int, addrs ...string) *NIC {
	t.Helper()
	nic, err := ns.AddNIC(NICConfig{Name: "eth0", MTU: mtu, NoGSO: noGSO})
	if err != nil {
		t.Fatalf("%s.AddNIC(eth0): %v", ns.Name(), err)
	}
	for _, a := range addrs {
		if err := ns.AddAddress("eth0", netip.MustParsePrefix(a)); err != nil {
			t.Fatalf("%s.AddAddress(eth0, %s): %v", ns.Name(), a, err)
		}
	}
	if err := sw.AddPort(nic, l2switch.PortConfig{}); err != nil {
		t.Fatalf("sw.AddPort(%s): %v", nic.Info().Name, err)
	}
	return nic
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// transfer sends n random bytes from client to server over TCP and verifies them.
func transfer(t *testing.T, server, client *Namespace, listen, dial string, n int) {
	t.Helper()
	l, err := server.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("%s.Listen(%s): %v", server.Name(), listen, err)
	}
	defer l.Close()
	want := make([]byte, n)
	rand.Read(want)
	got := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	c, err := client.Dial(ctx(t), "tcp", dial)
	if err != nil {
		t.Fatalf("%s.Dial(%s): %v", client.Name(), dial, err)
	}
	if _, err := c.Write(want); err != nil {
		t.Fatalf("Write: %v", err)
	}
	c.Close()
	select {
	case b := <-got:
		if !bytes.Equal(b, want) {
			t.Fatalf("server received %d bytes, want the %d sent (equal=%v)", len(b), len(want), bytes.Equal(b, want))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("transfer did not finish")
	}
}

func TestLoopbackOnly(t *testing.T) {
	ns := newNS(t, "a")
	its := ns.Interfaces()
	if len(its) != 1 || its[0].Name != "lo" || fmt.Sprint(its[0].Addresses) != "[127.0.0.1/8 ::1/128]" {
		t.Fatalf("Interfaces() = %+v, want only lo with 127.0.0.1/8 and ::1/128", its)
	}
	transfer(t, ns, ns, "127.0.0.1:7", "127.0.0.1:7", 1<<16)
	transfer(t, ns, ns, "[::1]:7", "[::1]:7", 1<<16)
}

func TestSwitchedPingAndTCP(t *testing.T) {
	for _, mtu := range []int{1500, 9000, 65520} {
		t.Run(fmt.Sprint("mtu", mtu), func(t *testing.T) {
			sw := newSwitch(t, "lan0")
			a, b := newNS(t, "a"), newNS(t, "b")
			plug(t, a, sw, mtu, "10.0.0.1/24", "fd00::1/64")
			plug(t, b, sw, mtu, "10.0.0.2/24", "fd00::2/64")
			for _, dst := range []string{"10.0.0.2", "fd00::2"} {
				if _, err := a.Ping(ctx(t), netip.MustParseAddr(dst), 1, []byte("hi")); err != nil {
					t.Fatalf("a.Ping(%s): %v", dst, err)
				}
			}
			transfer(t, b, a, ":80", "10.0.0.2:80", 4<<20)
			transfer(t, a, b, ":81", "[fd00::1]:81", 1<<20)
			if len(a.Neighbors()) == 0 {
				t.Fatal("a.Neighbors() is empty after talking to b")
			}
		})
	}
}

func TestSuperframesCrossUnsegmented(t *testing.T) {
	sw := newSwitch(t, "lan0")
	a, b := newNS(t, "a"), newNS(t, "b")
	na := plug(t, a, sw, 1500, "10.0.0.1/24")
	plug(t, b, sw, 1500, "10.0.0.2/24")
	transfer(t, b, a, ":80", "10.0.0.2:80", 8<<20)
	c := na.Counters().Snapshot()
	// 8 MiB at MTU 1500 is over 5,700 segments; superframes make it far fewer frames.
	if c.TxFrames == 0 || c.TxBytes/c.TxFrames < 3000 {
		t.Fatalf("a sent %d frames, %d bytes: average %d bytes, want superframes (> 3000)", c.TxFrames, c.TxBytes, c.TxBytes/max(c.TxFrames, 1))
	}
}

// pairedNICs returns two namespaces, a (192.168.0.1/30) and b (192.168.0.2/30), each
// with an unattached NIC p0 for the caller to join.
func pairedNICs(t *testing.T) (a, b *Namespace, na, nb *NIC) {
	t.Helper()
	a, b = newNS(t, "a"), newNS(t, "b")
	na, err := a.AddNIC(NICConfig{Name: "p0"})
	if err != nil {
		t.Fatal(err)
	}
	nb, err = b.AddNIC(NICConfig{Name: "p0"})
	if err != nil {
		t.Fatal(err)
	}
	a.AddAddress("p0", netip.MustParsePrefix("192.168.0.1/30"))
	b.AddAddress("p0", netip.MustParsePrefix("192.168.0.2/30"))
	return a, b, na, nb
}

func TestPassThroughPair(t *testing.T) {
	a, b, na, nb := pairedNICs(t)
	stop := Connect(na, nb)
	defer stop()
	transfer(t, b, a, ":5000", "192.168.0.2:5000", 1<<20)
}

// Isolation: the same address and port in many namespaces, each pair on its own
// segment (a switch, or an L3 pair), each receiving only its own traffic.
func TestSameAddrPortIsolated(t *testing.T) {
	for _, kind := range nicKinds {
		t.Run(kind.String(), func(t *testing.T) { testSameAddrPortIsolated(t, kind) })
	}
}

func testSameAddrPortIsolated(t *testing.T, kind NICKind) {
	const n = 5
	servers := make([]*Namespace, n)
	clients := make([]*Namespace, n)
	for i := range servers {
		servers[i] = newNS(t, fmt.Sprint("srv", i))
		clients[i] = newNS(t, fmt.Sprint("cli", i))
		join(t, kind, fmt.Sprint("lan", i), servers[i], clients[i], "10.0.0.1/24", "10.0.0.2/24")
	}
	for i, srv := range servers {
		l, err := srv.Listen("tcp", "10.0.0.1:80")
		if err != nil {
			t.Fatalf("srv%d.Listen: %v", i, err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "srv%d", i)
				c.Close()
			}
		}()
	}
	for i, cli := range clients {
		c, err := cli.Dial(ctx(t), "tcp", "10.0.0.1:80")
		if err != nil {
			t.Fatalf("cli%d.Dial: %v", i, err)
		}
		b, _ := io.ReadAll(c)
		c.Close()
		if got, want := string(b), fmt.Sprint("srv", i); got != want {
			t.Fatalf("cli%d reached %q, want %q", i, got, want)
		}
	}
}

// nicKinds are the NIC kinds the isolation tests run on.
var nicKinds = []NICKind{NICL2, NICL3}

// join puts a and b on one segment, each with NIC eth0 and its address: for NICL2 both
// plug into a new switch named sw, for NICL3 two L3 NICs form a pass-through pair.
func join(t testing.TB, kind NICKind, sw string, a, b *Namespace, addrA, addrB string) (na, nb *NIC) {
	t.Helper()
	if kind == NICL2 {
		s := newSwitch(t, sw)
		return plug(t, a, s, 1500, addrA), plug(t, b, s, 1500, addrB)
	}
	na, nb = addL3NIC(t, a, "eth0", addrA), addL3NIC(t, b, "eth0", addrB)
	t.Cleanup(Connect(na, nb))
	return na, nb
}

// addL3NIC adds an L3 NIC with addrs to ns, unattached.
func addL3NIC(t testing.TB, ns *Namespace, name string, addrs ...string) *NIC {
	t.Helper()
	nic, err := ns.AddNIC(NICConfig{Name: name, Kind: NICL3, NoGSO: noGSO})
	if err != nil {
		t.Fatalf("%s.AddNIC(%s, l3): %v", ns.Name(), name, err)
	}
	for _, a := range addrs {
		if err := ns.AddAddress(name, netip.MustParsePrefix(a)); err != nil {
			t.Fatalf("%s.AddAddress(%s, %s): %v", ns.Name(), name, a, err)
		}
	}
	return nic
}

func TestIsolation(t *testing.T) {
	for _, kind := range nicKinds {
		t.Run(kind.String(), func(t *testing.T) { testIsolation(t, kind) })
	}
}

func testIsolation(t *testing.T, kind NICKind) {
	a, b := newNS(t, "a"), newNS(t, "b")
	join(t, kind, "lan0", a, b, "10.0.0.1/24", "10.0.0.2/24")

	t.Run("loopback listener unreachable from another namespace", func(t *testing.T) {
		l, err := a.Listen("tcp", "127.0.0.1:9000")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		c, err := b.Dial(ctx(t), "tcp", "127.0.0.1:9000")
		if err == nil {
			c.Close()
			t.Fatal("b reached a's 127.0.0.1:9000")
		}
	})
	t.Run("binding another namespace's address fails", func(t *testing.T) {
		l, err := b.Listen("tcp", "10.0.0.1:9001")
		if err == nil {
			l.Close()
			t.Fatal("b bound a's address 10.0.0.1")
		}
	})
	t.Run("unbound socket's source is its own address", func(t *testing.T) {
		l, err := a.Listen("tcp", ":9002")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			c, err := l.Accept()
			if err == nil {
				fmt.Fprint(c, c.RemoteAddr().String())
				c.Close()
			}
		}()
		c, err := b.Dial(ctx(t), "tcp", "10.0.0.1:9002")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(c)
		c.Close()
		ap, err := netip.ParseAddrPort(string(got))
		if err != nil || ap.Addr() != netip.MustParseAddr("10.0.0.2") {
			t.Fatalf("a saw b's connection from %q, want 10.0.0.2", got)
		}
	})
	t.Run("routes and neighbours do not leak", func(t *testing.T) {
		if err := a.AddRoute(Route{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.0.0.254")}); err != nil {
			t.Fatalf("a.AddRoute: %v", err)
		}
		a.Ping(ctx(t), netip.MustParseAddr("10.0.0.2"), 1, nil)
		for _, r := range b.Routes() {
			if r.Via.IsValid() {
				t.Fatalf("b has a's route %+v", r)
			}
		}
		for _, n := range b.Neighbors() {
			if n.Addr == netip.MustParseAddr("10.0.0.254") {
				t.Fatalf("b has a's neighbour %+v", n)
			}
		}
		found := false
		for _, r := range a.Routes() {
			found = found || (r.Via == netip.MustParseAddr("10.0.0.254") && r.NIC == "eth0")
		}
		if !found {
			t.Fatalf("a.Routes() = %+v lacks the default route", a.Routes())
		}
	})
}

// Timers of a namespace's sockets only emit from its own NICs: a connection whose
// peer vanished retransmits from a, and b's NIC sends nothing. (L2 only: it needs three
// namespaces on one segment, which L3 NICs, point to point, do not make.)
func TestTimersStayInTheirNamespace(t *testing.T) {
	sw := newSwitch(t, "lan0")
	a, b, c := newNS(t, "a"), newNS(t, "b"), newNS(t, "c")
	na := plug(t, a, sw, 1500, "10.0.0.1/24")
	nb := plug(t, b, sw, 1500, "10.0.0.2/24")
	nc := plug(t, c, sw, 1500, "10.0.0.3/24")
	l, err := c.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	conn, err := a.Dial(ctx(t), "tcp", "10.0.0.3:80")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	time.Sleep(100 * time.Millisecond)
	sw.RemovePort(nc.Info().Name) // c vanishes: a's data will be retransmitted
	aBefore, bBefore := na.Counters().TxFrames.Load(), nb.Counters().TxFrames.Load()
	conn.Write([]byte("hello?"))
	time.Sleep(1500 * time.Millisecond) // a few RTOs (min RTO 200ms)
	aSent, bSent := na.Counters().TxFrames.Load()-aBefore, nb.Counters().TxFrames.Load()-bBefore
	if aSent < 2 {
		t.Fatalf("a sent %d frames while retransmitting, want >= 2", aSent)
	}
	if bSent != 0 {
		t.Fatalf("b sent %d frames during a's retransmissions, want 0", bSent)
	}
}

// TestCreateDeleteNoLeak runs create/delete cycles and checks that neither
// goroutines nor heap accumulate. Each cycle builds two namespaces with a NIC on a
// switch and IPv4 and IPv6 addresses; one listens, the other connects (alternating
// families) and exchanges data, both close the connection, and both namespaces are
// deleted. A warm-up round first fills the pools (frame buffers, gVisor's) and
// runtime caches, so what is measured is growth per cycle.
func TestCreateDeleteNoLeak(t *testing.T) {
	cycles := 1000
	if testing.Short() || raceEnabled {
		cycles = 200
	}
	quiet := slog.New(slog.DiscardHandler)
	sw := l2switch.New(l2switch.Config{Name: "lan0", Logger: quiet})
	t.Cleanup(func() { sw.Close() })
	cycle := func(i int) {
		var ns [2]*Namespace
		for k := range ns {
			var err error
			ns[k], err = New(Options{Name: fmt.Sprint("n", i, "-", k), Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			nic, err := ns[k].AddNIC(NICConfig{Name: "eth0"})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{fmt.Sprintf("10.1.0.%d/16", k+1), fmt.Sprintf("fd01::%d/64", k+1)} {
				if err := ns[k].AddAddress("eth0", netip.MustParsePrefix(p)); err != nil {
					t.Fatal(err)
				}
			}
			if err := sw.AddPort(nic, l2switch.PortConfig{Name: fmt.Sprint("p", k)}); err != nil {
				t.Fatal(err)
			}
		}
		l, err := ns[1].Listen("tcp", ":80")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				served <- err
				return
			}
			_, err = io.Copy(c, c)
			c.Close()
			served <- err
		}()
		dst := "10.1.0.2:80"
		if i%2 == 1 {
			dst = "[fd01::2]:80"
		}
		// No t.Cleanup or pending timers per cycle: they would hold memory the
		// heap check counts.
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := ns[0].Dial(dctx, "tcp", dst)
		cancel()
		if err != nil {
			t.Fatalf("cycle %d: dial %s: %v", i, dst, err)
		}
		c.Write([]byte("ping"))
		c.(interface{ CloseWrite() error }).CloseWrite()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if got, err := io.ReadAll(c); string(got) != "ping" || err != nil {
			t.Fatalf("cycle %d: echo = %q, %v; want \"ping\"", i, got, err)
		}
		c.SetReadDeadline(time.Time{})
		c.Close()
		if err := <-served; err != nil {
			t.Fatalf("cycle %d: server: %v", i, err)
		}
		l.Close()
		for k := range ns {
			sw.RemovePort(fmt.Sprint("p", k))
			ns[k].Close()
		}
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC() // sync.Pool keeps a victim generation for one more cycle
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for i := range 100 {
		cycle(i)
	}
	base := runtime.NumGoroutine()
	heap0 := heap()
	for i := range cycles {
		cycle(i)
	}
	testwait.Until(5*time.Second, func() bool { return runtime.NumGoroutine() <= base })
	if g := runtime.NumGoroutine(); g > base {
		t.Errorf("%d goroutines after %d create/delete cycles, want %d as before them", g, cycles, base)
	}
	// A namespace pair with its connection holds about 300 KB; the bound is 1 KB per
	// cycle, so leaking any namespace, NIC, socket or gVisor table fails it.
	growth := int64(heap()) - int64(heap0)
	t.Logf("heap after %d cycles: %+d bytes (%+d per cycle)", cycles, growth, growth/int64(cycles))
	if growth > int64(cycles)<<10 {
		t.Errorf("heap grew %d bytes over %d create/delete cycles (%d per cycle), want <= 1 KB per cycle", growth, cycles, growth/int64(cycles))
	}
}

func TestBadInput(t *testing.T) {
	ns := newNS(t, "a")
	if _, err := ns.AddNIC(NICConfig{Name: ""}); err == nil {
		t.Fatal("AddNIC with no name succeeded")
	}
	if _, err := ns.AddNIC(NICConfig{Name: "eth0", MTU: 10}); err == nil {
		t.Fatal("AddNIC with MTU 10 succeeded")
	}
	if _, err := ns.AddNIC(NICConfig{Name: "eth0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.AddNIC(NICConfig{Name: "eth0"}); err == nil {
		t.Fatal("duplicate AddNIC succeeded")
	}
	if err := ns.AddAddress("nope", netip.MustParsePrefix("10.0.0.1/24")); err == nil {
		t.Fatal("AddAddress on a missing NIC succeeded")
	}
	if err := ns.AddRoute(Route{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("192.0.2.1")}); err == nil {
		t.Fatal("AddRoute via an unconnected address succeeded")
	}
	nic, _ := ns.NIC("eth0")
	// Garbage frames are taken (or dropped) without harm.
	for _, b := range [][]byte{{1, 2, 3}, make([]byte, 14), bytes.Repeat([]byte{0xff}, 100)} {
		nic.WriteFrames([]frame.Frame{{Buf: b, N: len(b)}})
	}
	ns.Close()
	if _, err := ns.AddNIC(NICConfig{Name: "eth1"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("AddNIC after Close: %v, want ErrClosed", err)
	}
	if _, err := nic.WriteFrames([]frame.Frame{{Buf: make([]byte, 60), N: 60}}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteFrames after Close: %v, want net.ErrClosed", err)
	}
}
