package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/frame/frametest"
	"github.com/vnetd/vnetd/tap"
)

// tapQueueStatus is the part of `vnetd status --json` this file reads.
type tapQueueStatus struct {
	Switches []struct {
		Name  string `json:"name"`
		Ports []struct {
			Name     string `json:"name"`
			Up       bool   `json:"up"`
			Counters struct {
				RxFrames uint64 `json:"rx_frames"`
			} `json:"counters"`
			Queues []frame.QueueCounts `json:"queues"`
		} `json:"ports"`
	} `json:"switches"`
}

// echoFlows opens flows TCP connections from kernel netns ns to the echo service at
// addr, sends n random bytes on each (all at once) and checks each gets its own bytes
// back intact.
func echoFlows(t *testing.T, ns, addr string, flows, n int) {
	t.Helper()
	conns := make([]net.Conn, 0, flows)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err := doInNetns(t, ns, func() error {
		for range flows {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	}); err != nil {
		t.Fatalf("dial %s from kernel netns %s: %v", addr, ns, err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*flows)
	for i, c := range conns {
		want := make([]byte, n)
		rand.Read(want)
		c.SetDeadline(time.Now().Add(60 * time.Second))
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := c.Write(want); err != nil {
				errs <- fmt.Errorf("flow %d: write: %w", i, err)
			}
		}()
		go func() {
			defer wg.Done()
			got := make([]byte, n)
			if _, err := io.ReadFull(c, got); err != nil {
				errs <- fmt.Errorf("flow %d: read the echo: %w", i, err)
			} else if !bytes.Equal(got, want) {
				errs <- fmt.Errorf("flow %d: the %d bytes echoed differ from those sent", i, n)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestDaemonTAPQueues runs vnetd inside a netns with a [[tap]] of queues = 4 (created
// by vnetd, multi-queue) on a switch with a vnetd namespace running the echo service.
// Eight parallel TCP flows from the netns through the TAP come back intact; the TAP is
// one switch port, tap:NAME, whose status shows frames read from more than one queue
// (the kernel spreads the flows: each goes to the queue vnetd writes it to, chosen by
// a hash of its addresses and ports). The TAP is then deleted under vnetd: it creates
// it again with all four queues and the flows pass again.
func TestDaemonTAPQueues(t *testing.T) {
	needRoot(t)
	bin := buildVnetd(t)
	ns := newNetns(t, "tapq")
	dir := t.TempDir()
	sock := filepath.Join(dir, "vnetd.sock")
	dev := tapName(t, "vq")
	cfg := filepath.Join(dir, "lab.toml")
	lab := fmt.Sprintf(`
[daemon]
control = %q
metrics = "127.0.0.1:9464"
[[switch]]
name = "lan0"
[[tap]]
name = %q
switch = "lan0"
queues = 4
[[namespace]]
name = "alpha"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.97.0.10/24"]
  [[namespace.service]]
  kind = "echo"
`, sock, dev)
	if err := os.WriteFile(cfg, []byte(lab), 0o600); err != nil {
		t.Fatal(err)
	}
	_, exited, log := runVnetd(t, bin, ns, cfg)
	setUp := func() {
		eventually(t, 20*time.Second, "vnetd's TAP "+dev, func() bool { _, err := nsCommand(ns, "ip", "link", "show", dev); return err == nil }, log)
		if out, err := nsCommand(ns, "ip", "-d", "link", "show", dev); err != nil || !strings.Contains(out, "multi_queue numqueues 4") {
			t.Fatalf("ip -d link show %s = %v:\n%s\nwant a multi-queue TAP with 4 queues attached", dev, err, out)
		}
		inNetns(t, ns, "ip", "addr", "replace", "10.97.0.1/24", "dev", dev)
		inNetns(t, ns, "ip", "link", "set", dev, "up")
		eventually(t, 20*time.Second, "a ping through the TAP", func() bool {
			_, err := nsCommand(ns, "ping", "-c", "1", "-W", "1", "10.97.0.10")
			return err == nil
		}, log)
	}
	status := func() tapQueueStatus {
		out, err := exec.Command(bin, "-s", sock, "status", "--json").Output()
		if err != nil {
			t.Fatalf("vnetd status --json: %v", err)
		}
		var st tapQueueStatus
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("vnetd status --json: %v\n%s", err, out)
		}
		return st
	}
	queues := func() []frame.QueueCounts {
		st := status()
		if len(st.Switches) != 1 || len(st.Switches[0].Ports) != 2 {
			t.Fatalf("vnetd status: %+v, want lan0 with 2 ports (the TAP, one port for its 4 queues, and alpha.eth0)", st.Switches)
		}
		for _, p := range st.Switches[0].Ports {
			if p.Name == "tap:"+dev {
				if len(p.Queues) != 4 {
					t.Fatalf("port %s status queues = %+v, want 4", p.Name, p.Queues)
				}
				return p.Queues
			}
		}
		t.Fatalf("vnetd status: no port tap:%s on lan0: %+v", dev, st.Switches[0].Ports)
		return nil
	}
	check := func(before []frame.QueueCounts, what string) []frame.QueueCounts {
		after := queues()
		rxQueues, txQueues := 0, 0
		for i := range after {
			// A 1 MiB flow is some 50 frames each way (TCP superframes and ACKs);
			// 20 tells a queue carrying a flow from one seeing a stray ARP or MLD.
			if after[i].RxFrames-before[i].RxFrames > 20 {
				rxQueues++
			}
			if after[i].TxFrames-before[i].TxFrames > 20 {
				txQueues++
			}
		}
		t.Logf("%s: per-queue frames before %+v after %+v", what, before, after)
		if rxQueues < 2 || txQueues < 2 {
			t.Errorf("%s: 8 flows read on %d queues and written on %d, want at least 2 each (before %+v, after %+v)", what, rxQueues, txQueues, before, after)
		}
		return after
	}

	setUp()
	before := queues()
	echoFlows(t, ns, "10.97.0.10:7", 8, 1<<20)
	check(before, "first run")
	// /metrics has each queue's frames (read inside the netns, where vnetd listens).
	var metrics string
	// (net/http would dial from another goroutine, outside the netns: a plain
	// connection made on this locked thread, HTTP/1.0 by hand.)
	if err := doInNetns(t, ns, func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.1:9464", 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.0\r\nHost: vnetd\r\n\r\n"); err != nil {
			return err
		}
		b, err := io.ReadAll(c)
		metrics = string(b)
		return err
	}); err != nil {
		t.Fatalf("GET /metrics: %v\n%s", err, log.String())
	}
	for i := range 4 {
		line := fmt.Sprintf(`vnetd_port_queue_frames_total{direction="rx",port="tap:%s",queue="%d",switch="lan0"}`, dev, i)
		if !strings.Contains(metrics, line) {
			t.Fatalf("/metrics has no %s; queue lines:\n%s", line, grepLines(metrics, "vnetd_port_queue"))
		}
	}

	// Deleted under vnetd: the port goes down and vnetd creates the TAP again, with
	// every queue.
	inNetns(t, ns, "ip", "link", "del", dev)
	eventually(t, 15*time.Second, "the TAP reopened", func() bool { return strings.Contains(log.String(), "device back") }, log)
	setUp()
	before = queues()
	echoFlows(t, ns, "10.97.0.10:7", 8, 1<<20)
	check(before, "after the TAP was recreated")
	select {
	case <-exited:
		t.Fatalf("vnetd exited:\n%s", log.String())
	default:
	}
}

// TestTAPGroupAttach: attaching (Create false) with several queues works on a TAP
// created multi_queue, and on a single-queue one fails with an error that says so
// instead of the kernel's EINVAL.
func TestTAPGroupAttach(t *testing.T) {
	needRoot(t)
	ns := newNetns(t, "tqa")
	single, multi := tapName(t, "vs"), tapName(t, "vm")
	inNetns(t, ns, "ip", "tuntap", "add", "dev", single, "mode", "tap")
	inNetns(t, ns, "ip", "tuntap", "add", "dev", multi, "mode", "tap", "multi_queue")
	quiet := slog.New(slog.DiscardHandler)
	var g *tap.Group
	o := tap.Options{Name: multi, Queues: 4, Offload: true, Logger: quiet}
	if err := doInNetns(t, ns, func() (err error) { g, err = tap.OpenGroup(o); return err }); err != nil {
		t.Fatalf("tap.OpenGroup(%+v) on a multi_queue TAP = %v", o, err)
	}
	if out := inNetns(t, ns, "ip", "-d", "link", "show", multi); !strings.Contains(out, "numqueues 4") {
		t.Errorf("ip -d link show %s after OpenGroup(Queues: 4):\n%s\nwant numqueues 4", multi, out)
	}
	if g.Info().Name != "tap:"+multi || g.Queues() != 4 {
		t.Errorf("Group: Info().Name = %q, Queues() = %d; want tap:%s, 4", g.Info().Name, g.Queues(), multi)
	}
	g.Close()
	if out := inNetns(t, ns, "ip", "-d", "link", "show", multi); !strings.Contains(out, "numqueues 0") {
		t.Errorf("persistent TAP %s after Close:\n%s\nwant it left in place with its queues detached", multi, out)
	}
	o.Name = single
	err := doInNetns(t, ns, func() error {
		g, err := tap.OpenGroup(o)
		if err == nil {
			g.Close()
		}
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "multi-queue") || !strings.Contains(err.Error(), "single-queue") {
		t.Errorf("tap.OpenGroup(%+v) on a single-queue TAP = %v, want an error saying it is not multi-queue", o, err)
	}
}

// TestTAPGroupPortContract runs the frame.Port conformance suite against a real
// 4-queue TAP as one port (tap.Group), the far side an AF_PACKET socket on the TAP's
// kernel side, as TestTAPPortContract does for a single-queue TAP.
func TestTAPGroupPortContract(t *testing.T) {
	needRoot(t)
	frametest.TestPort(t, func(t *testing.T) frametest.Harness {
		ns := newNetns(t, "vgc")
		name := tapName(t, "vg")
		o := tap.Options{Name: name, Create: true, MTU: 1500, Offload: true, Queues: 4, Logger: slog.New(slog.DiscardHandler)}
		var g *tap.Group
		if err := doInNetns(t, ns, func() (err error) { g, err = tap.OpenGroup(o); return err }); err != nil {
			t.Fatalf("tap.OpenGroup(%+v) = %v", o, err)
		}
		inNetns(t, ns, "sysctl", "-qw", "net.ipv6.conf."+name+".disable_ipv6=1")
		inNetns(t, ns, "ip", "link", "set", name, "up")
		s := openRawSocket(t, ns, name)
		return frametest.Harness{
			Port:      g,
			ReadDrops: func() uint64 { return g.Drops()["buffer_short"] },
			Inject: func(frames []frame.Frame) error {
				for i := range frames {
					s.send(t, frames[i].Bytes())
				}
				return nil
			},
			Receive: func(timeout time.Duration) (frame.Frame, error) {
				buf := make([]byte, 65536)
				for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
					n, from, err := unix.Recvfrom(s.fd, buf, 0)
					if err != nil {
						continue // SO_RCVTIMEO
					}
					if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
						continue
					}
					return frame.Frame{Buf: buf[:n], N: n}, nil
				}
				return frame.Frame{}, errors.New("no frame from the TAP within " + timeout.String())
			},
		}
	})
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
