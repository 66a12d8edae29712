package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vnetd/vnetd/internal/testwait"
)

// TestVM boots real VMs (the Debian cloud kernel with a busybox initramfs built by
// vm/build.sh) under QEMU and attaches them to the real vnetd binary every way issue 7
// names: -netdev stream on a [[socket]], two VMs on one stream socket, a TAP that QEMU
// itself creates attached through [[host_interface]] (reached by a second VM on a
// stream socket of the same vnetd), and -netdev dgram. Each client VM
// gets its address from vnetd's DHCP service, pings a namespace, fetches from its http
// service, talks to its echo service, resolves names at its DNS service, reaches a
// namespace on another switch through the router and takes a SLAAC address from the
// router's advertisements. The test judges by the "VNETD-MARK" lines the guest prints
// on its serial console, never by QEMU's exit code, and checks the daemon's side too
// (lease table, FDB, ports coming and going).
func TestVM(t *testing.T) {
	needRoot(t)
	kernel, initrd := vmImage(t)
	bin := buildVnetd(t)
	accel := vmAccel(t, kernel, initrd)
	t.Logf("qemu accelerator: %s", accel)

	t.Run("stream", func(t *testing.T) {
		t.Parallel()
		testVMStream(t, bin, vmBoot{kernel: kernel, initrd: initrd, accel: accel})
	})
	t.Run("two-vms-one-socket", func(t *testing.T) {
		t.Parallel()
		testVMTwoOnOneSocket(t, bin, vmBoot{kernel: kernel, initrd: initrd, accel: accel})
	})
	t.Run("qemu-tap-host-interface", func(t *testing.T) {
		t.Parallel()
		testVMHostInterface(t, bin, vmBoot{kernel: kernel, initrd: initrd, accel: accel})
	})
	t.Run("dgram", func(t *testing.T) {
		t.Parallel()
		testVMDgram(t, bin, vmBoot{kernel: kernel, initrd: initrd, accel: accel})
	})
}

// vmLab is the lab every variant runs: namespace alpha on lan0 with http, echo, DHCP
// (a range, one static lease for vm1MAC, router and DNS options) and DNS; router r1
// between lan0 and lan1, sending IPv6 router advertisements for fd00::/64 on lan0;
// namespace gamma on lan1; gateway gw0 on lan0 whose alias 10.0.2.2 (routed by r1) is
// the host's loopback. %s is where the variant attaches its VMs.
const vmLab = `
[daemon]
control = %q
log_level = "debug"
[[switch]]
name = "lan0"
[[switch]]
name = "lan1"
[[namespace]]
name = "alpha"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.10/24", "fd00::10/64"]
  [[namespace.route]]
  to = "0.0.0.0/0"
  via = "10.0.0.1"
  [[namespace.service]]
  kind = "http"
  [[namespace.service]]
  kind = "echo"
  [[namespace.service]]
  kind = "dhcp"
  range = "10.0.0.100-10.0.0.199"
  router = "10.0.0.1"
  dns = ["10.0.0.10"]
  lease = "1h"
  static = [ { mac = "` + vm1MAC + `", address = "10.0.0.51" }, { mac = "` + vm3MAC + `", address = "10.0.0.53" } ]
  [[namespace.service]]
  kind = "dns"
  zone = "lab."
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
  kind = "http"
[[router]]
name = "r1"
  [[router.interface]]
  switch = "lan0"
  addresses = ["10.0.0.1/24", "fd00::1/64"]
  ra = true
  [[router.interface]]
  switch = "lan1"
  addresses = ["10.0.1.1/24"]
  [[router.route]]
  to = "10.0.2.2/32"
  via = "10.0.0.2"
[[gateway]]
name = "gw0"
switch = "lan0"
addresses = ["10.0.0.2/24"]
host = "10.0.2.2"
allow = ["127.0.0.0/8"]
%s`

