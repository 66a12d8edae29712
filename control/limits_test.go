package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vnetd/vnetd/daemon"
	"github.com/vnetd/vnetd/internal/testwait"
	"github.com/vnetd/vnetd/pcapfilter"
	l2switch "github.com/vnetd/vnetd/switch"
)

// openRequest sends one request on a new connection to s and returns the connection
// (closed at the test's end) and the answer's head; its body is left to read.
func openRequest(t *testing.T, s *Server, method, path, body string) (net.Conn, *http.Response) {
	t.Helper()
	conn, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatalf("Dial(control socket) = %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: vnetd\r\nContent-Length: %d\r\n\r\n%s", method, path, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return conn, resp
}

// wantRefused checks that resp is a 503 whose JSON error contains msg.
func wantRefused(t *testing.T, what string, resp *http.Response, msg string) {
	t.Helper()
	var body struct{ Error string }
	err := json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusServiceUnavailable || err != nil || !strings.Contains(body.Error, msg) {
		t.Errorf("%s: %s %+v (%v), want a 503 with a JSON error containing %q", what, resp.Status, body, err, msg)
	}
}

// refused is the daemon's count of API refusals of kind, as /v1/status has it and as
// /metrics has it.
func refused(t *testing.T, d *daemon.Daemon, kind string) (status, metric uint64) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{d})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	metric = 1 << 63 // not found
	for _, mf := range mfs {
		if mf.GetName() != "vnetd_api_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					metric = uint64(m.GetCounter().GetValue())
				}
			}
		}
	}
	return d.Status().API.Refused[kind], metric
}

func wantRefusedCount(t *testing.T, d *daemon.Daemon, kind string, want uint64) {
	t.Helper()
	if st, m := refused(t, d, kind); st != want || m != want {
		t.Errorf("refusals of kind %q: /v1/status api.refused %d, vnetd_api_refused_total %d; want %d", kind, st, m, want)
	}
}

// TestConnectionCap: DefaultMaxConns connections are served and held open (keep-alive);
// one more is answered 503 with a JSON error naming the cap (to a raw request and to
// the CLI's client), closed, and counted; once a connection closes, a new one is served.
func TestConnectionCap(t *testing.T) {
	s, d := listenLab(t, fuzzLab)
	var conns []net.Conn
	for i := range DefaultMaxConns {
		c, resp := openRequest(t, s, "GET", "/v1/version", "")
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("connection %d: GET /v1/version: %s, want 200", i+1, resp.Status)
		}
		conns = append(conns, c)
	}
	wantRefusedCount(t, d, RefusedConnections, 0)
	c, resp := openRequest(t, s, "GET", "/v1/version", "")
	wantRefused(t, fmt.Sprintf("connection %d", DefaultMaxConns+1), resp, "too many control connections: 256 open")
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("the refused connection stays open: read %d bytes more", n)
	}
	cl := NewClient(s.Path())
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var v Version
	var ae *APIError
	if err := cl.Get(ctx, "/v1/version", &v); !errors.As(err, &ae) || ae.Status != 503 || !strings.Contains(ae.Msg, "too many control connections") {
		t.Errorf("client GET /v1/version at the cap = %v, want the 503 naming the cap", err)
	}
	wantRefusedCount(t, d, RefusedConnections, 2)

	conns[0].Close()
	testwait.Eventually(t, 20*time.Second, func() bool {
		c, resp := openRequest(t, s, "GET", "/v1/version", "")
		defer c.Close()
		return resp.StatusCode == 200
	}, "no connection served after one of %d closed", DefaultMaxConns)
}

// TestPingStreamCap: DefaultMaxPingStreams ping streams run; one more is a 503 with a
// JSON error naming the cap, counted; once a stream's client goes away, a new stream
// is served.
func TestPingStreamCap(t *testing.T) {
	s, d := listenLab(t, overloadLab)
	const ping = "/v1/ping/alpha/10.0.0.20?count=1000"
	var conns []net.Conn
	for i := range DefaultMaxPingStreams {
		c, resp := openRequest(t, s, "GET", ping, "")
		if resp.StatusCode != 200 {
			t.Fatalf("ping stream %d: %s, want 200", i+1, resp.Status)
		}
		conns = append(conns, c)
	}
	_, resp := openRequest(t, s, "GET", ping, "")
	wantRefused(t, fmt.Sprintf("ping stream %d", DefaultMaxPingStreams+1), resp, "too many ping streams: 32 running, the cap")
	wantRefusedCount(t, d, RefusedPing, 1)
	// A bad request is still a 400, not a refusal.
	if _, resp := openRequest(t, s, "GET", "/v1/ping/alpha/10.0.0.20?count=0", ""); resp.StatusCode != 400 {
		t.Errorf("a bad ping at the cap: %s, want 400", resp.Status)
	}
	conns[0].Close()
	testwait.Eventually(t, 20*time.Second, func() bool {
		c, resp := openRequest(t, s, "GET", ping, "")
		defer c.Close()
		return resp.StatusCode == 200
	}, "no ping stream served after one of %d closed", DefaultMaxPingStreams)
}

