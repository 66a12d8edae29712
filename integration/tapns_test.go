package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd/hostif"
	"github.com/vnetd/vnetd/nsstack"
	"github.com/vnetd/vnetd/router"
	l2switch "github.com/vnetd/vnetd/switch"
)

// kernelToNS sends n random bytes over TCP from kernel netns k to ns listening on addr,
// and n more back from ns to a listener in k on back; both arrive intact or the test fails.
func kernelNSExchange(t *testing.T, k string, ns *nsstack.Namespace, addr, back string, n int) {
	t.Helper()
	want := make([]byte, n)
	rand.Read(want)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// kernel → namespace
	l, err := ns.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("%s.Listen(%s): %v", ns.Name(), addr, err)
	}
	defer l.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- nil
			return
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		b, _ := io.ReadAll(c)
		c.Close()
		got <- b
	}()
	if err := doInNetns(t, k, func() error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(want)
		return err
	}); err != nil {
		t.Fatalf("dial %s from kernel netns %s and send: %v", addr, k, err)
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("namespace %s received %d bytes, want the %d sent, intact", ns.Name(), len(b), n)
	}

	// namespace → kernel
	var kl net.Listener
	if err := doInNetns(t, k, func() (err error) { kl, err = net.Listen("tcp", back); return err }); err != nil {
		t.Fatalf("listen %s in %s: %v", back, k, err)
	}
	defer kl.Close()
	go func() {
		c, err := kl.Accept()
		if err != nil {
			got <- nil
			return
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		b, _ := io.ReadAll(c)
		c.Close()
		got <- b
	}()
	c, err := ns.Dial(ctx, "tcp", back)
	if err != nil {
		t.Fatalf("%s.Dial(%s): %v", ns.Name(), back, err)
	}
	if _, err := c.Write(want); err != nil {
		logKernelNetStats(t, k)
		t.Fatalf("write to %s: %v", back, err)
	}
	c.Close()
	if b := <-got; !bytes.Equal(b, want) {
		logKernelNetStats(t, k)
		t.Fatalf("kernel netns %s received %d bytes, want the %d sent, intact", k, len(b), n)
	}
}

var netStatOfInterest = regexp.MustCompile(`Err|Drop|Csum|Retrans|Loss|Ofo|Prune|Collapse|Discard|InSegs|OutSegs|Abort|Timeout`)

// logKernelNetStats logs netns k's non-zero IP/TCP error and drop counters and its
// links' statistics: what the kernel did with the frames vnetd wrote.
func logKernelNetStats(t *testing.T, k string) {
	t.Helper()
	out, _ := nsCommand(k, "nstat", "-az")
	var keep []string
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) >= 2 && f[1] != "0" && netStatOfInterest.MatchString(f[0]) {
			keep = append(keep, f[0]+"="+f[1])
		}
	}
	t.Logf("netns %s counters: %s", k, strings.Join(keep, " "))
	links, _ := nsCommand(k, "ip", "-s", "link")
	t.Logf("netns %s links:\n%s", k, links)
}

func newNamespaceOn(t *testing.T, sw *l2switch.Switch, name string, addrs ...string) *nsstack.Namespace {
	t.Helper()
	ns, err := nsstack.New(nsstack.Options{Name: name, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("nsstack.New(%s): %v", name, err)
	}
	t.Cleanup(func() { ns.Close() })
	nic, err := ns.AddNIC(nsstack.NICConfig{Name: "eth0"})
	if err != nil {
		t.Fatalf("%s.AddNIC: %v", name, err)
	}
	for _, a := range addrs {
		if err := ns.AddAddress("eth0", netip.MustParsePrefix(a)); err != nil {
			t.Fatalf("%s.AddAddress(%s): %v", name, a, err)
		}
	}
	if err := sw.AddPort(nic, l2switch.PortConfig{}); err != nil {
		t.Fatalf("AddPort(%s): %v", nic.Info().Name, err)
	}
	return ns
}

// A kernel netns on a TAP and a vnetd namespace on the same switch: TCP both ways with
// verified bytes, offload on and off.
func TestTAPKernelToNamespace(t *testing.T) {
	needRoot(t)
	for _, offload := range []bool{false, true} {
		t.Run(fmt.Sprintf("offload=%v", offload), func(t *testing.T) {
			k := newNetns(t, "k")
			tp := openTAPIn(t, k, true, offload)
			sw := l2switch.New(l2switch.Config{Name: "lan0", Logger: slog.New(slog.DiscardHandler)})
			t.Cleanup(func() { sw.Close() })
			if err := sw.AddPort(tp, l2switch.PortConfig{}); err != nil {
				t.Fatalf("AddPort(tap): %v", err)
			}
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("TAP %s: %+v faults %d", tp.Name(), tp.Counters.Snapshot(), tp.Faults.Load())
					for _, st := range sw.Ports() {
						t.Logf("port %s: up %v %+v drops %v segmented %d", st.Name, st.Up, st.Counters, st.Drops, st.Segments)
					}
				}
			})
			inNetns(t, k, "ip", "addr", "add", "10.98.0.1/24", "dev", tp.Name())
			ns := newNamespaceOn(t, sw, "v", "10.98.0.2/24")
			if err := ping(k, "10.98.0.2"); err != nil {
				t.Fatalf("ping 10.98.0.2 from %s: %v", k, err)
			}
			kernelNSExchange(t, k, ns, "10.98.0.2:6001", "10.98.0.1:6002", 8<<20)
		})
	}
}

