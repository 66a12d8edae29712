package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/daemon"
)

// soakBase is the part of the soak lab the flows use; reloads never change it.
const soakBase = `
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
  kind = "echo"
[[namespace]]
name = "beta"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.20/24"]
  [[namespace.route]]
  to = "0.0.0.0/0"
  via = "10.0.0.1"
[[namespace]]
name = "gamma"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan1"
  addresses = ["10.0.1.10/24"]
  [[namespace.route]]
  to = "0.0.0.0/0"
  via = "10.0.1.1"
  [[namespace.service]]
  kind = "echo"
[[router]]
name = "r1"
  [[router.interface]]
  switch = "lan0"
  addresses = ["10.0.0.1/24"]
  [[router.interface]]
  switch = "lan1"
  addresses = ["10.0.1.1/24"]
[[forward]]
listen = "127.0.0.1:%d"
namespace = "alpha"
target = "10.0.0.10:7"
[[forward]]
listen = "127.0.0.1:%d"
namespace = "gamma"
target = "10.0.1.10:7"
protocol = "udp"
`

// soakExtras are the optional parts a valid reload adds or removes, one at a time.
var soakExtras = []string{
	`
[[namespace]]
name = "delta"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.30/24"]
  [[namespace.service]]
  kind = "http"
`,
	`
[[switch]]
name = "lan9"
[[namespace]]
name = "zeta"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan9"
  addresses = ["10.9.0.10/24"]
`,
	`
[[forward]]
listen = "127.0.0.1:%d"
namespace = "alpha"
target = "10.0.0.10:7"
`,
	`
[[namespace]]
name = "eps"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan1"
  addresses = ["10.0.1.40/24"]
  [[namespace.service]]
  kind = "echo"
`,
}

// soakInvalid are broken files: each must be refused with FILE:LINE:COL errors.
var soakInvalid = []string{
	"\n[[switch]]\nname = \"lan0\"\n", // a duplicate switch
	"\n[[namespace]]\nname = \"bad\"\n  [[namespace.nic]]\n  name = \"eth0\"\n  switch = \"lan0\"\n  addresses = [\"10.0.0.300/24\"]\n", // a bad address
	"\n[[forward]]\nlisten = \"127.0.0.1:x\"\nnamespace = \"alpha\"\ntarget = \"10.0.0.10:7\"\n",
	"\n[daemon\n", // a syntax error
	"\n[[router]]\nname = \"r2\"\n  [[router.interface]]\n  switch = \"nope\"\n  addresses = [\"10.0.5.1/24\"]\n",
}

var soakErrRE = regexp.MustCompile(`^lab\.toml:[0-9]+:[0-9]+: \S`)

func soakDuration(t *testing.T) time.Duration {
	if s := os.Getenv("VNETD_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("VNETD_SOAK=%q: %v", s, err)
		}
		return d
	}
	if testing.Short() {
		return 6 * time.Second
	}
	return 20 * time.Second
}

func soakPort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// flow is one long-lived exchange: it echoes a numbered message every few ms and
// counts round trips and failures.
type flow struct {
	name       string
	trips, bad atomic.Int64
	lastErr    atomic.Value
}

func (f *flow) fail(err error) {
	f.bad.Add(1)
	f.lastErr.Store(err.Error())
}

// tcpFlow keeps one connection: every message must come back on it, in order.
func tcpFlow(ctx context.Context, f *flow, c net.Conn) {
	defer c.Close()
	msg := make([]byte, 1024)
	got := make([]byte, len(msg))
	for i := 0; ctx.Err() == nil; i++ {
		copy(msg, fmt.Sprintf("%s %d ", f.name, i))
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(msg); err != nil {
			f.fail(err)
			return // a lost connection
		}
		if _, err := io.ReadFull(c, got); err != nil {
			f.fail(err)
			return
		}
		if !bytes.Equal(got, msg) {
			f.fail(fmt.Errorf("echo %d came back different", i))
			return
		}
		f.trips.Add(1)
		time.Sleep(5 * time.Millisecond)
	}
}

