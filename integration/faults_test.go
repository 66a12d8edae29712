package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runVnetd starts the built binary with cfg (inside netns ns when ns is set) and
// returns its stderr; it is killed when the test ends.
func runVnetd(t *testing.T, bin, ns, cfg string) (*exec.Cmd, <-chan struct{}, *syncBuffer) {
	t.Helper()
	args := []string{bin, "run", "-c", cfg}
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	var stderr syncBuffer
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", args, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	return cmd, exited, &stderr
}

// eventually polls ok every 50 ms for up to d.
func eventually(t *testing.T, d time.Duration, what string, ok func() bool, log *syncBuffer) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; vnetd's output:\n%s", d, what, log.String())
		}
	}
}

// TestTAPDeletedAndRecreated runs vnetd inside a netns with an attached TAP and pings
// through it; the TAP is deleted under load (the port goes down, logged once) and
// created again: vnetd reopens it by itself (logged once) and the pings get through
// again, without a reload or a restart.
func TestTAPDeletedAndRecreated(t *testing.T) {
	needRoot(t)
	bin := buildVnetd(t)
	ns := newNetns(t, "reopen")
	dir := t.TempDir()
	sock := filepath.Join(dir, "vnetd.sock")
	tapDev := tapName(t, "vr")
	mkTAP := func() {
		inNetns(t, ns, "ip", "tuntap", "add", "dev", tapDev, "mode", "tap")
		inNetns(t, ns, "ip", "addr", "add", "10.9.0.1/24", "dev", tapDev)
		inNetns(t, ns, "ip", "link", "set", tapDev, "up")
	}
	mkTAP()
	cfg := filepath.Join(dir, "lab.toml")
	lab := fmt.Sprintf(`
[daemon]
control = %q
[[switch]]
name = "lan0"
[[tap]]
name = %q
switch = "lan0"
create = false
[[namespace]]
name = "alpha"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.9.0.10/24"]
`, sock, tapDev)
	if err := os.WriteFile(cfg, []byte(lab), 0o600); err != nil {
		t.Fatal(err)
	}
	_, exited, log := runVnetd(t, bin, ns, cfg)
	ping := func(n string) error {
		_, err := nsCommand(ns, "ping", "-c", n, "-W", "1", "-i", "0.2", "10.9.0.10")
		return err
	}
	eventually(t, 20*time.Second, "a ping through the TAP", func() bool { return ping("1") == nil }, log)

	// Load: pings every 10 ms for the whole test, bounded by count and time.
	load := exec.Command("ip", "netns", "exec", ns, "ping", "-q", "-i", "0.01", "-c", "3000", "-w", "60", "10.9.0.10")
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { load.Process.Kill(); load.Wait() }()
	time.Sleep(300 * time.Millisecond)

	inNetns(t, ns, "ip", "link", "del", tapDev)
	eventually(t, 10*time.Second, "the TAP reported gone", func() bool { return strings.Contains(log.String(), "device gone") }, log)
	time.Sleep(500 * time.Millisecond) // a few reopen attempts fail meanwhile
	mkTAP()
	eventually(t, 15*time.Second, "the TAP reopened", func() bool { return strings.Contains(log.String(), "device back") }, log)
	eventually(t, 15*time.Second, "a ping through the recreated TAP", func() bool { return ping("1") == nil }, log)
	if err := ping("3"); err != nil {
		t.Errorf("3 pings through the recreated TAP: %v", err)
	}
	out := log.String()
	down, up := strings.Count(out, "reopening it in the background"), strings.Count(out, "device back: port up")
	if down != 1 || up != 1 {
		t.Errorf("vnetd logged the port down %d times and up %d times, want once each:\n%s", down, up, out)
	}
	select {
	case <-exited:
		t.Fatalf("vnetd exited:\n%s", out)
	default:
	}
}