// TestCaptureStreamRefusalsCounted: the capture stream cap's refusals are counted.
func TestCaptureStreamRefusalsCounted(t *testing.T) {
	s, d := listenLabWith(t, fuzzLab, ServerOptions{MaxCaptureStreams: 2})
	for range 2 {
		if _, _, line := openCapture(t, s); !strings.Contains(line, " 200 ") {
			t.Fatalf("capture stream: %q, want 200", line)
		}
	}
	for range 3 {
		if _, _, line := openCapture(t, s); !strings.Contains(line, " 503 ") {
			t.Fatalf("capture stream over the cap of 2: %q, want 503", line)
		}
	}
	wantRefusedCount(t, d, RefusedCapture, 3)
	wantRefusedCount(t, d, RefusedPing, 0)
	// And as a scrape of the metrics listener shows them.
	m, err := ServeMetrics("127.0.0.1:0", d, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	resp, err := http.Get("http://" + m.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`vnetd_api_refused_total{kind="capture"} 3`, `vnetd_api_refused_total{kind="connections"} 0`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics has no line %q", want)
		}
	}
}

// TestIperfRunCap: with MaxIperfRuns 1, a second test while one runs is a 503 naming
// the cap, counted; once the first client hangs up, a test runs again.
func TestIperfRunCap(t *testing.T) {
	lab := overloadLab + `
  [[namespace.service]]
  kind = "iperf3"
`
	s, d := listenLabWith(t, lab, ServerOptions{MaxIperfRuns: 1})
	tests := func() uint64 {
		for _, n := range d.Status().Namespaces {
			if n.Name == "beta" && len(n.Iperf3) > 0 {
				return n.Iperf3[0].Counters.Tests
			}
		}
		return 0
	}
	conn, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	long := `{"namespace":"alpha","addr":"10.0.0.20","time":60,"udp":true,"rate":1000000}`
	fmt.Fprintf(conn, "POST /v1/iperf HTTP/1.1\r\nHost: vnetd\r\nContent-Length: %d\r\n\r\n%s", len(long), long)
	testwait.Eventually(t, 20*time.Second, func() bool { return tests() >= 1 }, "the first iperf test never ran")

	c := NewClient(s.Path())
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	short := daemon.IperfSpec{Namespace: "alpha", Addr: "10.0.0.20", Time: 1, UDP: true, Rate: 1000000}
	var ae *APIError
	if _, err := c.Iperf(ctx, short); !errors.As(err, &ae) || ae.Status != 503 || !strings.Contains(ae.Msg, "too many iperf tests: 1 running, the cap") {
		t.Errorf("a second iperf test while one runs = %v, want the 503 naming the cap", err)
	}
	wantRefusedCount(t, d, RefusedIperf, 1)
	conn.Close() // the first test stops
	testwait.EventuallyNoError(t, 30*time.Second, func() error { _, err := c.Iperf(ctx, short); return err },
		"no iperf test ran after the first client hung up")
}

// TestCheckCap: with MaxChecks 1, a second check while one runs (an [[expect]] that
// waits 20 s for a ping nobody answers) is a 503 naming the cap, counted.
func TestCheckCap(t *testing.T) {
	lab := fuzzLab + `
[[expect]]
from = "alpha"
to = "10.0.0.99"
reach = false
timeout = "20s"
`
	s, d := listenLabWith(t, lab, ServerOptions{MaxChecks: 1})
	sw, err := d.Switch("lan0")
	if err != nil {
		t.Fatal(err)
	}
	arp, err := pcapfilter.Compile("arp")
	if err != nil {
		t.Fatal(err)
	}
	capt, err := sw.CaptureWith(l2switch.CaptureOptions{Filter: arp})
	if err != nil {
		t.Fatal(err)
	}
	defer capt.Close()
	conn, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/check HTTP/1.1\r\nHost: vnetd\r\n\r\n")
	// alpha asking for 10.0.0.99's MAC: the first check runs (and holds its place).
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	f, err := capt.Next(ctx)
	if err != nil {
		t.Fatalf("no ARP request from the running check: %v", err)
	}
	f.Buf.Release()

	c := NewClient(s.Path())
	defer c.Close()
	var ae *APIError
	if _, err := c.Check(ctx); !errors.As(err, &ae) || ae.Status != 503 || !strings.Contains(ae.Msg, "too many checks: 1 running, the cap") {
		t.Errorf("a second check while one runs = %v, want the 503 naming the cap", err)
	}
	wantRefusedCount(t, d, RefusedCheck, 1)
}

// TestConnectionCapTCP: the cap on a TCP listener (web, metrics) answers the
// connection over it with the 503 too (its request is read first, so closing it
// resets nothing before the client has the answer).
func TestConnectionCapTCP(t *testing.T) {
	_, d := newAPILab(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler(ServerOptions{Daemon: d}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(newCapListener(ln, d, 2))
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/v1/version"
	for range 2 { // two keep-alive connections, held open
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(c, "GET /v1/version HTTP/1.1\r\nHost: vnetd\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET under the cap: %v", err)
		}
	}
	for i := range 3 {
		resp, err := http.Get(url) // a new connection: the default transport's
		if err != nil {
			t.Fatalf("GET %d over the cap: %v", i+1, err)
		}
		wantRefused(t, "a third TCP connection", resp, "too many control connections: 2 open")
		resp.Body.Close()
	}
	wantRefusedCount(t, d, RefusedConnections, 3)
}
