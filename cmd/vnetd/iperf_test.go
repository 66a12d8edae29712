package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd/internal/testwait"
	"github.com/vnetd/vnetd/iperf"
)

// needIperf3 returns the iperf3 binary, skipping (or failing under
// VNETD_INTEGRATION=1) when it is not installed.
func needIperf3(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("iperf3")
	if err == nil {
		return p
	}
	if os.Getenv("VNETD_INTEGRATION") == "1" {
		t.Fatalf("test needs iperf3 (apt-get install iperf3), VNETD_INTEGRATION=1 set")
	}
	t.Skip("needs iperf3 (apt-get install iperf3); set VNETD_INTEGRATION=1 to make this a failure")
	return ""
}

// iperfForwardPort is the host port of the default lab's iperf3 forwards in src.
func iperfForwardPort(t *testing.T, src string) string {
	t.Helper()
	m := regexp.MustCompile(`listen = "127\.0\.0\.1:(\d+)"\nnamespace = "gamma"\ntarget = "10\.0\.1\.10:5201"`).FindStringSubmatch(src)
	if m == nil {
		t.Fatal("the default lab has no forward to gamma's iperf3 service")
	}
	return m[1]
}

// TestRealIperf3ThroughForward: the real iperf3 client on the host measures gamma's
// iperf3 service through the default lab's forwards on 127.0.0.1 (TCP, reverse, UDP,
// two streams), its -J output parsed.
func TestRealIperf3ThroughForward(t *testing.T) {
	bin := needIperf3(t)
	src := defaultLabForTest(t)
	port := iperfForwardPort(t, src)
	sock := runDaemon(t, src)
	for _, extra := range [][]string{nil, {"-R"}, {"-u", "-b", "20M"}, {"-u", "-b", "20M", "-R"}, {"-P", "2"}} {
		args := append([]string{"-c", "127.0.0.1", "-p", port, "-t", "1", "-J"}, extra...)
		out, err := exec.Command(bin, args...).Output()
		var r struct {
			Error string
			End   struct {
				SumSent     struct{ Bytes int64 } `json:"sum_sent"`
				SumReceived struct{ Bytes int64 } `json:"sum_received"`
				Sum         struct{ Bytes, Packets int64 }
				Streams     []json.RawMessage
			}
		}
		if jerr := json.Unmarshal(out, &r); err != nil || jerr != nil || r.Error != "" {
			t.Fatalf("iperf3 %s = %v, %v, %q\n%s", strings.Join(args, " "), err, jerr, r.Error, out)
		}
		udp := len(extra) > 0 && extra[0] == "-u"
		if udp && (r.End.Sum.Bytes <= 0 || r.End.Sum.Packets <= 0) || !udp && (r.End.SumSent.Bytes <= 0 || r.End.SumReceived.Bytes <= 0) {
			t.Errorf("iperf3 %s: end = %+v, want bytes > 0", strings.Join(args, " "), r.End)
		}
		if want := 1 + strings.Count(strings.Join(extra, " "), "-P"); len(r.End.Streams) != want {
			t.Errorf("iperf3 %s: %d streams, want %d", strings.Join(args, " "), len(r.End.Streams), want)
		}
		t.Logf("iperf3 %s: sent %d, received %d bytes (udp %d)", strings.Join(extra, " "), r.End.SumSent.Bytes, r.End.SumReceived.Bytes, r.End.Sum.Bytes)
	}
	code, out, errs := run(t, "status", "-s", sock, "--json")
	if code != 0 || !strings.Contains(out, `"iperf3":[{"listen":":5201","counters":{"tests":5`) {
		t.Errorf("vnetd status --json = %d, %s %s; want gamma's iperf3 service with 5 tests", code, out, errs)
	}
}