// TestStartAfterSIGKILL kills the daemon with SIGKILL (its control socket file stays
// behind, nothing cleans up) and starts it again with the same config: the stale socket
// is replaced, the forward's port is free again, and the new daemon answers.
func TestStartAfterSIGKILL(t *testing.T) {
	bin := buildVnetd(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "vnetd.sock")
	cfg := filepath.Join(dir, "lab.toml")
	port := freePort(t)
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(labTOML, sock, port)), 0o600); err != nil {
		t.Fatal(err)
	}
	status := func() (string, error) {
		out, err := exec.Command(bin, "-s", sock, "status").CombinedOutput()
		return string(out), err
	}
	for round := range 3 {
		cmd, exited, log := runVnetd(t, bin, "", cfg)
		eventually(t, 20*time.Second, fmt.Sprintf("start %d answering", round+1), func() bool { _, err := status(); return err == nil }, log)
		if out, _ := status(); !strings.Contains(out, "namespace alpha") {
			t.Fatalf("start %d: status = %q, want namespace alpha", round+1, out)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		if _, err := os.Lstat(sock); err != nil {
			t.Fatalf("after SIGKILL the socket file is gone (%v): this test needs it stale", err)
		}
		if _, err := status(); err == nil {
			t.Fatalf("a killed daemon still answers")
		}
	}
}

// TestHostIfDeletedAndRecreated runs vnetd inside netns V with one end of a veth
// attached as a [[host_interface]]; the other end sits in netns K, which pings a
// vnetd namespace through it. The veth is deleted under load (the port goes down,
// logged once) and created again: vnetd attaches the new interface by itself (logged
// once) and the pings get through again, without a reload or a restart.
func TestHostIfDeletedAndRecreated(t *testing.T) {
	needRoot(t)
	bin := buildVnetd(t)
	v := newNetns(t, "hrv")
	k := newNetns(t, "hrk")
	dir := t.TempDir()
	sock := filepath.Join(dir, "vnetd.sock")
	vEnd, kEnd := tapName(t, "hv"), tapName(t, "hk")
	mkVeth := func() {
		hostifVeth(t, v, vEnd, k, kEnd)
		inNetns(t, k, "ip", "addr", "add", "10.9.2.1/24", "dev", kEnd)
	}
	mkVeth()
	cfg := filepath.Join(dir, "lab.toml")
	lab := fmt.Sprintf(`
[daemon]
control = %q
[[switch]]
name = "lan0"
[[host_interface]]
name = %q
switch = "lan0"
[[namespace]]
name = "alpha"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.9.2.10/24"]
`, sock, vEnd)
	if err := os.WriteFile(cfg, []byte(lab), 0o600); err != nil {
		t.Fatal(err)
	}
	_, exited, log := runVnetd(t, bin, v, cfg)
	ping := func(n string) error {
		_, err := nsCommand(k, "ping", "-c", n, "-W", "1", "-i", "0.2", "10.9.2.10")
		return err
	}
	eventually(t, 20*time.Second, "a ping through the host interface", func() bool { return ping("1") == nil }, log)

	// Load: pings every 10 ms for the whole test, bounded by count and time.
	load := exec.Command("ip", "netns", "exec", k, "ping", "-q", "-i", "0.01", "-c", "3000", "-w", "60", "10.9.2.10")
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { load.Process.Kill(); load.Wait() }()
	time.Sleep(300 * time.Millisecond)

	inNetns(t, v, "ip", "link", "del", vEnd) // takes the peer in K along
	eventually(t, 10*time.Second, "the host interface reported gone", func() bool { return strings.Contains(log.String(), "device gone") }, log)
	time.Sleep(500 * time.Millisecond) // a few reopen attempts fail meanwhile
	mkVeth()
	eventually(t, 15*time.Second, "the host interface attached again", func() bool { return strings.Contains(log.String(), "device back") }, log)
	eventually(t, 15*time.Second, "a ping through the recreated veth", func() bool { return ping("1") == nil }, log)
	if err := ping("3"); err != nil {
		t.Errorf("3 pings through the recreated veth: %v", err)
	}
	out := log.String()
	down, up := strings.Count(out, "reopening it in the background"), strings.Count(out, "device back: port up")
	if down != 1 || up != 1 {
		t.Errorf("vnetd logged the port down %d times and up %d times, want once each:\n%s", down, up, out)
	}
	select {
	case <-exited:
		t.Fatalf("vnetd exited:\n%s", out)
	default:
	}
}
