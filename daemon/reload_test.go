package daemon

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/frame/frametest"
	"go.uber.org/goleak"
)

// syncBuffer is a log sink the daemon's goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// atomicLab: namespace a serves DHCP and echo on lan0 and is reached from the host
// through a forward; VMs join on a socket. %[1]s is a's extra address (a change
// rebuilds a), %[2]s the socket path, %[3]d the forward's port, %[4]s extra parts.
const atomicLab = `
[[switch]]
name = "lan0"
[[namespace]]
name = "a"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.1/24"%[1]s]
  [[namespace.service]]
  kind = "dhcp"
  range = "10.0.0.100-10.0.0.110"
  router = "10.0.0.1"
  dns = ["10.0.0.1"]
  [[namespace.service]]
  kind = "echo"
[[socket]]
path = "%[2]s"
switch = "lan0"
[[forward]]
listen = "127.0.0.1:%[3]d"
namespace = "a"
target = "10.0.0.1:7"
%[4]s`

// TestFailedReloadIsAtomic holds a TCP connection through a forward into namespace a
// and a DHCP lease from a's server, then reloads a config that changes a (a rebuild)
// and adds a working TAP and one part that cannot be acquired. The reload must fail
// naming that part, leave a as it was (the connection carries bytes, the lease is
// listed, the same stack runs), release the TAP it opened, and log the failure and
// nothing else that did not happen.
func TestFailedReloadIsAtomic(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	busyTCP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.Listen(tcp) = %v", err)
	}
	defer busyTCP.Close()
	busyUDP, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.ListenPacket(udp) = %v", err)
	}
	defer busyUDP.Close()
	dir := t.TempDir()
	busySock := filepath.Join(dir, "other.sock")
	other, err := net.Listen("unix", busySock)
	if err != nil {
		t.Fatalf("net.Listen(unix) = %v", err)
	}
	defer other.Close()

	const goodTAP = "[[tap]]\nname = \"t0\"\nswitch = \"lan0\"\n"
	tests := []struct {
		name string
		bad  string // the part that cannot be acquired
		item string // how the log names it
		msg  string // what the error says
	}{
		{"forward on a host port another process holds",
			fmt.Sprintf("[[forward]]\nlisten = %q\nnamespace = \"a\"\ntarget = \"10.0.0.1:7\"\n", busyTCP.Addr()),
			fmt.Sprintf("forward tcp/%s", busyTCP.Addr()), "address already in use"},
		{"vxlan on a UDP port another process holds",
			fmt.Sprintf("[[vxlan]]\nname = \"x0\"\nswitch = \"lan0\"\nlocal = %q\nvni = 5\nremotes = [\"127.0.0.2\"]\n", busyUDP.LocalAddr()),
			`vxlan "x0"`, "address already in use"},
		{"socket path another process listens on",
			fmt.Sprintf("[[socket]]\npath = %q\nswitch = \"lan0\"\n", busySock),
			fmt.Sprintf("socket %q", busySock), busySock},
		{"TAP that cannot be opened",
			"[[tap]]\nname = \"broken0\"\nswitch = \"lan0\"\n",
			`tap "broken0"`, "device busy"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opened, closed atomic.Int32
			logs := &syncBuffer{}
			d := New(Options{Logger: slog.New(slog.NewTextHandler(logs, nil)),
				OpenTAP: func(c config.TAP, _ *slog.Logger) (frame.Port, error) {
					if c.Name == "broken0" {
						return nil, fmt.Errorf("open %s: device busy", c.Name)
					}
					opened.Add(1)
					a, _ := frametest.NewPair(frametest.PairOptions{NameA: "tap:" + c.Name})
					return &fakeTAP{End: a, closed: &closed}, nil
				}})
			defer d.Close()
			sock := filepath.Join(dir, fmt.Sprintf("vm%d.sock", i))
			port := freePort(t)
			if err := d.Apply(parse(t, fmt.Sprintf(atomicLab, "", sock, port, ""))); err != nil {
				t.Fatalf("Apply() = %v", err)
			}
			a, _ := d.Namespace("a")
			vm := dialVM(t, sock, "52:54:00:00:00:01")
			leased := vm.lease()
			conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				t.Fatalf("net.Dial(forward) = %v", err)
			}
			defer conn.Close()
			if err := echoes(conn, "before"); err != nil {
				t.Fatalf("echo through the forward before the reload: %v", err)
			}

			mark := len(logs.String())
			next := parse(t, fmt.Sprintf(atomicLab, `, "10.0.0.2/24"`, sock, port, goodTAP+tt.bad))
			err = d.Apply(next)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Apply(a changed + %s) = %v, want an error saying %q", tt.name, err, tt.msg)
			}

			if err := echoes(conn, "after the failed reload"); err != nil {
				t.Errorf("echo through the held connection after the failed reload: %v", err)
			}
			if a2, _ := d.Namespace("a"); a2 != a {
				t.Errorf("namespace a was rebuilt by a reload that failed")
			}
			ls, err := d.Leases("a")
			if err != nil || len(ls) != 1 || ls[0].Address != leased.String() {
				t.Errorf("Leases(a) = %+v, %v; want the lease of %s", ls, err, leased)
			}
			if opened.Load() != closed.Load() {
				t.Errorf("the reload opened %d TAPs and closed %d; want all it opened closed", opened.Load(), closed.Load())
			}
			if st := d.Status(); len(st.Forwards) != 1 || len(st.Switches) != 1 || len(st.Switches[0].Ports) != 2 {
				t.Errorf("after the failed reload Status() = %d forwards, %+v switches; want the old lab (1 forward, lan0 with a.eth0 and the VM)", len(st.Forwards), st.Switches)
			}

			log := logs.String()[mark:]
			want := fmt.Sprintf(`level=ERROR msg="reload failed; nothing changed, the running lab is as it was" failed=%q`, tt.item)
			if strings.Count(log, "level=ERROR") != 1 || !strings.Contains(log, want) {
				t.Errorf("reload log =\n%s\nwant one error line containing %s", log, want)
			}
			for _, never := range []string{"namespace removed", "namespace up", "switch removed", "switch up",
				"forward removed", "forward up", "msg=removed", "dhcp up", "tap up", "services changed", "restor"} {
				if strings.Contains(log, never) {
					t.Errorf("reload log =\n%s\nsays %q, which did not happen", log, never)
				}
			}
		})
	}
}