// udpFlow sends numbered datagrams one at a time; each must come back.
func udpFlow(ctx context.Context, f *flow, c net.PacketConn, to net.Addr) {
	defer c.Close()
	buf := make([]byte, 1500)
	for i := 0; ctx.Err() == nil; i++ {
		msg := fmt.Appendf(nil, "%s %d", f.name, i)
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.WriteTo(msg, to); err != nil {
			f.fail(err)
			continue
		}
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				if ctx.Err() == nil {
					f.fail(fmt.Errorf("datagram %d: %w", i, err))
				}
				break
			}
			if bytes.Equal(buf[:n], msg) {
				f.trips.Add(1)
				break
			}
			// A late echo of an earlier datagram: keep waiting for this one.
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReloadUnderLoad keeps TCP and UDP flows running through a switch, the router
// and two forwards (TCP and UDP) while the config is reloaded every second: a random
// valid change (adding or removing an unrelated namespace, switch or forward), and
// every fifth reload an invalid file. The flows lose no connection and no datagram,
// every invalid file is refused with FILE:LINE:COL errors and leaves the lab running.
// VNETD_SOAK=10m makes it longer.
func TestReloadUnderLoad(t *testing.T) {
	dur := soakDuration(t)
	tcpFwd, udpFwd, extraFwd := soakPort(t, "tcp"), soakPort(t, "udp"), soakPort(t, "tcp")
	base := fmt.Sprintf(soakBase, tcpFwd, udpFwd)
	extras := append([]string(nil), soakExtras...)
	extras[2] = fmt.Sprintf(extras[2], extraFwd)
	dir := t.TempDir()
	file := filepath.Join(dir, "lab.toml")
	d := daemon.New(daemon.Options{Logger: slog.New(slog.DiscardHandler)})
	defer d.Close()
	// reload does what SIGHUP and POST /v1/reload do: read the file, validate, apply.
	reload := func(text string) error {
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := config.Parse("lab.toml", mustRead(t, file))
		if err != nil {
			return err
		}
		return d.Apply(c)
	}
	if err := reload(base); err != nil {
		t.Fatalf("first Apply = %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := func(name string) interface {
		Dial(context.Context, string, string) (net.Conn, error)
		ListenPacket(string, string) (net.PacketConn, error)
	} {
		n, err := d.Namespace(name)
		if err != nil {
			t.Fatalf("Namespace(%s) = %v", name, err)
		}
		return n
	}
	dialCtx, dialCancel := context.WithTimeout(ctx, 10*time.Second)
	defer dialCancel()
	var flows []*flow
	var wg sync.WaitGroup
	start := func(f *flow, run func()) {
		flows = append(flows, f)
		wg.Add(1)
		go func() { defer wg.Done(); run() }()
	}
	// TCP across the switch (beta -> alpha) and across the router (beta -> gamma).
	for _, dst := range []struct{ name, addr string }{{"switch-tcp", "10.0.0.10:7"}, {"router-tcp", "10.0.1.10:7"}} {
		c, err := ns("beta").Dial(dialCtx, "tcp", dst.addr)
		if err != nil {
			t.Fatalf("beta Dial(%s) = %v", dst.addr, err)
		}
		f := &flow{name: dst.name}
		start(f, func() { tcpFlow(ctx, f, c) })
	}
	// UDP across the switch and the router.
	for _, dst := range []struct{ name, addr string }{{"switch-udp", "10.0.0.10:7"}, {"router-udp", "10.0.1.10:7"}} {
		pc, err := ns("beta").ListenPacket("udp", "10.0.0.20:0")
		if err != nil {
			t.Fatalf("beta ListenPacket = %v", err)
		}
		to, _ := net.ResolveUDPAddr("udp", dst.addr)
		f := &flow{name: dst.name}
		start(f, func() { udpFlow(ctx, f, pc, to) })
	}
	// The host through the TCP and UDP forwards.
	fc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tcpFwd))
	if err != nil {
		t.Fatalf("Dial(tcp forward) = %v", err)
	}
	ff := &flow{name: "forward-tcp"}
	start(ff, func() { tcpFlow(ctx, ff, fc) })
	uc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	uf := &flow{name: "forward-udp"}
	start(uf, func() { udpFlow(ctx, uf, uc, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: udpFwd}) })

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	on := make([]bool, len(extras))
	valid, invalid := 0, 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.After(dur)
loop:
	for n := 1; ; n++ {
		select {
		case <-end:
			break loop
		case <-tick.C:
		}
		text := base
		if n%5 == 0 {
			bad := soakInvalid[rng.IntN(len(soakInvalid))]
			for i, x := range extras {
				if on[i] {
					text += x
				}
			}
			err := reload(text + bad)
			var es config.Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Errorf("reload %d (invalid %q) = %v, want config.Errors", n, bad, err)
				continue
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !soakErrRE.MatchString(line) {
					t.Errorf("reload %d: error %q is not FILE:LINE:COL: message", n, line)
				}
			}
			invalid++
			continue
		}
		i := rng.IntN(len(extras))
		on[i] = !on[i]
		for i, x := range extras {
			if on[i] {
				text += x
			}
		}
		if err := reload(text); err != nil {
			t.Errorf("reload %d (toggling extra %d) = %v", n, i, err)
			continue
		}
		valid++
	}
	cancel()
	wg.Wait()
	for _, f := range flows {
		if f.bad.Load() != 0 || f.trips.Load() == 0 {
			t.Errorf("flow %s: %d round trips, %d failures (last: %v); want 0 failures", f.name, f.trips.Load(), f.bad.Load(), f.lastErr.Load())
		}
		t.Logf("flow %s: %d round trips, %d failures", f.name, f.trips.Load(), f.bad.Load())
	}
	if valid == 0 || invalid == 0 {
		t.Errorf("%d valid and %d invalid reloads, want some of each", valid, invalid)
	}
	// The lab still runs: a new connection across the router works.
	c, err := ns("beta").Dial(context.Background(), "tcp", "10.0.1.10:7")
	if err != nil {
		t.Fatalf("after the soak beta Dial(gamma:7) = %v", err)
	}
	c.Close()
	t.Logf("%v: %d valid reloads, %d invalid ones refused", dur, valid, invalid)
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
