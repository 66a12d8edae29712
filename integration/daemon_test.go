package integration

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vnetd/vnetd/internal/testwait"
)

// These tests run the real vnetd binary. They need no root: everything lives in
// in-process gVisor stacks and forwards bind only 127.0.0.1.

func buildVnetd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vnetd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/vnetd/vnetd/cmd/vnetd").CombinedOutput()
	if err != nil {
		t.Fatalf("go build vnetd: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

const labTOML = `
[daemon]
control = %q
[[switch]]
name = "lan0"
[[namespace]]
name = "alpha"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.10/24"]
  [[namespace.service]]
  kind = "http"
[[forward]]
listen = "127.0.0.1:%d"
namespace = "alpha"
target = "10.0.0.10:80"
`

const extraNS = `
[[namespace]]
name = "beta"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.20/24"]
`

// TestDaemonLifecycle: run, curl the forward, SIGHUP with a new namespace, SIGHUP with
// a broken file (rejected, old lab kept), SIGTERM; the socket file and the forward's
// listener must be gone afterwards.
func TestDaemonLifecycle(t *testing.T) {
	bin := buildVnetd(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "vnetd.sock")
	cfg := filepath.Join(dir, "lab.toml")
	port := freePort(t)
	base := fmt.Sprintf(labTOML, sock, port)
	if err := os.WriteFile(cfg, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	cmd := exec.Command(bin, "run", "-c", cfg)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	})
	vnetd := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"-s", sock}, args...)...).CombinedOutput()
		return string(out), err
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		if !testwait.Until(10*time.Second, ok) {
			t.Fatalf("timed out waiting for %s; stderr:\n%s", what, stderr.String())
		}
	}
	waitFor("the control socket", func() bool { _, err := vnetd("status"); return err == nil })

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/info.json", port))
	if err != nil {
		t.Fatalf("GET through the forward: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"namespace":"alpha"`) {
		t.Errorf("GET /info.json = %s, want namespace alpha", body)
	}

	os.WriteFile(cfg, []byte(base+extraNS), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor("beta after reload", func() bool { out, _ := vnetd("status"); return strings.Contains(out, "namespace beta") })
	if out, err := vnetd("ping", "beta", "10.0.0.10", "-c", "1"); err != nil {
		t.Errorf("vnetd ping beta 10.0.0.10 = %v\n%s", err, out)
	}

	os.WriteFile(cfg, []byte(base+"[[switch]]\nname = \"lan0\"\n"), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor("the rejected reload", func() bool { return strings.Contains(stderr.String(), "reload rejected") })
	if out, _ := vnetd("status"); !strings.Contains(out, "namespace beta") {
		t.Errorf("after a rejected reload status = %s, want the previous lab (beta) running", out)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("vnetd exited with %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("vnetd did not exit on SIGTERM")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("control socket left behind (Stat: %v)", err)
	}
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		c.Close()
		t.Errorf("forward listener 127.0.0.1:%d left behind", port)
	}
	if !strings.Contains(stdout.String(), "vnetd is up") {
		t.Errorf("run printed %q, want a summary starting \"vnetd is up\"", stdout.String())
	}
}

// syncBuffer is a bytes.Buffer safe to read while the child process writes it.
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