const (
	vm1MAC = "52:54:00:00:00:51" // static lease 10.0.0.51
	vm2MAC = "52:54:00:00:00:52"
	vm3MAC = "52:54:00:00:00:53" // static lease 10.0.0.53

	// vmClientSteps: lease, hold (the test looks at the daemon while the VM surely
	// runs, then releases it), then against alpha ping, http (the body must name the VM's
	// leased address as the client), echo and DNS (A and AAAA); gamma on lan1 through
	// r1 (the DHCP router option) by ping and http; a SLAAC address in fd00::/64 from
	// r1's router advertisements and a ping to alpha over IPv6.
	vmClientSteps = "dhcp,hold,ping:10.0.0.10,http:10.0.0.10,echo:10.0.0.10,dns:alpha.lab@10.0.0.10," +
		"dns6:alpha.lab@10.0.0.10,ping:10.0.1.10,http:10.0.1.10,slaac:fd00:,ping6:fd00::10"

	// vmTimeout bounds one VM from QEMU's start to its "end" marker; the guest powers
	// itself off after vmGuestTimeout whatever happens.
	vmTimeout      = 150 * time.Second
	vmGuestTimeout = 120
)

func testVMStream(t *testing.T, bin string, boot vmBoot) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vm.sock")
	d := startVnetdLab(t, bin, dir, fmt.Sprintf("[[socket]]\npath = %q\nswitch = \"lan0\"\nprotocol = \"stream\"\n", sock), "")

	// A page on the host's loopback, fetched through gw0's alias 10.0.2.2 (the VM's
	// default router r1 routes the alias to gw0).
	hostLn, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	page := "vnetd-host-" + strings.ReplaceAll(filepath.Base(dir), "/", "")
	hostSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s from %s", page, r.RemoteAddr[:strings.LastIndex(r.RemoteAddr, ":")])
	})}
	go hostSrv.Serve(hostLn)
	t.Cleanup(func() { hostSrv.Close() })
	url := fmt.Sprintf("http://10.0.2.2:%d/page", hostLn.Addr().(*net.TCPAddr).Port)

	v := startVM(t, boot, vmSpec{
		name:   "vm-stream",
		netdev: "stream,id=n0,server=off,addr.type=unix,addr.path=" + sock,
		mac:    vm2MAC,
		steps:  vmClientSteps + ",get:" + url,
	})
	lease := v.until(t, "dhcp-ok")
	v.until(t, "hold")
	// The VM is running: its MAC must be learned on a port of the socket.
	port := d.fdbPort(t, "lan0", vm2MAC)
	if !strings.HasPrefix(port, "sock:") {
		t.Errorf("fdb lan0: %s on port %q, want a sock: port", vm2MAC, port)
	}
	v.release(t)
	res := v.finish(t)
	checkClientMarks(t, v, lease, res, "10.0.0.100", "10.0.0.199")
	d.checkLease(t, vm2MAC, lease[0])
	if got := res["get-ok"]; len(got) != 1 || len(got[0]) != 4 || got[0][0] != url || strings.Join(got[0][1:], " ") != page+" from 127.0.0.1" {
		t.Errorf("%s get-ok markers %q, want [%s %s from 127.0.0.1]", v.name, got, url, page)
	}

	// QEMU is gone: its port must have left the switch.
	d.waitFor(t, "the VM's port to leave lan0", func() bool {
		for _, p := range d.ports(t, "lan0") {
			if strings.HasPrefix(p, "sock:") {
				return false
			}
		}
		return true
	})
}

