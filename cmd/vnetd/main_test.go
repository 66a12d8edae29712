package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd/control"
	"github.com/vnetd/vnetd/internal/testwait"
	"go.uber.org/goleak"
)

const lab = `
[daemon]
control = "%s"
metrics = "%s"
[[switch]]
name = "lan0"
capture_ring_bytes = 1048576
[[namespace]]
name = "alpha"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.10/24"]
  [[namespace.service]]
  kind = "http"
  [[namespace.service]]
  kind = "dhcp"
  range = "10.0.0.100-10.0.0.110"
[[namespace]]
name = "beta"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.20/24"]
  [[namespace.service]]
  kind = "echo"
[[router]]
name = "r1"
  [[router.interface]]
  switch = "lan0"
  addresses = ["10.0.0.1/24"]
`

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestCLIAgainstRunningDaemon starts `vnetd run` in-process on a temp socket and
// drives every read command against it, then stops it and checks nothing is left.
func TestCLIAgainstRunningDaemon(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	sock := filepath.Join(dir, "vnetd.sock")
	cfg := filepath.Join(dir, "lab.toml")
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metrics := ml.Addr().String()
	ml.Close()
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(lab, sock, metrics)), 0o600); err != nil {
		t.Fatal(err)
	}
	notify := filepath.Join(dir, "notify.sock")
	nl, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	t.Setenv("NOTIFY_SOCKET", notify)

	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	var runOut, runErr bytes.Buffer
	go func() { exited <- Main(ctx, []string{"run", "-c", cfg}, &runOut, &runErr) }()
	nl.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, err := nl.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		cancel()
		<-exited
		t.Fatalf("sd_notify: got %q, %v; want READY=1 (stderr: %s)", buf[:n], err, runErr.String())
	}
	defer func() {
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("Main(run) = %d, want 0; stderr: %s", code, runErr.String())
		}
		if _, err := os.Stat(sock); !os.IsNotExist(err) {
			t.Errorf("control socket %s still exists after shutdown (Stat err %v)", sock, err)
		}
	}()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}

	tests := []struct {
		args []string
		code int
		want []string // substrings of stdout
	}{
		{[]string{"-s", sock, "ping", "alpha", "10.0.0.20", "-c", "2"}, 0, []string{"icmp_seq=2", "0% packet loss"}},
		{[]string{"status", "-s", sock}, 0, []string{"switch lan0", "alpha.eth0", "namespace beta", "echo :7", "  nic eth0", "vlan untagged", "dhcp on eth0", "capture ring "}},
		{[]string{"fdb", "lan0", "-s", sock}, 0, []string{"VLAN", "alpha.eth0", "beta.eth0"}},
		{[]string{"ns", "alpha", "addr", "-s", sock}, 0, []string{"eth0", "10.0.0.10/24"}},
		{[]string{"ns", "alpha", "route", "-s", sock}, 0, []string{"10.0.0.0/24"}},
		{[]string{"ns", "alpha", "neigh", "-s", sock}, 0, []string{"10.0.0.20"}},
		{[]string{"ns", "beta", "sockets", "-s", sock}, 0, []string{"LISTEN", ":7"}},
		{[]string{"ns", "beta", "sockets", "--json", "-s", sock}, 0, []string{`"proto":"tcp"`}},
		{[]string{"ns", "alpha", "leases", "-s", sock}, 0, []string{"NIC", "MAC", "ADDRESS", "EXPIRES"}},
		{[]string{"ns", "alpha", "leases", "--json", "-s", sock}, 0, []string{"[]"}},
		{[]string{"ns", "nope", "leases", "-s", sock}, 1, nil},
		{[]string{"fdb", "nope", "-s", sock}, 1, nil},
		{[]string{"ns", "alpha", "bogus", "-s", sock}, 2, nil},
		{[]string{"ping", "alpha", "10.0.0.99", "-c", "1", "-s", sock}, 1, []string{"100% packet loss"}},
		{[]string{"version", "--json"}, 0, []string{`"go":"go`}},
		{[]string{"router", "r1", "-s", sock}, 0, []string{"iface lan0", "up", "10.0.0.1/24", "TO", "10.0.0.0/24", "ADDR"}},
		{[]string{"router", "r1", "route", "--json", "-s", sock}, 0, []string{`"to":"10.0.0.0/24"`, `"connected":true`}},
		{[]string{"router", "r1", "addr", "--json", "-s", sock}, 0, []string{`"forwarded":`, `"up":true`}},
		{[]string{"router", "nope", "-s", sock}, 1, nil},
		{[]string{"router", "r1", "bogus", "-s", sock}, 2, nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := run(t, tt.args...)
			if code != tt.code {
				t.Errorf("Main(%q) = %d, want %d; stderr: %s", tt.args, code, tt.code, errs)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("Main(%q) stdout = %q, want it to contain %q", tt.args, out, w)
				}
			}
		})
	}
	t.Run("status --json", func(t *testing.T) {
		_, out, _ := run(t, "status", "--json", "-s", sock)
		var st struct {
			Switches   []struct{ Name string }
			Namespaces []struct{ Name string }
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Switches) != 1 || len(st.Namespaces) != 2 {
			t.Errorf("status --json = %s (%v), want 1 switch and 2 namespaces", out, err)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get("http://" + metrics + "/metrics")
		if err != nil {
			t.Fatalf("GET /metrics = %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, w := range []string{`vnetd_port_frames_total{direction="rx",port="alpha.eth0",switch="lan0"}`, "vnetd_namespaces 2",
			`vnetd_nic_bytes_total{direction="tx",namespace="alpha",nic="eth0"}`, `vnetd_nic_rx_by_reference_total{namespace="beta",nic="eth0"}`,
			`vnetd_router_frames_total{direction="rx",iface="lan0",router="r1"}`} {
			if !strings.Contains(string(b), w) {
				t.Errorf("GET /metrics lacks %s", w)
			}
		}
		// The pings above crossed alpha's NIC, and reached beta's by reference.
		for _, w := range []string{`vnetd_nic_frames_total{direction="rx",namespace="alpha",nic="eth0"}`,
			`vnetd_nic_frames_total{direction="tx",namespace="alpha",nic="eth0"}`, `vnetd_nic_rx_by_reference_total{namespace="beta",nic="eth0"}`} {
			m := regexp.MustCompile(regexp.QuoteMeta(w) + ` (\d+)`).FindSubmatch(b)
			if m == nil || string(m[1]) == "0" {
				t.Errorf("GET /metrics: %s = %q, want a count above 0", w, m)
			}
		}
	})
	t.Run("capture", func(t *testing.T) {
		pcap := filepath.Join(dir, "lan0.pcap")
		done := make(chan int, 1)
		var errb bytes.Buffer
		go func() {
			done <- Main(context.Background(), []string{"capture", "lan0", "--port", "beta.eth0", "-c", "2", "-w", pcap, "--format", "pcap", "-s", sock}, io.Discard, &errb)
		}()
		var code int
		testwait.Eventually(t, 10*time.Second, func() bool {
			run(t, "ping", "alpha", "10.0.0.20", "-c", "1", "-s", sock)
			select {
			case code = <-done:
				return true
			default:
				return false
			}
		}, "capture -c 2 to finish while pings cross beta.eth0")
		if code != 0 {
			t.Fatalf("capture = %d, stderr %s", code, errb.String())
		}
		f, err := os.Open(pcap)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		r, err := pcapgo.NewReader(f)
		if err != nil {
			t.Fatalf("capture file is not a pcap: %v", err)
		}
		n := 0
		for {
			data, _, err := r.ReadPacketData()
			if err != nil {
				break
			}
			if pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default); pkt.ErrorLayer() != nil {
				t.Errorf("captured frame %d does not decode: %v", n, pkt.ErrorLayer().Error())
			}
			n++
		}
		if n != 2 {
			t.Errorf("capture -c 2 wrote %d frames", n)
		}
		if code, _, errs := run(t, "capture", "nope", "-c", "1", "-w", pcap, "-s", sock); code != 1 || !strings.Contains(errs, `no switch`) && !strings.Contains(errs, "nope") {
			t.Errorf("capture of an unknown switch = %d, %q", code, errs)
		}
	})
	t.Run("capture pcapng filter ring", func(t *testing.T) {
		// The whole switch, filtered to ICMP, as pcapng: each echo request enters at
		// alpha.eth0 and each reply at beta.eth0, and the file says so.
		ng := filepath.Join(dir, "lan0.pcapng")
		done := make(chan int, 1)
		var errb bytes.Buffer
		go func() {
			done <- Main(context.Background(), []string{"capture", "lan0", "icmp", "and", "host 10.0.0.20", "-c", "4", "-w", ng, "-s", sock}, io.Discard, &errb)
		}()
		var code int
		testwait.Eventually(t, 10*time.Second, func() bool {
			run(t, "ping", "alpha", "10.0.0.20", "-c", "1", "-s", sock)
			select {
			case code = <-done:
				return true
			default:
				return false
			}
		}, "capture -c 4 to finish while pings cross lan0")
		if code != 0 {
			t.Fatalf("capture = %d, stderr %s", code, errb.String())
		}
		ports := readPcapNG(t, ng)
		seen := map[string]int{}
		for _, p := range ports {
			seen[p]++
		}
		if len(ports) != 4 || seen["alpha.eth0"] == 0 || seen["beta.eth0"] == 0 || seen["alpha.eth0"]+seen["beta.eth0"] != 4 {
			t.Errorf("pcapng frames' interfaces = %q, want requests on alpha.eth0 and replies on beta.eth0", ports)
		}
		// The ring has kept every ping of this test and the one before: dump it.
		ring := filepath.Join(dir, "ring.pcapng")
		if code, _, errs := run(t, "capture", "lan0", "--ring", "60", "icmp", "-w", ring, "-s", sock); code != 0 {
			t.Fatalf("capture --ring = %d, %s", code, errs)
		}
		if got := readPcapNG(t, ring); len(got) < 4 {
			t.Errorf("capture --ring 60 icmp: %d frames (%q), want at least the 4 just captured live", len(got), got)
		}
		// A bad filter is refused by the CLI with its column, and by the API with a 400.
		code, _, errs := run(t, "capture", "lan0", "tcp port http", "-w", ng, "-s", sock)
		if code != 2 || !strings.Contains(errs, "column 10") || !strings.Contains(errs, "         ^") {
			t.Errorf("capture with a bad filter = %d, %q; want 2 and column 10 pointed at", code, errs)
		}
		cl := control.NewClient(sock)
		defer cl.Close()
		err := cl.Capture(context.Background(), "lan0", control.CaptureOptions{Filter: "tcp port http"}, io.Discard)
		var ae *control.APIError
		if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Msg, "column 10") {
			t.Errorf("API capture with a bad filter = %v, want a 400 naming column 10", err)
		}
	})
	t.Run("reload", func(t *testing.T) {
		if code, out, errs := run(t, "reload", "-s", sock); code != 0 || !strings.Contains(out, "reloaded") {
			t.Errorf("Main(reload) = %d, %q, %q; want 0 and reloaded", code, out, errs)
		}
		good, _ := os.ReadFile(cfg)
		defer os.WriteFile(cfg, good, 0o600)
		os.WriteFile(cfg, append(good, []byte("\n[[switch]]\nname = \"lan0\"\n")...), 0o600)
		if code, _, errs := run(t, "reload", "-s", sock); code != 1 || !strings.Contains(errs, "lab.toml:") {
			t.Errorf("Main(reload of a bad file) = %d, %q; want 1 and a FILE:LINE:COL error", code, errs)
		}
		if code, _, _ := run(t, "status", "-s", sock); code != 0 {
			t.Errorf("status after a rejected reload = %d; want 0", code)
		}
	})
	t.Run("unknown API route", func(t *testing.T) {
		cl := control.NewClient(sock)
		defer cl.Close()
		_, err := cl.Raw(context.Background(), "/v1/nope")
		if err == nil || !strings.Contains(err.Error(), "no API route GET /v1/nope") {
			t.Errorf("GET /v1/nope = %v; want the JSON error naming the route", err)
		}
	})
	t.Run("second daemon on the same socket", func(t *testing.T) {
		code, _, errs := run(t, "run", "-c", cfg)
		if code != 1 || !strings.Contains(errs, "another vnetd") {
			t.Errorf("Main(run on a live socket) = %d, %q; want 1 and \"another vnetd\"", code, errs)
		}
	})
}

