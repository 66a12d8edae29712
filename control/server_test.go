package control

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vnetd/vnetd/daemon"
)

func TestMain(m *testing.M) {
	// Helper mode: act as a client of the socket in $VNETD_TEST_DIAL and print the outcome.
	if p := os.Getenv("VNETD_TEST_DIAL"); p != "" {
		var st daemon.Status
		err := NewClient(p).Get(context.Background(), "/v1/status", &st)
		if err != nil {
			os.Stdout.WriteString("refused: " + err.Error())
			os.Exit(0)
		}
		os.Stdout.WriteString("served")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func listen(t *testing.T, path string) *Server {
	t.Helper()
	d := daemon.New(daemon.Options{})
	t.Cleanup(func() { d.Close() })
	s, err := Listen(ServerOptions{Path: path, Daemon: d})
	if err != nil {
		t.Fatalf("Listen(%q) = %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSocketModeStaleAndLive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "vnetd.sock")
	s := listen(t, path)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("Stat(socket) = %v, %v; want a 0600 socket", fi.Mode(), err)
	}
	if _, err := Listen(ServerOptions{Path: path, Daemon: daemon.New(daemon.Options{})}); err == nil || !strings.Contains(err.Error(), "another vnetd") {
		t.Errorf("Listen(live socket) = %v, want \"another vnetd\"", err)
	}
	var st daemon.Status
	if err := NewClient(path).Get(context.Background(), "/v1/status", &st); err != nil {
		t.Errorf("Get(/v1/status) = %v", err)
	}
	s.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket file after Close: Stat = %v, want not exist", err)
	}
	// A stale file (nobody listening) is replaced.
	l, _ := net.Listen("unix", path)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	listen(t, path)
}

// TestPeerCredentials runs a client as another uid (needs root to switch uid): it
// must be refused, while the same uid is served.
func TestPeerCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client under another uid")
	}
	dir, err := os.MkdirTemp("", "vnetd-cred")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "vnetd.sock")
	listen(t, path)
	// Let uid 65534 reach the socket file so only SO_PEERCRED stands in the way.
	os.Chmod(path, 0o666)
	// The test binary sits in a private build directory; copy it where uid 65534 can run it.
	self, _ := os.Executable()
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "client")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		uid  uint32
		want string
	}{
		{"same uid", 0, "served"},
		{"other uid", 65534, "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe)
			cmd.Env = append(os.Environ(), "VNETD_TEST_DIAL="+path)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: tt.uid, Gid: tt.uid}}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("client as uid %d: %v", tt.uid, err)
			}
			if !strings.HasPrefix(string(out), tt.want) {
				t.Errorf("client as uid %d: %q, want %s", tt.uid, out, tt.want)
			}
		})
	}
}

// TestSocketPathNotASocket: a regular file (a typo'd control = "config.toml") or an
// empty directory at the control path is refused by name and left untouched.
func TestSocketPathNotASocket(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(file, []byte("[daemon]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, empty} {
		s, err := Listen(ServerOptions{Path: p, Daemon: daemon.New(daemon.Options{})})
		if err == nil {
			s.Close()
			t.Fatalf("Listen(%q) = nil error, want a refusal", p)
		}
		if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "not a socket") {
			t.Errorf("Listen(%q) = %v, want an error naming the path and saying it is not a socket", p, err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "[daemon]\n" {
		t.Errorf("ReadFile(%q) = %q, %v: the file must survive untouched", file, b, err)
	}
	if fi, err := os.Stat(empty); err != nil || !fi.IsDir() {
		t.Errorf("Stat(%q) = %v, %v: the directory must survive", empty, fi, err)
	}
}

// TestReadyHoldsRequests: with Ready set, the socket is claimed at once but a request
// is answered only once Ready is closed (a client never sees a half-started lab), and
// Close releases a server that never became ready.
func TestReadyHoldsRequests(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.sock")
	ready := make(chan struct{})
	s, err := Listen(ServerOptions{Path: path, Daemon: daemon.New(daemon.Options{}), Ready: ready})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Listen(ServerOptions{Path: path, Daemon: daemon.New(daemon.Options{})}); err == nil {
		t.Fatal("a second server took the socket of one not yet ready")
	}
	answered := make(chan error, 1)
	go func() {
		var st daemon.Status
		answered <- NewClient(path).Get(context.Background(), "/v1/status", &st)
	}()
	select {
	case err := <-answered:
		t.Fatalf("answered before ready: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(ready)
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("after ready: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer 5 s after ready")
	}

	never, err := Listen(ServerOptions{Path: filepath.Join(t.TempDir(), "n.sock"), Daemon: daemon.New(daemon.Options{}), Ready: make(chan struct{})})
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { never.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close of a server never ready did not return")
	}
}
