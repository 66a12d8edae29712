package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCreatedTAPAfterSIGKILL: a TAP vnetd created (create = true) goes with the
// process when it is killed with SIGKILL (vnetd's TAPs are not persistent, so the
// kernel removes them when the last descriptor closes), and the next start creates
// it again and runs; nothing is left behind to refuse the start.
func TestCreatedTAPAfterSIGKILL(t *testing.T) {
	needRoot(t)
	bin := buildVnetd(t)
	ns := newNetns(t, "kill")
	dir := t.TempDir()
	sock := filepath.Join(dir, "vnetd.sock")
	tapDev := tapName(t, "vk")
	cfg := filepath.Join(dir, "lab.toml")
	lab := fmt.Sprintf(`
[daemon]
control = %q
[[switch]]
name = "lan0"
[[tap]]
name = %q
switch = "lan0"
[[namespace]]
name = "alpha"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.9.3.10/24"]
`, sock, tapDev)
	if err := os.WriteFile(cfg, []byte(lab), 0o600); err != nil {
		t.Fatal(err)
	}
	tapExists := func() bool { _, err := nsCommand(ns, "ip", "link", "show", "dev", tapDev); return err == nil }
	status := func() error { return exec.Command(bin, "-s", sock, "status").Run() }
	for round := range 2 {
		cmd, exited, log := runVnetd(t, bin, ns, cfg)
		eventually(t, 20*time.Second, fmt.Sprintf("start %d answering", round+1), func() bool { return status() == nil }, log)
		if !tapExists() {
			t.Fatalf("start %d: TAP %s does not exist in %s; vnetd's output:\n%s", round+1, tapDev, ns, log.String())
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		eventually(t, 10*time.Second, "the killed daemon's TAP to go", func() bool { return !tapExists() }, log)
	}
}

// TestControlSocketOnFullDisk: a control socket on a file system with no inode left
// (a small tmpfs the test mounts and fills) fails the start with exit 1 and an error
// naming the socket and the cause, and leaves nothing running or half-made.
func TestControlSocketOnFullDisk(t *testing.T) {
	needRoot(t)
	bin := buildVnetd(t)
	dir := t.TempDir()
	full := filepath.Join(dir, "full")
	if err := os.Mkdir(full, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=16", "vnetd-test", full).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", full).Run() })
	for i := 0; ; i++ {
		f, err := os.Create(filepath.Join(full, fmt.Sprint("fill", i)))
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the tmpfs: %v", err)
			}
			break
		}
		f.Close()
		if i > 64 {
			t.Fatal("the tmpfs never filled")
		}
	}
	sock := filepath.Join(full, "vnetd.sock")
	cfg := filepath.Join(dir, "lab.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(labTOML, sock, freePort(t))), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-c", cfg)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("vnetd kept running with its control socket on a full disk:\n%s", out)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("vnetd run = %v, want exit 1; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), sock) || !strings.Contains(string(out), "no space left on device") {
		t.Fatalf("the error does not name the socket and the cause:\n%s", out)
	}
	if _, err := os.Lstat(sock); err == nil {
		t.Errorf("a socket file was left at %s", sock)
	}
}
