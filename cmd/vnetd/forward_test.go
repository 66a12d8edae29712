package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd/internal/testwait"
)

// runDaemon runs `vnetd run` in-process on src (with its control socket in a temp
// dir) until the test ends, and returns the socket path once it answers.
func runDaemon(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "vnetd.sock")
	cfg := filepath.Join(dir, "lab.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("[daemon]\ncontrol = %q\n", sock)+src), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	var logs bytes.Buffer
	go func() { exited <- Main(ctx, []string{"run", "-c", cfg}, io.Discard, &logs) }()
	t.Cleanup(func() {
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("Main(run) = %d, want 0", code)
		}
	})
	testwait.Eventually(t, 10*time.Second, func() bool { code, _, _ := run(t, "status", "-s", sock); return code == 0 },
		"vnetd run to answer on %s", sock)
	return sock
}

const forwardCLILab = `
[[switch]]
name = "lan0"
[[namespace]]
name = "beta"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.20/24", "fd00::20/64"]
  [[namespace.service]]
  kind = "echo"
`

// TestForwardCommand: vnetd forward add/list/del against a running daemon, traffic
// through the added forward (IPv4 and IPv6 listeners), exit 2 for a request the
// config checks refuse, exit 1 for a busy port or an unknown forward.
func TestForwardCommand(t *testing.T) {
	sock := runDaemon(t, forwardCLILab)
	free := func(network, host string) string {
		l, err := net.ListenPacket(network, host+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.LocalAddr().String()
	}
	// A free UDP port is very likely a free TCP port too.
	v4, v6, udp := free("udp4", "127.0.0.1"), free("udp6", "[::1]"), free("udp4", "127.0.0.1")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	tests := []struct {
		args []string
		code int
		want string // substring of stdout (code 0) or stderr
	}{
		{[]string{"forward", "add", v4, "beta", "10.0.0.20:7"}, 0, "added tcp/" + v4 + " -> 10.0.0.20:7 in beta (limit 1024)"},
		{[]string{"forward", "add", v6, "beta", "[fd00::20]:7", "--max-conns", "8"}, 0, "(limit 8)"},
		{[]string{"forward", "add", "-p", "udp", udp, "beta", "10.0.0.20:7", "--max-flows", "16", "--udp-idle", "5s"}, 0, "added udp/" + udp},
		{[]string{"forward", "add", v4, "beta", "10.0.0.20:7"}, 2, "duplicate forward tcp/" + v4},
		{[]string{"forward", "add", "127.0.0.1:1", "nope", "10.0.0.20:7"}, 2, `namespace "nope" is not defined`},
		{[]string{"forward", "add", "127.0.0.1:1", "beta", "10.0.0.20:7", "--max-flows", "4"}, 2, "max_flows applies to udp forwards"},
		{[]string{"forward", "add", "127.0.0.1:1", "beta"}, 2, "needs LISTEN NAMESPACE TARGET"},
		{[]string{"forward", "add", busy.Addr().String(), "beta", "10.0.0.20:7"}, 1, "address already in use"},
		{[]string{"forward", "frob"}, 2, `unknown verb "frob"`},
		{[]string{"forward", "del", "127.0.0.1:1"}, 1, `no such forward "tcp/127.0.0.1:1"`},
	}
	for _, tt := range tests {
		code, out, errs := run(t, append(tt.args, "-s", sock)...)
		got := out
		if tt.code != 0 {
			got = errs
		}
		if code != tt.code || !strings.Contains(got, tt.want) {
			t.Errorf("Main(%q) = %d, stdout %q, stderr %q; want %d and %q", tt.args, code, out, errs, tt.code, tt.want)
		}
	}
	for _, addr := range []string{v4, v6} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("net.Dial(%s) = %v", addr, err)
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		c.Write([]byte("hi"))
		buf := make([]byte, 2)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hi" {
			t.Errorf("echo through the forward %s = %q, %v", addr, buf, err)
		}
		c.Close()
	}

	uc, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	uc.SetDeadline(time.Now().Add(3 * time.Second))
	uc.Write([]byte("udp"))
	ubuf := make([]byte, 8)
	if n, err := uc.Read(ubuf); err != nil || string(ubuf[:n]) != "udp" {
		t.Errorf("echo through the udp forward %s = %q, %v", udp, ubuf[:n], err)
	}
	uc.Close()

	code, out, _ := run(t, "forward", "list", "-s", sock)
	for _, w := range []string{"NAME", "tcp/" + v4, "tcp/" + v6, "udp/" + udp, "runtime", "/16"} {
		if code != 0 || !strings.Contains(out, w) {
			t.Errorf("forward list = %d %q, want it to contain %q", code, out, w)
		}
	}
	code, out, _ = run(t, "status", "-s", sock)
	if !strings.Contains(out, "forward tcp/"+v4) || !strings.Contains(out, "runtime") {
		t.Errorf("status = %d %q, want the runtime forward tcp/%s listed as runtime", code, out, v4)
	}
	code, out, _ = run(t, "forward", "list", "--json", "-s", sock)
	var list []struct {
		Name   string
		Origin string
		Stats  struct{ Accepted int }
	}
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list) != 3 {
		t.Errorf("forward list --json = %d %q (%v), want 3 forwards", code, out, err)
	}

	for _, args := range [][]string{{"del", v4}, {"del", "tcp/" + v6}, {"del", "-p", "udp", udp}} {
		if code, _, errs := run(t, append(append([]string{"forward"}, args...), "-s", sock)...); code != 0 {
			t.Errorf("forward %q = %d (%s), want 0", args, code, errs)
		}
	}
	if c, err := net.DialTimeout("tcp", v4, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts after forward del", v4)
	}
	if code, out, _ := run(t, "forward", "list", "-s", sock); code != 0 || strings.Contains(out, "runtime") {
		t.Errorf("forward list after del = %d %q, want no runtime forwards", code, out)
	}
}