func testVMTwoOnOneSocket(t *testing.T, bin string, boot vmBoot) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vm.sock")
	d := startVnetdLab(t, bin, dir, fmt.Sprintf("[[socket]]\npath = %q\nswitch = \"lan0\"\nprotocol = \"stream\"\n", sock), "")
	netdev := "stream,id=n0,server=off,addr.type=unix,addr.path=" + sock

	// vm1 (static lease 10.0.0.51) answers one TCP connection on :5000; vm2 pings it
	// and sends it a random line, expecting "pong LINE" back.
	v1 := startVM(t, boot, vmSpec{name: "vm1", netdev: netdev, mac: vm1MAC, steps: "dhcp,serve"})
	v2 := startVM(t, boot, vmSpec{name: "vm2", netdev: netdev, mac: vm2MAC, steps: "dhcp,ping:10.0.0.51,hold,pong:10.0.0.51"})

	l1 := v1.until(t, "dhcp-ok")
	if l1[0] != "10.0.0.51" {
		t.Errorf("vm1 leased %s, want its static lease 10.0.0.51", l1[0])
	}
	l2 := v2.until(t, "dhcp-ok")
	if ip, err := netip.ParseAddr(l2[0]); err != nil || !inRange(ip, "10.0.0.100", "10.0.0.199") {
		t.Errorf("vm2 leased %q, want an address of 10.0.0.100-10.0.0.199", l2[0])
	}
	v2.until(t, "ping-ok")
	v2.until(t, "hold")
	// vm2 holds and vm1 waits for vm2's connection: both VMs are on the socket now,
	// each on its own port.
	p1, p2 := d.fdbPort(t, "lan0", vm1MAC), d.fdbPort(t, "lan0", vm2MAC)
	if !strings.HasPrefix(p1, "sock:") || !strings.HasPrefix(p2, "sock:") || p1 == p2 {
		t.Errorf("fdb lan0: vm1 on %q, vm2 on %q; want two different sock: ports", p1, p2)
	}
	v2.release(t)
	pong := v2.until(t, "pong-ok")
	r2 := v2.finish(t)
	r1 := v1.finish(t)
	served := r1["serve-ok"]
	if len(served) != 1 || len(served[0]) != 1 || len(pong) != 2 || served[0][0] != pong[1] {
		t.Errorf("vm1 served %q, vm2 sent %q: want the same line", served, pong)
	}
	for name, r := range map[string]map[string][][]string{"vm1": r1, "vm2": r2} {
		if _, ok := r["done"]; !ok {
			t.Errorf("%s did not finish its steps: %v", name, r)
		}
	}
	d.checkLease(t, vm1MAC, "10.0.0.51")
	d.checkLease(t, vm2MAC, l2[0])
}

