package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd/internal/testwait"
)

// vxDaemonTOML is one daemon of TestVXLANDaemons: namespace "nN" (10.9.0.N; names differ
// so that the MACs derived from them do) with an echo
// service, a tunnel to the other daemons' underlay addresses, and a forward from the
// daemon's netns loopback into n, targeting NEXT's echo service across the tunnel.
const vxDaemonTOML = `
[daemon]
control = %[1]q
[[switch]]
name = "lan0"
[[namespace]]
name = "n%[2]d"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  mtu = 1400
  addresses = ["10.9.0.%[2]d/24", "fd09::%[2]d/64"]
  [[namespace.service]]
  kind = "echo"
[[vxlan]]
name = "vx0"
switch = "lan0"
local = %[3]q
vni = 4242
remotes = [%[4]s]
[[forward]]
listen = "127.0.0.1:7007"
namespace = "n%[2]d"
target = "%[5]s"
`

// TestVXLANDaemons: vnetd daemons in their own netns, their underlay addresses on a
// kernel bridge, each switch stretched over a VXLAN tunnel to the others: the
// namespaces ping each other (IPv4 and IPv6 inside) and TCP through each daemon's
// forward reaches the next daemon's echo service over the tunnel with every byte back;
// IPv4 underlay with two daemons (one remote each), IPv6 underlay with four (three
// remotes each, flooding replicated to all).
func TestVXLANDaemons(t *testing.T) {
	needRoot(t)
	bin := buildVnetd(t)
	for _, c := range []struct {
		name   string
		n      int
		under  func(i int) string
		prefix int
	}{
		{"v4-1-remote", 2, func(i int) string { return fmt.Sprintf("10.210.0.%d", i) }, 24},
		{"v6-3-remotes", 4, func(i int) string { return fmt.Sprintf("fd21::%d", i) }, 64},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newNetns(t, "vxr")
			inNetns(t, r, "ip", "link", "add", "br0", "type", "bridge")
			inNetns(t, r, "ip", "link", "set", "br0", "up")
			dir := t.TempDir()
			socks := make([]string, c.n+1)
			nss := make([]string, c.n+1)
			for i := 1; i <= c.n; i++ {
				ns := newNetns(t, fmt.Sprintf("vxd%d", i))
				nss[i] = ns
				inNetns(t, r, "ip", "link", "add", fmt.Sprintf("p%d", i), "type", "veth", "peer", "name", "u0")
				inNetns(t, r, "ip", "link", "set", "u0", "netns", ns)
				inNetns(t, r, "ip", "link", "set", fmt.Sprintf("p%d", i), "master", "br0", "up")
				inNetns(t, ns, "ip", "addr", "add", fmt.Sprintf("%s/%d", c.under(i), c.prefix), "dev", "u0", "nodad")
				inNetns(t, ns, "ip", "link", "set", "u0", "up")
				var remotes []string
				for j := 1; j <= c.n; j++ {
					if j != i {
						remotes = append(remotes, fmt.Sprintf("%q", c.under(j)))
					}
				}
				next := i%c.n + 1
				socks[i] = filepath.Join(dir, fmt.Sprintf("d%d.sock", i))
				cfg := filepath.Join(dir, fmt.Sprintf("d%d.toml", i))
				local := c.under(i)
				src := fmt.Sprintf(vxDaemonTOML, socks[i], i, local, strings.Join(remotes, ", "), fmt.Sprintf("10.9.0.%d:7", next))
				if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
					t.Fatal(err)
				}
				var stderr syncBuffer
				cmd := exec.Command("ip", "netns", "exec", ns, bin, "run", "-c", cfg)
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					cmd.Process.Kill()
					cmd.Wait()
				})
				sock := socks[i]
				if !testwait.Until(10*time.Second, func() bool { return exec.Command(bin, "-s", sock, "status").Run() == nil }) {
					t.Fatalf("daemon %d did not start; stderr:\n%s", i, stderr.String())
				}
			}
			vnetd := func(i int, args ...string) (string, error) {
				out, err := exec.Command(bin, append([]string{"-s", socks[i]}, args...)...).CombinedOutput()
				return string(out), err
			}
			for i := 2; i <= c.n; i++ {
				for _, dst := range []string{fmt.Sprintf("10.9.0.%d", i), fmt.Sprintf("fd09::%d", i)} {
					var out string
					var err error
					for range 5 {
						if out, err = vnetd(1, "ping", "n1", dst, "-c", "1"); err == nil {
							break
						}
					}
					if err != nil {
						t.Fatalf("vnetd ping n1 %s from daemon 1: %v\n%s", dst, err, out)
					}
				}
			}
			for i := 1; i <= c.n; i++ {
				var conn net.Conn
				if err := doInNetns(t, nss[i], func() (err error) { conn, err = net.DialTimeout("tcp", "127.0.0.1:7007", 5*time.Second); return err }); err != nil {
					t.Fatalf("dial daemon %d's forward: %v", i, err)
				}
				conn.SetDeadline(time.Now().Add(20 * time.Second))
				data := make([]byte, 1<<20)
				rand.Read(data)
				go func() {
					conn.Write(data)
					conn.(*net.TCPConn).CloseWrite()
				}()
				got, err := io.ReadAll(conn)
				conn.Close()
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("daemon %d -> %d echo: %d of %d bytes back (%v), or different", i, i%c.n+1, len(got), len(data), err)
				}
			}
			out, err := vnetd(1, "vxlan", "lan0", "--json")
			if err != nil {
				t.Fatalf("vnetd vxlan lan0: %v\n%s", err, out)
			}
			var vs []struct {
				Remotes []struct {
					Addr     string
					Static   bool
					Counters struct {
						TxFrames uint64 `json:"tx_frames"`
						RxFrames uint64 `json:"rx_frames"`
					} `json:"counters"`
				}
			}
			if err := json.Unmarshal([]byte(out), &vs); err != nil || len(vs) != 1 || len(vs[0].Remotes) != c.n-1 {
				t.Fatalf("vnetd vxlan lan0 --json = %v, want one tunnel with %d remotes:\n%s", err, c.n-1, out)
			}
			for j, rs := range vs[0].Remotes {
				// Flooding (ARP, neighbour solicitations) reached every remote, and each answered.
				if rs.Addr != c.under(j+2) || !rs.Static || rs.Counters.TxFrames == 0 || rs.Counters.RxFrames == 0 {
					t.Fatalf("remote %d = %+v, want %s, static, frames both ways", j, rs, c.under(j+2))
				}
			}
			if out, err := vnetd(1, "vxlan", "lan0"); err != nil || !strings.Contains(out, "static") || !strings.Contains(out, "MAC") {
				t.Fatalf("vnetd vxlan lan0 = %v\n%s", err, out)
			}
		})
	}
}