// A kernel netns on a veth whose other end vnetd attaches as a host interface, and a
// vnetd namespace on the same switch: TCP both ways with verified bytes, offload on
// (the namespace's superframes are sent from its gVisor buffers) and off (segmented in
// software first).
func TestHostIfKernelToNamespace(t *testing.T) {
	needRoot(t)
	for _, offload := range []bool{false, true} {
		t.Run(fmt.Sprintf("offload=%v", offload), func(t *testing.T) {
			k, v := newNetns(t, "hk"), newNetns(t, "hv")
			hostifVeth(t, v, "hpk", k, "eth0")
			p := openHostIf(t, v, "hpk", hostif.Options{Offload: offload})
			sw := l2switch.New(l2switch.Config{Name: "lan0", Logger: slog.New(slog.DiscardHandler)})
			t.Cleanup(func() { sw.Close() })
			if err := sw.AddPort(p, l2switch.PortConfig{}); err != nil {
				t.Fatalf("AddPort(hostif): %v", err)
			}
			inNetns(t, k, "ip", "addr", "add", "10.97.0.1/24", "dev", "eth0")
			ns := newNamespaceOn(t, sw, "v", "10.97.0.2/24")
			if err := ping(k, "10.97.0.2"); err != nil {
				t.Fatalf("ping 10.97.0.2 from %s: %v", k, err)
			}
			kernelNSExchange(t, k, ns, "10.97.0.2:6011", "10.97.0.1:6012", 8<<20)
			if c := p.Counters.Snapshot(); c.TxDropped != 0 {
				t.Errorf("host interface dropped frames toward the kernel: %+v", c)
			}
		})
	}
}

// A kernel netns on a TAP on lan0 and a vnetd namespace on lan1, through the router:
// ping and TCP both ways with verified bytes, IPv4 and IPv6.
func TestTAPKernelThroughRouter(t *testing.T) {
	needRoot(t)
	k := newNetns(t, "k")
	tp := openTAPIn(t, k, true, true)
	lan0 := l2switch.New(l2switch.Config{Name: "lan0", Logger: slog.New(slog.DiscardHandler)})
	lan1 := l2switch.New(l2switch.Config{Name: "lan1", Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { lan0.Close(); lan1.Close() })
	r := router.New(router.Options{Name: "r1", Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { r.Close() })
	for _, ifc := range []struct {
		sw    *l2switch.Switch
		name  string
		addrs []string
	}{
		{lan0, "lan0", []string{"10.97.0.1/24", "fd97::1/64"}},
		{lan1, "lan1", []string{"10.97.1.1/24", "fd97:1::1/64"}},
	} {
		var ps []netip.Prefix
		for _, a := range ifc.addrs {
			ps = append(ps, netip.MustParsePrefix(a))
		}
		p, err := r.AddInterface(router.IfaceConfig{Name: ifc.name, Addresses: ps})
		if err != nil {
			t.Fatalf("r.AddInterface(%s): %v", ifc.name, err)
		}
		if err := ifc.sw.AddPort(p, l2switch.PortConfig{}); err != nil {
			t.Fatalf("AddPort(r1.%s): %v", ifc.name, err)
		}
	}
	if err := lan0.AddPort(tp, l2switch.PortConfig{}); err != nil {
		t.Fatalf("AddPort(tap): %v", err)
	}
	inNetns(t, k, "ip", "addr", "add", "10.97.0.10/24", "dev", tp.Name())
	inNetns(t, k, "ip", "-6", "addr", "add", "fd97::10/64", "dev", tp.Name(), "nodad")
	inNetns(t, k, "ip", "route", "add", "default", "via", "10.97.0.1")
	inNetns(t, k, "ip", "-6", "route", "add", "default", "via", "fd97::1")
	ns := newNamespaceOn(t, lan1, "w", "10.97.1.10/24", "fd97:1::10/64")
	for _, rt := range []nsstack.Route{
		{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.97.1.1")},
		{To: netip.MustParsePrefix("::/0"), Via: netip.MustParseAddr("fd97:1::1")},
	} {
		if err := ns.AddRoute(rt); err != nil {
			t.Fatalf("w.AddRoute(%+v): %v", rt, err)
		}
	}
	for _, dst := range []string{"10.97.1.10", "fd97:1::10"} {
		if err := ping(k, dst); err != nil {
			t.Fatalf("ping %s from %s through r1: %v", dst, k, err)
		}
	}
	kernelNSExchange(t, k, ns, "10.97.1.10:6101", "10.97.0.10:6102", 4<<20)
	kernelNSExchange(t, k, ns, "[fd97:1::10]:6103", "[fd97::10]:6104", 4<<20)
	var fwd uint64
	for _, i := range r.Interfaces() {
		fwd += i.Forwarded
	}
	if fwd == 0 {
		t.Fatal("router counted no forwarded packets")
	}
}