// TestFailedReopenIsUndone: a changed TAP must be closed before it is opened again;
// when the reopen fails, the reload fails, the TAP is reopened with the running config
// (same port, same VLAN) and the log says so.
func TestFailedReopenIsUndone(t *testing.T) {
	var opens, closed atomic.Int32
	logs := &syncBuffer{}
	d := New(Options{Logger: slog.New(slog.NewTextHandler(logs, nil)),
		OpenTAP: func(c config.TAP, _ *slog.Logger) (frame.Port, error) {
			if c.VLAN == 10 {
				return nil, fmt.Errorf("open %s: device busy", c.Name)
			}
			opens.Add(1)
			a, _ := frametest.NewPair(frametest.PairOptions{NameA: "tap:" + c.Name})
			return &fakeTAP{End: a, closed: &closed}, nil
		}})
	defer d.Close()
	const lab = "[[switch]]\nname = \"lan0\"\n[[tap]]\nname = \"t0\"\nswitch = \"lan0\"\nvlan = %d\n"
	if err := d.Apply(parse(t, fmt.Sprintf(lab, 5))); err != nil {
		t.Fatalf("Apply() = %v", err)
	}
	mark := len(logs.String())
	if err := d.Apply(parse(t, fmt.Sprintf(lab, 10))); err == nil || !strings.Contains(err.Error(), `tap "t0": open t0: device busy`) {
		t.Fatalf("Apply(vlan 10, which fails to open) = %v, want the open error naming tap \"t0\"", err)
	}
	if ps := d.Status().Switches[0].Ports; len(ps) != 1 || ps[0].Name != "tap:t0" || ps[0].VLAN != 5 {
		t.Errorf("after the failed reload lan0 ports = %+v, want tap:t0 on VLAN 5", ps)
	}
	if opens.Load() != 2 || closed.Load() != 1 {
		t.Errorf("TAP opens %d, closes %d; want 2 (start, reopen) and 1", opens.Load(), closed.Load())
	}
	log := logs.String()[mark:]
	for _, want := range []string{`msg="reopened with the running config" what=tap:t0`, `failed="tap \"t0\""`} {
		if !strings.Contains(log, want) {
			t.Errorf("reload log =\n%s\nwant %s", log, want)
		}
	}
}