// TestIperfCommand: `vnetd iperf` from alpha measures gamma's iperf3 service across
// r1 (TCP, reverse, UDP, two streams; text and JSON), and refuses bad requests.
func TestIperfCommand(t *testing.T) {
	sock := runDaemon(t, defaultLabForTest(t))
	code, out, errs := run(t, "iperf", "-s", sock, "alpha", "10.0.1.10", "-t", "1")
	if code != 0 || !strings.Contains(out, "TCP alpha -> 10.0.1.10:5201") || !strings.Contains(out, "receiver") {
		t.Fatalf("vnetd iperf alpha 10.0.1.10 = %d, %q, %q", code, out, errs)
	}
	t.Logf("vnetd iperf alpha 10.0.1.10 -t 1:\n%s", out)
	for _, extra := range [][]string{{"-R"}, {"-u", "-b", "20M"}, {"-u", "-b", "20M", "-R"}, {"-P", "2"}} {
		args := append([]string{"iperf", "-s", sock, "alpha", "10.0.1.10", "-t", "1", "--json"}, extra...)
		code, out, errs := run(t, args...)
		var rep iperf.Report
		if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Sum.SentBytes <= 0 || rep.Sum.ReceivedBytes <= 0 {
			t.Fatalf("vnetd %s = %d, %q, %q; want bytes both sides", strings.Join(args, " "), code, out, errs)
		}
		if rep.Protocol == "udp" && rep.Sum.Packets == 0 {
			t.Errorf("vnetd %s: no packets counted: %+v", strings.Join(args, " "), rep.Sum)
		}
		t.Logf("vnetd iperf %s: %.0f bit/s sent, %.0f received", strings.Join(extra, " "), rep.Sum.SentBps, rep.Sum.ReceivedBps)
	}
	if code, _, errs := run(t, "iperf", "-s", sock, "alpha", "not-an-address"); code != 2 || !strings.Contains(errs, "address") {
		t.Errorf("vnetd iperf alpha not-an-address = %d, %q; want exit 2 naming the address", code, errs)
	}
	if code, _, errs := run(t, "iperf", "-s", sock, "nosuch", "10.0.1.10"); code != 1 || !strings.Contains(errs, "nosuch") {
		t.Errorf("vnetd iperf nosuch ... = %d, %q; want exit 1 naming the namespace", code, errs)
	}
	if code, _, errs := run(t, "iperf", "-s", sock, "alpha", "10.0.1.10", "-P", "17", "-t", "1"); code != 1 || !strings.Contains(errs, "server error 6") {
		t.Errorf("vnetd iperf -P 17 = %d, %q; want the service's refusal (more than max_streams 16)", code, errs)
	}
}

// TestIperfCommandAgainstRealServer: `vnetd iperf` from alpha measures a real
// `iperf3 -s` on the host's 127.0.0.1 through gateway gw0's alias 10.0.2.2.
func TestIperfCommandAgainstRealServer(t *testing.T) {
	bin := needIperf3(t)
	sock := runDaemon(t, defaultLabForTest(t))
	port := freeTCPUDPPort(t)
	cmd := exec.Command(bin, "-s", "-B", "127.0.0.1", "-p", fmt.Sprint(port))
	var serverOut strings.Builder
	cmd.Stdout, cmd.Stderr = &serverOut, &serverOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("iperf3 -s said:\n%s", serverOut.String())
		}
	}()
	testwait.EventuallyNoError(t, 5*time.Second, func() error {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err
	}, "iperf3 -s to listen on port %d", port)
	time.Sleep(300 * time.Millisecond) // it reads the probe's missing cookie, then listens anew
	for _, extra := range [][]string{nil, {"-R"}, {"-u", "-b", "10M"}} {
		args := append([]string{"iperf", "-s", sock, "alpha", "10.0.2.2", "-p", fmt.Sprint(port), "-t", "1", "--json"}, extra...)
		var code int
		var out, errs string
		for range 10 { // the real server takes one test at a time and listens anew between tests
			if code, out, errs = run(t, args...); code == 0 || !strings.Contains(errs, "busy") && !strings.Contains(errs, "refused") && !strings.Contains(errs, "EOF") {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		var rep iperf.Report
		if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Sum.SentBytes <= 0 || rep.Sum.ReceivedBytes <= 0 {
			t.Fatalf("vnetd %s = %d, %q, %q; want bytes both sides", strings.Join(args, " "), code, out, errs)
		}
		t.Logf("vnetd iperf alpha -> real iperf3 -s %s: %.0f bit/s sent, %.0f received", strings.Join(extra, " "), rep.Sum.SentBps, rep.Sum.ReceivedBps)
	}
}
