package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/vnetd/vnetd/gateway"
	"github.com/vnetd/vnetd/internal/testwait"
	l2switch "github.com/vnetd/vnetd/switch"
)

// dialIn dials from a thread switched into netns ns: the socket belongs to ns.
func dialIn(ns string) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			return nil, err
		}
		defer orig.Close()
		h, err := netns.GetFromName(ns)
		if err != nil {
			return nil, err
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			return nil, err
		}
		defer func() {
			if err := netns.Set(orig); err != nil {
				panic("cannot switch thread back to its network namespace: " + err.Error())
			}
		}()
		return new(net.Dialer).DialContext(ctx, network, address)
	}
}

// openSockets counts the process's socket descriptors (the splice pipes Go's
// io.Copy keeps pooled are not sockets).
func openSockets(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// fdTargets lists what the process's descriptors point at.
func fdTargets() []string {
	es, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range es {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		out = append(out, e.Name()+"->"+l)
	}
	return out
}

// TestGatewayKernelNetns: a kernel netns on a TAP whose default route is a vnetd
// gateway reaches a TCP echo server in a second netns (the gateway's host sockets are
// made inside that netns, as if it were the host's network): 4 MiB each way, bytes
// checked; the gateway counts the flow and leaves no socket open once it ended.
func TestGatewayKernelNetns(t *testing.T) {
	needRoot(t)
	client := newNetns(t, "gc")
	far := newNetns(t, "gf")
	inNetns(t, far, "ip", "addr", "add", "10.77.0.1/32", "dev", "lo")

	var ln net.Listener
	if err := doInNetns(t, far, func() (err error) { ln, err = net.Listen("tcp4", "10.77.0.1:7777"); return err }); err != nil {
		t.Fatalf("listen in %s: %v", far, err)
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
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				_, _ = io.Copy(c, c)
			}()
		}
	}()

	tp := openTAPIn(t, client, true, true)
	sw := l2switch.New(l2switch.Config{Name: "lan0", Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { sw.Close() })
	if err := sw.AddPort(tp, l2switch.PortConfig{}); err != nil {
		t.Fatalf("AddPort(tap): %v", err)
	}
	gw, err := gateway.New(gateway.Options{Name: "gw", Logger: slog.New(slog.DiscardHandler),
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.66.0.2/24")},
		Allow:     []netip.Prefix{netip.MustParsePrefix("10.77.0.1/32")},
		Dial:      dialIn(far)})
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	t.Cleanup(func() { gw.Close() })
	if err := sw.AddPort(gw.Port(), l2switch.PortConfig{}); err != nil {
		t.Fatalf("AddPort(gateway): %v", err)
	}
	inNetns(t, client, "ip", "addr", "add", "10.66.0.1/24", "dev", tp.Name())
	inNetns(t, client, "ip", "route", "add", "default", "via", "10.66.0.2")
	if err := ping(client, "10.66.0.2"); err != nil {
		t.Fatalf("ping the gateway from %s: %v", client, err)
	}
	fds := openSockets(t)

	const n = 4 << 20
	data := make([]byte, n)
	_, _ = rand.Read(data)
	var c net.Conn
	if err := doInNetns(t, client, func() (err error) { c, err = net.DialTimeout("tcp4", "10.77.0.1:7777", 5*time.Second); return err }); err != nil {
		t.Fatalf("dial 10.77.0.1:7777 from %s through the gateway: %v", client, err)
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || <-werr != nil {
		t.Fatalf("echo through the gateway: read %d bytes: %v", len(got), err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echo through the gateway: got %d bytes back, want the %d sent, unchanged", len(got), n)
	}
	var st gateway.Stats
	var now int
	if !testwait.Until(5*time.Second, func() bool {
		st, now = gw.Stats(), openSockets(t)
		return st.FlowsActive == 0 && now <= fds
	}) {
		t.Fatalf("after the flow ended: %d flows active, %d sockets open (%d before): %v", st.FlowsActive, now, fds, fdTargets())
	}
	if st.FlowsTCP != 1 || st.BytesToHost != n || st.BytesFromHost != n {
		t.Fatalf("gateway stats after the flow: %+v, want 1 TCP flow, %d bytes each way", st, n)
	}
	// A port nobody listens on in the far netns: refused there, so refused here.
	if err := doInNetns(t, client, func() error {
		c, err := net.DialTimeout("tcp4", "10.77.0.1:7778", 5*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}); err == nil {
		t.Fatal("dial 10.77.0.1:7778 (nobody listening in the far netns): connected, want refused")
	}
	if st := gw.Stats(); st.Refused != 1 {
		t.Fatalf("refused = %d, want 1", st.Refused)
	}
}
