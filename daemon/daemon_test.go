package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vnetd/vnetd/config"
	"go.uber.org/goleak"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.Listen() = %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

const base = `
[[switch]]
name = "lan0"
[[switch]]
name = "lan1"
[[namespace]]
name = "alpha"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.10/24"]
  [[namespace.service]]
  kind = "http"
[[namespace]]
name = "beta"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.20/24"]
  [[namespace.service]]
  kind = "echo"
  [[namespace.nic]]
  name = "p0"
  peer = "gamma:p0"
  addresses = ["192.168.5.1/30"]
[[namespace]]
name = "gamma"
  [[namespace.nic]]
  name = "p0"
  peer = "beta:p0"
  addresses = ["192.168.5.2/30"]
  [[namespace.service]]
  kind = "echo"
[[forward]]
listen = "127.0.0.1:%d"
namespace = "alpha"
target = "10.0.0.10:80"
`

const delta = `
[[namespace]]
name = "delta"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.30/24"]
  [[namespace.service]]
  kind = "discard"
`

func parseB(src string) (*config.Config, error) { return config.Parse("test.toml", []byte(src)) }

func parse(t *testing.T, src string) *config.Config {
	t.Helper()
	c, err := parseB(src)
	if err != nil {
		t.Fatalf("config.Parse() = %v", err)
	}
	return c
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(testLogOut, nil)) }

var testLogOut io.Writer = io.Discard

func TestStartServeShutdownLeavesNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	port := freePort(t)
	d := New(Options{Logger: quiet()})
	if err := d.Apply(parse(t, fmt.Sprintf(base, port))); err != nil {
		t.Fatalf("Apply() = %v", err)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/info.json", port))
	if err != nil {
		t.Fatalf("GET forward = %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"namespace":"alpha"`) || !strings.Contains(string(body), "10.0.0.10/24") {
		t.Errorf("GET /info.json = %s, want alpha and 10.0.0.10/24", body)
	}
	// Across the pass-through pair: beta pings gamma.
	ok := false
	d.Ping(context.Background(), "beta", mustAddr("192.168.5.2"), 1, 0, func(r PingResult) { ok = r.Error == "" })
	if !ok {
		t.Errorf("Ping(beta -> gamma over the pair) failed")
	}
	if st := d.Status(); len(st.Switches) != 2 || len(st.Namespaces) != 3 || len(st.Forwards) != 1 || st.Forwards[0].Stats.Accepted != 1 {
		t.Errorf("Status() = %d switches, %d namespaces, %+v forwards; want 2, 3, one with 1 accepted", len(st.Switches), len(st.Namespaces), st.Forwards)
	}
	d.Close()
	d.Close() // idempotent
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		c.Close()
		t.Errorf("forward port %d still listening after Close", port)
	}
}

func TestStartRollsBackOnError(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := freePort(t)
	src := fmt.Sprintf(base, port) + fmt.Sprintf("[[forward]]\nlisten = %q\nnamespace = \"beta\"\ntarget = \"10.0.0.20:7\"\n", busy.Addr().String())
	d := New(Options{Logger: quiet()})
	if err := d.Apply(parse(t, src)); err == nil {
		t.Fatalf("Apply(forward on a busy port) = nil, want an error")
	}
	if st := d.Status(); len(st.Switches)+len(st.Namespaces)+len(st.Forwards) != 0 {
		t.Errorf("after failed start Status() = %+v, want empty", st)
	}
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		c.Close()
		t.Errorf("forward port %d left listening after a failed start", port)
	}
	d.Close()
}

func TestBadSocketPathRollsBack(t *testing.T) {
	// validate refuses a missing directory, so it goes between validate and Apply.
	dir := filepath.Join(t.TempDir(), "gone")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "vm.sock")
	src := "[[switch]]\nname = \"lan0\"\n[[socket]]\npath = \"" + sock + "\"\nswitch = \"lan0\"\n"
	d := New(Options{Logger: quiet()})
	defer d.Close()
	cfg := parse(t, src)
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	err := d.Apply(cfg)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("socket %q", sock)) || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("Apply(socket in a missing directory) = %v, want the path and \"no such file or directory\"", err)
	}
	if n := len(d.switches) + len(d.attachments); n != 0 {
		t.Errorf("after a failed start %d switches and attachments are left, want 0", n)
	}
}

func TestUnavailablePartsAreReported(t *testing.T) {
	src := "[[switch]]\nname = \"lan0\"\n[[host_interface]]\nname = \"vnet9\"\nswitch = \"lan0\"\n"
	d := New(Options{Logger: quiet()})
	d.openHostIf = nil
	defer d.Close()
	err := d.Apply(parse(t, src))
	if err == nil || !strings.Contains(err.Error(), "host interface support not available in this build") {
		t.Errorf("Apply(host_interface) = %v, want \"host interface support not available in this build\"", err)
	}
}