func testVMHostInterface(t *testing.T, bin string, boot vmBoot) {
	dir := t.TempDir()
	ns := newNetns(t, "vm")
	const tapName = "vmtap0"
	// QEMU creates the TAP (script=no: nothing configures it) and waits, stopped (-S),
	// until vnetd has attached it; the monitor socket lets the test start the guest.
	mon := filepath.Join(dir, "mon.sock")
	v := startVM(t, boot, vmSpec{
		name:    "vm-tap",
		netns:   ns,
		netdev:  "tap,id=n0,ifname=" + tapName + ",script=no,downscript=no",
		mac:     vm3MAC,
		steps:   vmClientSteps,
		monitor: mon,
	})
	testwait.Eventually(t, 30*time.Second, func() bool {
		_, err := nsCommand(ns, "ip", "link", "show", tapName)
		return err == nil
	}, "QEMU to create %s", tapName)
	// script=no leaves the TAP down, as libvirt-less setups do: vnetd brings it up.
	if out := inNetns(t, ns, "ip", "-o", "link", "show", tapName); strings.Contains(out, ",UP") || strings.Contains(out, "<UP") {
		t.Fatalf("%s is up before vnetd attached it: %s", tapName, out)
	}

	// The same vnetd also serves a stream socket: a second VM on it must reach the
	// VM behind the TAP (host_interface port <-> VM socket port on one switch).
	sock := filepath.Join(dir, "vm.sock")
	d := startVnetdLab(t, bin, dir, fmt.Sprintf("[[host_interface]]\nname = %q\nswitch = \"lan0\"\n[[socket]]\npath = %q\nswitch = \"lan0\"\nprotocol = \"stream\"\n", tapName, sock), ns)
	if out := inNetns(t, ns, "ip", "-o", "link", "show", tapName); !strings.Contains(out, ",UP") && !strings.Contains(out, "<UP") {
		t.Errorf("%s not up after vnetd attached it: %s", tapName, out)
	}
	found := false
	for _, p := range d.ports(t, "lan0") {
		found = found || strings.Contains(p, tapName)
	}
	if !found {
		t.Errorf("lan0 ports %v: none for host interface %s", d.ports(t, "lan0"), tapName)
	}
	if out := v.monitor(t, "cont", "info status"); !strings.Contains(out, "VM status: running") {
		t.Fatalf("QEMU monitor after cont: %q, want the VM running", out)
	}
	mix := startVM(t, boot, vmSpec{
		name:   "vm-mix",
		netdev: "stream,id=n0,server=off,addr.type=unix,addr.path=" + sock,
		mac:    vm2MAC,
		steps:  "dhcp,ping:10.0.0.53",
	})

	lease := v.until(t, "dhcp-ok")
	v.until(t, "hold")
	if port := d.fdbPort(t, "lan0", vm3MAC); !strings.Contains(port, tapName) {
		t.Errorf("fdb lan0: %s on port %q, want the %s port", vm3MAC, port, tapName)
	}
	// vm-tap holds: vm-mix's ping reaches it while it surely runs.
	if m := mix.until(t, "ping-ok"); m[0] != "10.0.0.53" {
		t.Errorf("vm-mix ping-ok %q, want 10.0.0.53 (vm-tap)", m)
	}
	if r := mix.finish(t); len(r["done"]) != 1 {
		t.Errorf("vm-mix did not finish its steps")
	}
	v.release(t)
	res := v.finish(t)
	checkClientMarks(t, v, lease, res, "10.0.0.53", "10.0.0.53")
	d.checkLease(t, vm3MAC, "10.0.0.53")

	// QEMU exits and its TAP goes with it: the port goes down (or leaves the switch),
	// vnetd keeps running.
	select {
	case <-v.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("QEMU did not exit after the guest powered off")
	}
	if _, err := nsCommand(ns, "ip", "link", "show", tapName); err == nil {
		t.Errorf("%s still exists after QEMU exited", tapName)
	}
	d.waitFor(t, "the "+tapName+" port to go down", func() bool {
		for _, p := range d.portStatus(t, "lan0") {
			if strings.Contains(p.Name, tapName) && p.Up {
				return false
			}
		}
		return true
	})
	if out, err := d.run("ping", "alpha", "10.0.0.1", "-c", "1"); err != nil {
		t.Errorf("after the TAP went away: vnetd ping alpha 10.0.0.1 = %v\n%s", err, out)
	}
}

func testVMDgram(t *testing.T, bin string, boot vmBoot) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vm.sock")
	d := startVnetdLab(t, bin, dir, fmt.Sprintf("[[socket]]\npath = %q\nswitch = \"lan0\"\nprotocol = \"dgram\"\n", sock), "")
	v := startVM(t, boot, vmSpec{
		name:   "vm-dgram",
		netdev: "dgram,id=n0,local.type=unix,local.path=" + filepath.Join(dir, "qemu.sock") + ",remote.type=unix,remote.path=" + sock,
		mac:    vm1MAC,
		steps:  vmClientSteps,
	})
	lease := v.until(t, "dhcp-ok")
	v.until(t, "hold")
	if port := d.fdbPort(t, "lan0", vm1MAC); !strings.HasPrefix(port, "sock:") {
		t.Errorf("fdb lan0: %s on port %q, want a sock: port", vm1MAC, port)
	}
	v.release(t)
	res := v.finish(t)
	// vm1MAC has the static lease.
	checkClientMarks(t, v, lease, res, "10.0.0.51", "10.0.0.51")
	d.checkLease(t, vm1MAC, "10.0.0.51")
}

