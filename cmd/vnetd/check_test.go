package main

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/vnetd/vnetd"
)

// defaultLabForTest is the embedded default lab for runDaemon: its [daemon] header
// and control key dropped (runDaemon writes its own), its forwards moved to free ports.
func defaultLabForTest(t *testing.T) string {
	src := string(vnetd.DefaultConfig)
	src = regexp.MustCompile(`(?m)^\[daemon\]\s*$`).ReplaceAllString(src, "")
	src = regexp.MustCompile(`(?m)^control = .*$`).ReplaceAllString(src, "")
	for _, old := range []string{"127.0.0.1:8080", "127.0.0.1:8007"} {
		src = strings.Replace(src, old, fmt.Sprintf("127.0.0.1:%d", freePort(t)), 1)
	}
	// The iperf3 forwards (TCP and UDP) share one port.
	return strings.ReplaceAll(src, "127.0.0.1:5201", fmt.Sprintf("127.0.0.1:%d", freeTCPUDPPort(t)))
}

// TestCheckDefaultLab: the default lab's [[expect]] entries all pass.
func TestCheckDefaultLab(t *testing.T) {
	sock := runDaemon(t, defaultLabForTest(t))
	code, out, errs := run(t, "check", "-s", sock)
	if code != 0 || !strings.Contains(out, "4 of 4 checks passed") || !strings.Contains(out, "FROM \\ TO") {
		t.Fatalf("vnetd check on the default lab = %d, %q, %q", code, out, errs)
	}
	code, out, _ = run(t, "check", "-s", sock, "--json")
	var rs []struct {
		From, To, Detail string
		Pass             bool
	}
	if code != 0 || json.Unmarshal([]byte(out), &rs) != nil || len(rs) != 4 || rs[3].Detail != "refused" {
		t.Fatalf("vnetd check --json = %d, %q: want 4 results, the last refused", code, out)
	}
}

// TestCheckFailures: a check that does not get what it expects fails the command
// (exit 1) and is named, both ways round.
func TestCheckFailures(t *testing.T) {
	sock := runDaemon(t, impairCLILab+`
[[expect]]
from = "a"
to = "10.0.0.2"
reach = true
[[expect]]
from = "a"
to = "10.0.0.2:7"
reach = true
[[expect]]
from = "a"
to = "10.0.0.99"
reach = true
timeout = "300ms"
[[expect]]
from = "b"
to = "10.9.0.1"
reach = false
`)
	code, out, errs := run(t, "check", "-s", sock)
	for _, want := range []string{"FAIL a -> 10.0.0.2:7: want reached=true, got refused", "FAIL a -> ping 10.0.0.99: want reached=true, got timeout",
		"FAIL b -> ping 10.9.0.1: want reached=false, got replied", "1 of 4 checks passed"} {
		if !strings.Contains(out, want) {
			t.Errorf("vnetd check output lacks %q:\n%s", want, out)
		}
	}
	if code != 1 || !strings.Contains(errs, "3 of 4") {
		t.Errorf("vnetd check = %d, %q, want exit 1", code, errs)
	}
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

// freeTCPUDPPort finds a port free for both TCP and UDP on 127.0.0.1.
func freeTCPUDPPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		port := freePort(t)
		if u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// TestTraceCommand: vnetd trace prints each decision across r1 on the default lab.
func TestTraceCommand(t *testing.T) {
	sock := runDaemon(t, defaultLabForTest(t))
	run(t, "ping", "-s", sock, "alpha", "10.0.1.10", "-c", "1") // ARP and learning settle
	code, out, errs := run(t, "trace", "-s", sock, "lan0", "alpha.eth0", "--src", "10.0.0.10", "--dst", "10.0.1.10", "--proto", "tcp", "--dport", "80")
	if code != 0 || !strings.Contains(out, "router r1") || !strings.Contains(out, "final: [lan1/gamma.eth0]") {
		t.Fatalf("vnetd trace = %d, %q, %q", code, out, errs)
	}
	if code, _, errs := run(t, "trace", "-s", sock, "lan0", "alpha.eth0", "--src", "nope", "--dst", "10.0.1.10"); code != 2 || !strings.Contains(errs, "IPv4") {
		t.Errorf("vnetd trace --src nope = %d, %q, want 2", code, errs)
	}
}