// TestReloadUnderTraffic keeps a lock-step UDP echo stream (alpha -> beta) and a TCP
// echo connection running while another namespace is added and removed repeatedly
// and a bad reload is rejected; not one datagram may be lost, and the untouched
// namespaces must be the same objects afterwards.
func TestReloadUnderTraffic(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	port := freePort(t)
	cfgA := parse(t, fmt.Sprintf(base, port))
	cfgB := parse(t, fmt.Sprintf(base, port)+delta)
	d := New(Options{Logger: quiet()})
	defer d.Close()
	if err := d.Apply(cfgA); err != nil {
		t.Fatalf("Apply() = %v", err)
	}
	alpha, _ := d.Namespace("alpha")
	beta, _ := d.Namespace("beta")

	tcp, err := alpha.Dial(context.Background(), "tcp", "10.0.0.20:7")
	if err != nil {
		t.Fatalf("alpha.Dial(beta echo) = %v", err)
	}
	defer tcp.Close()
	udp, err := alpha.ListenPacket("udp4", ":0")
	if err != nil {
		t.Fatalf("alpha.ListenPacket() = %v", err)
	}
	defer udp.Close()
	dst := &net.UDPAddr{IP: net.IPv4(10, 0, 0, 20), Port: 7}

	var stop atomic.Bool
	done := make(chan error, 1)
	var sent, echoed atomic.Int64
	go func() {
		buf := make([]byte, 1500)
		for i := 0; i < 100000 && !stop.Load(); i++ {
			msg := fmt.Sprintf("seq %d", i)
			udp.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := udp.WriteTo([]byte(msg), dst); err != nil {
				done <- fmt.Errorf("WriteTo(seq %d) = %v", i, err)
				return
			}
			sent.Add(1)
			n, _, err := udp.ReadFrom(buf)
			if err != nil {
				done <- fmt.Errorf("seq %d lost: ReadFrom = %v", i, err)
				return
			}
			if string(buf[:n]) != msg {
				done <- fmt.Errorf("seq %d: echo %q", i, buf[:n])
				return
			}
			echoed.Add(1)
			// Below the echo service's per-source rate (500/s), which would drop one.
			time.Sleep(3 * time.Millisecond)
		}
		done <- nil
	}()

	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 5 && time.Now().Before(deadline); i++ {
		if err := d.Apply(cfgB); err != nil {
			t.Fatalf("Apply(+delta) #%d = %v", i, err)
		}
		if _, err := d.Namespace("delta"); err != nil {
			t.Errorf("after adding delta: Namespace(delta) = %v", err)
		}
		if err := d.Apply(cfgA); err != nil {
			t.Fatalf("Apply(-delta) #%d = %v", i, err)
		}
	}
	// A reload that cannot be applied (forward on a busy port) leaves the old lab.
	busy, _ := net.Listen("tcp", "127.0.0.1:0")
	bad := parse(t, fmt.Sprintf(base, port)+delta+fmt.Sprintf("[[forward]]\nlisten = %q\nnamespace = \"beta\"\ntarget = \"10.0.0.20:7\"\n", busy.Addr().String()))
	if err := d.Apply(bad); err == nil {
		t.Errorf("Apply(busy forward) = nil, want error")
	}
	busy.Close()
	if _, err := d.Namespace("delta"); err == nil {
		t.Errorf("after rejected reload: delta exists, want the old config")
	}
	time.Sleep(200 * time.Millisecond)
	stop.Store(true)
	if err := <-done; err != nil {
		t.Errorf("UDP stream alpha->beta during reloads: %v", err)
	}
	if echoed.Load() == 0 || echoed.Load() != sent.Load() {
		t.Errorf("UDP echoes = %d of %d sent, want all and more than 0", echoed.Load(), sent.Load())
	}
	t.Logf("UDP round trips during reloads: %d, lost 0", echoed.Load())

	if _, err := tcp.Write([]byte("still here")); err != nil {
		t.Fatalf("tcp.Write after reloads = %v", err)
	}
	buf := make([]byte, 10)
	tcp.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(tcp, buf); err != nil || string(buf) != "still here" {
		t.Errorf("TCP echo after reloads = %q, %v; want \"still here\"", buf, err)
	}
	if a2, _ := d.Namespace("alpha"); a2 != alpha {
		t.Errorf("alpha was recreated by a reload that did not change it")
	}
	if b2, _ := d.Namespace("beta"); b2 != beta {
		t.Errorf("beta was recreated by a reload that did not change it")
	}
	for _, p := range d.Status().Switches[0].Ports {
		for reason, n := range p.Drops {
			if n != 0 && reason != "same_port" {
				t.Errorf("port %s dropped %d frames (%s)", p.Name, n, reason)
			}
		}
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