// checkClientMarks checks the markers of vmClientSteps: a lease from lo-hi with
// alpha's options, every step against alpha and gamma done, and the SLAAC address
// derived from the VM's MAC in r1's prefix.
func checkClientMarks(t *testing.T, v *vm, lease []string, res map[string][][]string, lo, hi string) {
	t.Helper()
	ip, err := netip.ParseAddr(lease[0])
	if err != nil || !inRange(ip, lo, hi) {
		t.Errorf("%s leased %q, want an address of %s-%s", v.name, lease[0], lo, hi)
	}
	for _, want := range []string{"mask=24", "router=10.0.0.1", "dns=10.0.0.10", "lease=3600", "server=10.0.0.10"} {
		if !contains(lease[1:], want) {
			t.Errorf("%s lease %v: no %s", v.name, lease, want)
		}
	}
	// first returns the fields of the marker name whose first field is arg.
	first := func(name, arg string) []string {
		for _, m := range res[name] {
			if len(m) > 0 && m[0] == arg {
				return m
			}
		}
		t.Errorf("%s: no %s %s marker (the serial console follows)", v.name, name, arg)
		return nil
	}
	first("ping-ok", "10.0.0.10")
	first("ping-ok", "10.0.1.10") // gamma, through r1
	for addr, ns := range map[string]string{"10.0.0.10": "alpha", "10.0.1.10": "gamma"} {
		m := first("http-ok", addr)
		if m == nil {
			continue
		}
		var info struct {
			Namespace string `json:"namespace"`
			Client    string `json:"client"`
		}
		body := strings.Join(m[1:], " ")
		if err := json.Unmarshal([]byte(body), &info); err != nil {
			t.Errorf("%s http %s body %q: %v", v.name, addr, body, err)
		}
		host, _, _ := net.SplitHostPort(info.Client)
		if info.Namespace != ns || host != lease[0] {
			t.Errorf("%s http://%s/info.json = %s; want namespace %s and client %s", v.name, addr, body, ns, lease[0])
		}
	}
	if m := first("echo-ok", "10.0.0.10"); m != nil && (len(m) != 2 || !strings.HasPrefix(m[1], "vnetd-")) {
		t.Errorf("%s echo-ok = %q, want 10.0.0.10 and the line echoed", v.name, m)
	}
	if m := first("dns-ok", "alpha.lab"); m != nil && !slices.Equal(m[1:], []string{"10.0.0.10"}) {
		t.Errorf("%s dns-ok = %q, want alpha.lab 10.0.0.10", v.name, m)
	}
	if m := first("dns6-ok", "alpha.lab"); m != nil && !slices.Equal(m[1:], []string{"fd00::10"}) {
		t.Errorf("%s dns6-ok = %q, want alpha.lab fd00::10", v.name, m)
	}
	// SLAAC: the EUI-64 interface ID from the MAC in r1's /64, r1 (link-local) as the
	// default router.
	if sl := res["slaac-ok"]; len(sl) != 1 || len(sl[0]) != 3 {
		t.Errorf("%s slaac-ok = %q, want ADDR via ROUTER", v.name, sl)
	} else {
		want := eui64(t, "fd00::", v.spec.mac)
		if got, err := netip.ParseAddr(sl[0][0]); err != nil || got != want {
			t.Errorf("%s SLAAC address %s, want %s (EUI-64 of %s in fd00::/64)", v.name, sl[0][0], want, v.spec.mac)
		}
		if r, err := netip.ParseAddr(sl[0][2]); err != nil || !r.IsLinkLocalUnicast() {
			t.Errorf("%s IPv6 default router %q, want r1's link-local address", v.name, sl[0][2])
		}
	}
	first("ping6-ok", "fd00::10")
	if _, ok := res["done"]; !ok {
		t.Errorf("%s did not finish its steps (no \"done\" marker)", v.name)
	}
}

// eui64 is the SLAAC address for mac in prefix (a /64): the MAC with ff:fe in the
// middle and the universal/local bit flipped.
func eui64(t *testing.T, prefix, mac string) netip.Addr {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr(prefix).As16()
	copy(a[8:], []byte{hw[0] ^ 2, hw[1], hw[2], 0xff, 0xfe, hw[3], hw[4], hw[5]})
	return netip.AddrFrom16(a)
}