func TestValidate(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"validate", "../../config.toml.example"}, 0, "ok"},
		{[]string{"validate", "../../config/testdata/errors.toml"}, 2, "errors.toml:17:3: switch \"lan9\" is not defined"},
		{[]string{"validate", "/nonexistent.toml"}, 1, "no such file"},
		{[]string{"validate"}, 2, "exactly one FILE"},
		{[]string{"frobnicate"}, 2, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := run(t, tt.args...)
			if code != tt.code || !strings.Contains(out+errs, tt.want) {
				t.Errorf("Main(%q) = %d, %q; want %d and %q", tt.args, code, out+errs, tt.code, tt.want)
			}
		})
	}
}

func TestStaleSocketIsReplaced(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vnetd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // leaves the file behind, nobody listening
	cfg := filepath.Join(dir, "lab.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(lab, sock, "")), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	var errb bytes.Buffer
	go func() { exited <- Main(ctx, []string{"run", "-c", cfg}, &bytes.Buffer{}, &errb) }()
	testwait.Until(10*time.Second, func() bool { code, _, _ := run(t, "status", "-s", sock); return code == 0 })
	code, _, errs := run(t, "status", "-s", sock)
	cancel()
	if rc := <-exited; rc != 0 {
		t.Errorf("Main(run over a stale socket) = %d; stderr %s", rc, errb.String())
	}
	if code != 0 {
		t.Errorf("status after replacing a stale socket = %d, %s; want 0", code, errs)
	}
}

// TestHelp checks that every command answers -h and `help CMD` with its own synopsis
// on stdout and exit 0, and that a usage mistake is short.
func TestHelp(t *testing.T) {
	for _, c := range allCommands() {
		for _, args := range [][]string{{c.name, "-h"}, {c.name, "--help"}, {"help", c.name}} {
			code, out, errs := run(t, args...)
			if code != 0 || !strings.HasPrefix(out, "usage: vnetd "+c.name) {
				t.Errorf("Main(%q) = %d, %q, %q; want 0 and its usage", args, code, out, errs)
			}
		}
	}
	if code, out, _ := run(t, "-h"); code != 0 || !strings.Contains(out, "validate FILE") || !strings.Contains(out, "completion") {
		t.Errorf("Main(-h) = %d, %q; want 0 and the command list", code, out)
	}
	if code, out, _ := run(t, "ping", "-h"); code != 0 || !strings.Contains(out, "-c int") {
		t.Errorf("Main(ping -h) = %d, %q; want its -c flag described", code, out)
	}
	code, _, errs := run(t, "fdb")
	if lines := strings.Count(errs, "\n"); code != 2 || lines > 2 || !strings.Contains(errs, "fdb needs SWITCH") {
		t.Errorf("Main(fdb) = %d, %q; want 2 and at most two lines", code, errs)
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh"} {
		code, out, errs := run(t, "completion", shell)
		if code != 0 {
			t.Fatalf("Main(completion %s) = %d, %s", shell, code, errs)
		}
		for _, c := range allCommands() {
			if !regexp.MustCompile(`\b` + c.name + `\b`).MatchString(out) {
				t.Errorf("completion %s lacks command %q", shell, c.name)
			}
		}
		if shell == "bash" {
			if _, err := exec.LookPath("bash"); err == nil {
				cmd := exec.Command("bash", "-n")
				cmd.Stdin = strings.NewReader(out)
				if b, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("bash -n on the completion script: %v: %s", err, b)
				}
			}
		}
	}
	if code, _, _ := run(t, "completion", "fish"); code != 2 {
		t.Errorf("Main(completion fish) = %d; want 2", code)
	}
}

// readPcapNG reads a pcapng file and returns the interface (port) name of each frame.
func readPcapNG(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("%s is not a pcapng: %v", path, err)
	}
	var ports []string
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			return ports
		}
		intf, err := r.Interface(ci.InterfaceIndex)
		if err != nil {
			t.Fatalf("frame %d: no interface %d", len(ports), ci.InterfaceIndex)
		}
		if pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default); pkt.Layer(layers.LayerTypeICMPv4) == nil {
			t.Errorf("%s: frame %d on %s is not ICMP", path, len(ports), intf.Name)
		}
		ports = append(ports, intf.Name)
	}
}
