package integration

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/nsstack"
	l2switch "github.com/vnetd/vnetd/switch"
	"github.com/vnetd/vnetd/vxlan"
)

// needCommands skips t when a command is missing, or fails it when VNETD_INTEGRATION=1
// demands the test.
func needCommands(t *testing.T, pkg string, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			if os.Getenv("VNETD_INTEGRATION") == "1" {
				t.Fatalf("test needs %s (Debian package %s), VNETD_INTEGRATION=1 set: %v", c, pkg, err)
			}
			t.Skipf("needs %s (Debian package %s); set VNETD_INTEGRATION=1 to make this a failure", c, pkg)
		}
	}
}

// TestVXLANOVSInterop: Open vSwitch on one side, vnetd on the other. In netns o,
// ovsdb-server and ovs-vswitchd run from a private run directory with the userspace
// datapath (datapath_type=netdev: no kernel module): bridge brint holds a vxlan port
// (key 42, remote_ip vnetd's address, dst_port 4789 or 8472) and a veth to netns h
// (10.9.0.2); bridge brphy holds the underlay veth and owns the tunnel address
// 10.201.0.2 (OVS's native tunnelling routes and ARPs through it). In netns u, a vnetd
// switch with a VXLAN port (10.201.0.1) and a gVisor namespace (10.9.0.1). Ping and TCP
// both ways with every byte checked; each side learns the other's MAC behind the tunnel.
func TestVXLANOVSInterop(t *testing.T) {
	needRoot(t)
	needCommands(t, "openvswitch-switch", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl")
	const local, peer = "10.201.0.1", "10.201.0.2"
	for _, dstport := range []int{4789, 8472} {
		t.Run(fmt.Sprint("dstport=", dstport), func(t *testing.T) {
			u, o, h := newNetns(t, "vxu"), newNetns(t, "vxo"), newNetns(t, "vxh")
			ovs := startOVS(t, o)
			inNetns(t, u, "ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul1")
			inNetns(t, u, "ip", "link", "set", "ul1", "netns", o)
			inNetns(t, u, "ip", "addr", "add", local+"/24", "dev", "ul0")
			inNetns(t, u, "ip", "link", "set", "ul0", "up")
			inNetns(t, o, "ip", "link", "set", "ul1", "up")
			inNetns(t, o, "ip", "link", "add", "kv0", "type", "veth", "peer", "name", "kv1")
			inNetns(t, o, "ip", "link", "set", "kv1", "netns", h)
			inNetns(t, o, "ip", "link", "set", "kv0", "up")
			// OVS reads the veths with AF_PACKET and takes what it reads as it is: a
			// partial checksum (the UDP one of vnetd's socket, the TCP one from h) would
			// fail its check or leave it incomplete. Have the kernel complete them, as a
			// NIC would have.
			inNetns(t, u, "ethtool", "-K", "ul0", "tx", "off")
			inNetns(t, o, "ethtool", "-K", "ul1", "tx", "off")
			inNetns(t, h, "ethtool", "-K", "kv1", "tx", "off")
			inNetns(t, h, "ip", "link", "set", "kv1", "mtu", "1400")
			inNetns(t, h, "ip", "addr", "add", "10.9.0.2/24", "dev", "kv1")
			inNetns(t, h, "ip", "link", "set", "kv1", "up")
			ovs.vsctl("add-br", "brphy", "--", "set", "bridge", "brphy", "datapath_type=netdev", "--", "add-port", "brphy", "ul1")
			ovs.vsctl("add-br", "brint", "--", "set", "bridge", "brint", "datapath_type=netdev", "--", "add-port", "brint", "kv0",
				"--", "add-port", "brint", "vx0", "--", "set", "interface", "vx0", "type=vxlan",
				"options:remote_ip="+local, "options:key=42", fmt.Sprint("options:dst_port=", dstport))
			waitLink(t, o, "brphy")
			inNetns(t, o, "ip", "addr", "add", peer+"/24", "dev", "brphy")
			inNetns(t, o, "ip", "link", "set", "brphy", "up")

			var tp *vxlan.Port
			if err := doInNetns(t, u, func() (err error) {
				tp, err = vxlan.Open(vxlan.Options{Name: "vx", Local: netip.AddrPortFrom(netip.MustParseAddr(local), 0), DstPort: uint16(dstport),
					VNI: 42, Remotes: []netip.Addr{netip.MustParseAddr(peer)}, Logger: slog.New(slog.DiscardHandler)})
				return err
			}); err != nil {
				t.Fatalf("vxlan.Open in %s: %v", u, err)
			}
			t.Cleanup(func() { tp.Close() })
			sw := l2switch.New(l2switch.Config{Name: "lan0", Logger: slog.New(slog.DiscardHandler)})
			t.Cleanup(func() { sw.Close() })
			ns, err := nsstack.New(nsstack.Options{Name: "g"})
			if err != nil {
				t.Fatalf("nsstack.New: %v", err)
			}
			t.Cleanup(func() { ns.Close() })
			nic, err := ns.AddNIC(nsstack.NICConfig{Name: "eth0", MTU: 1400})
			if err != nil {
				t.Fatalf("AddNIC: %v", err)
			}
			if err := ns.AddAddress("eth0", netip.MustParsePrefix("10.9.0.1/24")); err != nil {
				t.Fatalf("AddAddress: %v", err)
			}
			for _, p := range []frame.Port{nic, tp} {
				if err := sw.AddPort(p, l2switch.PortConfig{Name: p.Info().Name}); err != nil {
					t.Fatalf("AddPort: %v", err)
				}
			}

			// OVS resolves vnetd's underlay MAC by ARP on brphy before its first
			// encapsulation; the first ping may go before that.
			if err := ping(h, "-c", "5", "10.9.0.1"); err != nil {
				t.Fatalf("ping from behind OVS to the vnetd namespace: %v\n%s", err, ovs.debug())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err = ns.Ping(ctx, netip.MustParseAddr("10.9.0.2"), 1, make([]byte, 56))
			cancel()
			if err != nil {
				t.Fatalf("ping from the vnetd namespace to behind OVS: %v\n%s", err, ovs.debug())
			}
			vxTCP(t, ns, h, 2<<20)

			fdb := ovs.appctl("fdb/show", "brint")
			vxOF := strings.TrimSpace(ovs.vsctl("get", "interface", "vx0", "ofport"))
			found := false
			for _, l := range strings.Split(fdb, "\n") {
				f := strings.Fields(l)
				found = found || (len(f) >= 3 && f[0] == vxOF && f[2] == nic.MAC().String())
			}
			if !found {
				t.Fatalf("OVS did not learn %s behind vx0 (ofport %s); ovs-appctl fdb/show brint:\n%s", nic.MAC(), vxOF, fdb)
			}
			learned := false
			for _, m := range tp.MACs() {
				learned = learned || m.Remote == netip.MustParseAddr(peer)
			}
			if !learned {
				t.Fatalf("vnetd learned no MAC behind %s: %+v", peer, tp.MACs())
			}
			if s := tp.Stats(); s.RxMalformed+s.RxBadVNI+s.RxOversize+s.TxOversize+s.TxErrors != 0 {
				t.Fatalf("tunnel drops: %+v", s)
			}
		})
	}
}

// ovsInstance is an ovsdb-server and ovs-vswitchd started in a netns from a private
// run directory.
type ovsInstance struct {
	t   *testing.T
	ns  string
	dir string
}

// startOVS starts ovsdb-server and ovs-vswitchd inside netns ns, with their database,
// sockets, pid and log files in a private directory, and stops them when the test
// ends. Nothing touches the host's OVS (if any) or loads a kernel module: bridges are
// to be made with datapath_type=netdev.
func startOVS(t *testing.T, ns string) *ovsInstance {
	t.Helper()
	// Short: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "vxovs")
	if err != nil {
		t.Fatalf("MkdirTemp: %v", err)
	}
	o := &ovsInstance{t: t, ns: ns, dir: dir}
	t.Cleanup(func() {
		for _, d := range []string{"ovs-vswitchd", "ovsdb-server"} {
			b, err := os.ReadFile(filepath.Join(dir, d+".pid"))
			if err != nil {
				continue
			}
			var pid int
			if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGTERM)
				for i := 0; i < 50 && syscall.Kill(pid, 0) == nil; i++ {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}
		if t.Failed() {
			t.Logf("OVS logs left in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	if out, err := o.cmd("ovsdb-tool", "create", filepath.Join(dir, "conf.db"), "/usr/share/openvswitch/vswitch.ovsschema"); err != nil {
		t.Fatalf("ovsdb-tool create: %v: %s", err, out)
	}
	if out, err := o.cmd("ip", "netns", "exec", ns, "ovsdb-server", filepath.Join(dir, "conf.db"), "--remote=punix:"+filepath.Join(dir, "db.sock"),
		"--pidfile="+filepath.Join(dir, "ovsdb-server.pid"), "--unixctl="+filepath.Join(dir, "ovsdb-server.ctl"),
		"--log-file="+filepath.Join(dir, "ovsdb-server.log"), "-vconsole:off", "--detach"); err != nil {
		t.Fatalf("ovsdb-server: %v: %s", err, out)
	}
	o.vsctl("--no-wait", "init")
	if out, err := o.cmd("ip", "netns", "exec", ns, "ovs-vswitchd", "unix:"+filepath.Join(dir, "db.sock"),
		"--pidfile="+filepath.Join(dir, "ovs-vswitchd.pid"), "--unixctl="+filepath.Join(dir, "ovs-vswitchd.ctl"),
		"--log-file="+filepath.Join(dir, "ovs-vswitchd.log"), "-vconsole:off", "--detach"); err != nil {
		t.Fatalf("ovs-vswitchd: %v: %s", err, out)
	}
	return o
}

// cmd runs a command with OVS's directories pointed at the private one.
func (o *ovsInstance) cmd(args ...string) (string, error) {
	c := exec.Command(args[0], args[1:]...)
	c.Env = append(os.Environ(), "OVS_RUNDIR="+o.dir, "OVS_LOGDIR="+o.dir, "OVS_DBDIR="+o.dir, "OVS_SYSCONFDIR="+o.dir)
	out, err := c.CombinedOutput()
	return string(out), err
}

func (o *ovsInstance) vsctl(args ...string) string {
	o.t.Helper()
	out, err := o.cmd(append([]string{"ovs-vsctl", "--db=unix:" + filepath.Join(o.dir, "db.sock"), "--timeout=10"}, args...)...)
	if err != nil {
		o.t.Fatalf("ovs-vsctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

func (o *ovsInstance) appctl(args ...string) string {
	o.t.Helper()
	out, err := o.cmd(append([]string{"ip", "netns", "exec", o.ns, "ovs-appctl", "-t", filepath.Join(o.dir, "ovs-vswitchd.ctl")}, args...)...)
	if err != nil {
		o.t.Fatalf("ovs-appctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

// debug returns what OVS knows about its tunnels, for a failure message.
func (o *ovsInstance) debug() string {
	var b strings.Builder
	for _, a := range [][]string{{"ovs/route/show"}, {"tnl/arp/show"}, {"tnl/ports/show"}, {"dpctl/dump-flows"}} {
		out, _ := o.cmd(append([]string{"ip", "netns", "exec", o.ns, "ovs-appctl", "-t", filepath.Join(o.dir, "ovs-vswitchd.ctl")}, a...)...)
		fmt.Fprintf(&b, "ovs-appctl %s:\n%s\n", strings.Join(a, " "), out)
	}
	return b.String()
}

// waitLink waits up to 5s for link dev to appear in netns ns.
func waitLink(t *testing.T, ns, dev string) {
	t.Helper()
	for i := 0; i < 50; i++ {
		if _, err := nsCommand(ns, "ip", "link", "show", dev); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("link %s did not appear in %s", dev, ns)
}