func inRange(ip netip.Addr, lo, hi string) bool {
	return ip.Compare(netip.MustParseAddr(lo)) >= 0 && ip.Compare(netip.MustParseAddr(hi)) <= 0
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// vmImage runs vm/build.sh (it installs QEMU and busybox-static when missing and
// caches the kernel and initramfs) and returns the kernel and initramfs paths.
func vmImage(t *testing.T) (kernel, initrd string) {
	t.Helper()
	cmd := exec.Command("bash", "vm/build.sh")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if os.Getenv("VNETD_INTEGRATION") == "1" {
			t.Fatalf("vm/build.sh: %v\n%s", err, stderr.String())
		}
		t.Skipf("cannot build the test VM (vm/build.sh: %v); set VNETD_INTEGRATION=1 to make this a failure\n%s", err, stderr.String())
	}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			switch k {
			case "kernel":
				kernel = v
			case "initrd":
				initrd = v
			}
		}
	}
	if kernel == "" || initrd == "" {
		t.Fatalf("vm/build.sh printed %q, want kernel= and initrd= lines", out)
	}
	return kernel, initrd
}

// vmAccel picks QEMU's accelerator: VNETD_VM_ACCEL when set, else "kvm" when /dev/kvm
// opens and a KVM guest actually boots, else "tcg" (software emulation). The boot
// check matters: on some nested-virtualisation hosts /dev/kvm opens but a KVM guest
// hangs right after the kernel's real-mode setup ("Probing EDD") and never prints
// anything more, while TCG boots the same kernel in seconds.
func vmAccel(t *testing.T, kernel, initrd string) string {
	if a := os.Getenv("VNETD_VM_ACCEL"); a != "" {
		return a
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return "tcg"
	}
	f.Close()
	if err := kvmBoots(kernel, initrd, 20*time.Second); err != nil {
		t.Logf("/dev/kvm opens but a KVM guest does not boot (%v); using TCG", err)
		return "tcg"
	}
	return "kvm"
}

// kvmBoots boots kernel under KVM with no network and waits up to limit for the
// kernel's "Linux version" banner on the serial console (a working KVM prints it in
// well under a second), then stops QEMU.
func kvmBoots(kernel, initrd string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-M", "microvm", "-accel", "kvm", "-m", "256", "-smp", "1",
		"-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 vnetd.timeout=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cancel()
		cmd.Wait()
	}()
	sc := bufio.NewScanner(out)
	var last string
	for sc.Scan() {
		if strings.Contains(sc.Text(), "Linux version") {
			return nil
		}
		last = sc.Text()
	}
	return fmt.Errorf("no kernel banner within %v; last console line %q", limit, last)
}

type vmBoot struct{ kernel, initrd, accel string }

type vmSpec struct {
	name    string
	netns   string // run QEMU in this network namespace ("" = the test's own)
	netdev  string // -netdev argument; its id must be n0
	mac     string
	steps   string // vnetd.steps= for /init
	monitor string // when set: start stopped (-S) with an HMP monitor on this unix socket
}

// vm is one running QEMU: its serial console is scanned for "VNETD-MARK" lines.
type vm struct {
	name   string
	marks  chan []string  // one marker line's fields after "VNETD-MARK"
	stdin  io.WriteCloser // QEMU's stdin: the guest's serial console input
	exited chan struct{}
	spec   vmSpec
	start  time.Time

	mu     sync.Mutex
	serial []string
	got    map[string][][]string // markers read so far by until/finish, by name
}

// startVM starts QEMU for spec: microvm with PCIe (it boots fastest under TCG;
// tsc_early_khz spares the kernel a TSC calibration that hangs under TCG), one
// virtio-net-pci NIC on spec.netdev, the serial console on stdout. The test's cleanup
// kills QEMU if it still runs.
func startVM(t *testing.T, boot vmBoot, spec vmSpec) *vm {
	t.Helper()
	args := []string{
		"-M", "microvm,pcie=on", "-accel", boot.accel, "-m", "256", "-smp", "1",
		"-nographic", "-no-reboot",
		"-kernel", boot.kernel, "-initrd", boot.initrd,
		"-append", fmt.Sprintf("console=ttyS0 panic=-1 tsc_early_khz=2000000 vnetd.timeout=%d vnetd.steps=%s", vmGuestTimeout, spec.steps),
		"-netdev", spec.netdev,
		"-device", "virtio-net-pci,netdev=n0,mac=" + spec.mac,
	}
	if spec.monitor != "" {
		args = append(args, "-S", "-monitor", "unix:"+spec.monitor+",server=on,wait=off")
	}
	var cmd *exec.Cmd
	if spec.netns != "" {
		// ip netns exec execs QEMU itself: killing this process kills QEMU.
		cmd = exec.Command("ip", append([]string{"netns", "exec", spec.netns, "qemu-system-x86_64"}, args...)...)
	} else {
		cmd = exec.Command("qemu-system-x86_64", args...)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	v := &vm{name: spec.name, spec: spec, stdin: stdin, marks: make(chan []string, 256), exited: make(chan struct{}), got: map[string][][]string{}}
	v.start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start qemu for %s: %v", spec.name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			v.mu.Lock()
			v.serial = append(v.serial, line)
			v.mu.Unlock()
			if _, m, ok := strings.Cut(line, "VNETD-MARK "); ok {
				v.marks <- strings.Fields(m)
			}
		}
		cmd.Wait()
		close(v.marks)
		close(v.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-v.exited
		if t.Failed() {
			t.Logf("%s serial console:\n%s", v.name, v.console())
		}
	})
	return v
}

func (v *vm) console() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return strings.Join(v.serial, "\n")
}

// next returns the next marker, or nil when QEMU exited or the VM's time is up.
func (v *vm) next(t *testing.T) []string {
	t.Helper()
	select {
	case m, ok := <-v.marks:
		if !ok {
			return nil
		}
		v.mu.Lock()
		v.got[m[0]] = append(v.got[m[0]], m[1:])
		v.mu.Unlock()
		t.Logf("%s +%.1fs: VNETD-MARK %s", v.name, time.Since(v.start).Seconds(), strings.Join(m, " "))
		return m
	case <-time.After(time.Until(v.start.Add(vmTimeout))):
		return nil
	}
}

// until reads markers until name and returns its fields; a "fail" marker, the end of
// the run or the timeout ends the test.
func (v *vm) until(t *testing.T, name string) []string {
	t.Helper()
	for {
		m := v.next(t)
		switch {
		case m == nil:
			t.Fatalf("%s: no %q marker within %v (QEMU exited or timed out)", v.name, name, vmTimeout)
		case m[0] == name:
			return m[1:]
		case m[0] == "fail":
			t.Fatalf("%s: VNETD-MARK %s", v.name, strings.Join(m, " "))
		case m[0] == "end":
			t.Fatalf("%s ended without %q", v.name, name)
		}
	}
}

// finish reads markers until "end" and returns every marker of the run by name (each
// occurrence's fields, in order). Any "fail" marker, or no "end" in time, fails the test.
func (v *vm) finish(t *testing.T) map[string][][]string {
	t.Helper()
	for {
		m := v.next(t)
		if m == nil {
			t.Errorf("%s: no \"end\" marker within %v (QEMU exited or timed out)", v.name, vmTimeout)
			break
		}
		if m[0] == "fail" {
			t.Errorf("%s: VNETD-MARK %s", v.name, strings.Join(m, " "))
		}
		if m[0] == "end" {
			break
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	res := make(map[string][][]string, len(v.got))
	for k, m := range v.got {
		res[k] = m
	}
	return res
}

// release ends the guest's "hold" step: one line on its serial console.
func (v *vm) release(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(v.stdin, "go\n"); err != nil {
		t.Fatalf("%s: write to the serial console: %v", v.name, err)
	}
	v.until(t, "hold-ok")
}

// monitor runs HMP commands one after the other on QEMU's monitor socket and returns
// everything the monitor printed.
func (v *vm) monitor(t *testing.T, commands ...string) string {
	t.Helper()
	var c net.Conn
	testwait.Eventually(t, 30*time.Second, func() bool {
		var err error
		c, err = net.Dial("unix", v.spec.monitor)
		return err == nil
	}, "QEMU's monitor socket")
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	var seen strings.Builder
	buf := make([]byte, 4096)
	// prompts waits for the n-th "(qemu) " prompt since the connection opened.
	prompts := func(n int) {
		for strings.Count(seen.String(), "(qemu) ") < n {
			k, err := c.Read(buf)
			seen.Write(buf[:k])
			if err != nil {
				t.Fatalf("monitor %q: %v (read %q)", commands, err, seen.String())
			}
		}
	}
	prompts(1)
	for i, cmd := range commands {
		if _, err := fmt.Fprintf(c, "%s\n", cmd); err != nil {
			t.Fatalf("monitor %s: %v", cmd, err)
		}
		prompts(i + 2)
	}
	return seen.String()
}

// vnetdProc is a running vnetd and its control socket.
type vnetdProc struct {
	bin, sock string
	stderr    *syncBuffer
}

// startVnetdLab writes vmLab with attach appended and runs vnetd on it, inside netns
// when it is not "", until the test ends; it returns once the control API answers.
func startVnetdLab(t *testing.T, bin, dir, attach, netns string) *vnetdProc {
	t.Helper()
	sock := filepath.Join(dir, "vnetd.sock")
	cfg := filepath.Join(dir, "lab.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(vmLab, sock, attach)), 0o600); err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if netns != "" {
		cmd = exec.Command("ip", "netns", "exec", netns, bin, "run", "-c", cfg)
	} else {
		cmd = exec.Command(bin, "run", "-c", cfg)
	}
	d := &vnetdProc{bin: bin, sock: sock, stderr: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = d.stderr, d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("vnetd did not exit on SIGINT")
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("vnetd output:\n%s", d.stderr.String())
		}
	})
	d.waitFor(t, "vnetd's control socket", func() bool {
		select {
		case <-exited:
			t.Fatalf("vnetd exited: %s", d.stderr.String())
		default:
		}
		_, err := d.run("status")
		return err == nil
	})
	return d
}

func (d *vnetdProc) run(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, d.bin, append([]string{"-s", d.sock}, args...)...).Output()
}

func (d *vnetdProc) waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	testwait.Eventually(t, 15*time.Second, ok, "%s", what)
}

// getJSON runs a read command with --json into v.
func (d *vnetdProc) getJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out, err := d.run(append(args, "--json")...)
	if err != nil {
		t.Fatalf("vnetd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("vnetd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// ports lists the port names on switch sw.
func (d *vnetdProc) ports(t *testing.T, sw string) []string {
	t.Helper()
	var out []string
	for _, p := range d.portStatus(t, sw) {
		out = append(out, p.Name)
	}
	return out
}

type portStatus struct {
	Name string `json:"name"`
	Up   bool   `json:"up"`
}

// portStatus lists the ports on switch sw with their link state.
func (d *vnetdProc) portStatus(t *testing.T, sw string) []portStatus {
	t.Helper()
	var st struct {
		Switches []struct {
			Name  string       `json:"name"`
			Ports []portStatus `json:"ports"`
		} `json:"switches"`
	}
	d.getJSON(t, &st, "status")
	for _, s := range st.Switches {
		if s.Name == sw {
			return s.Ports
		}
	}
	t.Fatalf("vnetd status: no switch %q", sw)
	return nil
}

// fdbPort returns the port switch sw learned mac on ("" when it did not).
func (d *vnetdProc) fdbPort(t *testing.T, sw, mac string) string {
	t.Helper()
	var fdb []struct {
		MAC  string `json:"mac"`
		Port string `json:"port"`
	}
	d.getJSON(t, &fdb, "fdb", sw)
	for _, e := range fdb {
		if strings.EqualFold(e.MAC, mac) {
			return e.Port
		}
	}
	return ""
}

// checkLease checks alpha's lease table binds mac to addr.
func (d *vnetdProc) checkLease(t *testing.T, mac, addr string) {
	t.Helper()
	var leases []struct {
		MAC     string `json:"mac"`
		Address string `json:"address"`
		Expires string `json:"expires"`
	}
	d.getJSON(t, &leases, "ns", "alpha", "leases")
	for _, l := range leases {
		if strings.EqualFold(l.MAC, mac) {
			if l.Address != addr || l.Expires == "offered" {
				t.Errorf("lease of %s = %+v, want %s acknowledged", mac, l, addr)
			}
			return
		}
	}
	t.Errorf("alpha's leases %+v: none for %s", leases, mac)
}
