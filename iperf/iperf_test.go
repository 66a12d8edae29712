package iperf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// hostNet runs servers and clients on the host loopback for these tests.
type hostNet struct{}

func (hostNet) Listen(network, addr string) (net.Listener, error) {
	return net.Listen(network, "127.0.0.1"+addr)
}
func (hostNet) ListenPacket(network, addr string) (net.PacketConn, error) {
	return net.ListenPacket(network, "127.0.0.1"+addr)
}
func (hostNet) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

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

// freePort finds a port free for TCP and UDP on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no port free for TCP and UDP")
	return 0
}

// iperf3JSON is the part of `iperf3 -J` the tests read.
type iperf3JSON struct {
	Error string `json:"error"`
	End   struct {
		SumSent struct {
			Bytes int64 `json:"bytes"`
		} `json:"sum_sent"`
		SumReceived struct {
			Bytes int64 `json:"bytes"`
		} `json:"sum_received"`
		Sum struct { // UDP
			Bytes   int64 `json:"bytes"`
			Packets int64 `json:"packets"`
		} `json:"sum"`
		Streams []json.RawMessage `json:"streams"`
	} `json:"end"`
}

// TestRealClientAgainstServer: the real iperf3 client measures our server over
// 127.0.0.1: TCP, reverse, UDP both ways, two parallel streams; -J parsed.
func TestRealClientAgainstServer(t *testing.T) {
	bin := needIperf3(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	port := freePort(t) // TCP and UDP on the same port, as iperf3 expects
	srv, err := Listen(hostNet{}, fmt.Sprintf(":%d", port), ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tests := []struct {
		name    string
		args    []string
		streams int
	}{
		{"tcp", nil, 1},
		{"tcp-reverse", []string{"-R"}, 1},
		{"tcp-parallel", []string{"-P", "2"}, 2},
		{"udp", []string{"-u", "-b", "20M"}, 1},
		{"udp-reverse", []string{"-u", "-b", "20M", "-R"}, 1},
		{"udp-parallel", []string{"-u", "-b", "10M", "-P", "2"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-c", "127.0.0.1", "-p", fmt.Sprint(port), "-t", "1", "-J"}, tt.args...)
			out, err := exec.Command(bin, args...).Output()
			var r iperf3JSON
			if jerr := json.Unmarshal(out, &r); err != nil || jerr != nil || r.Error != "" {
				t.Fatalf("iperf3 %s = %v, %v, %q\n%s", strings.Join(args, " "), err, jerr, r.Error, out)
			}
			if len(r.End.Streams) != tt.streams {
				t.Errorf("iperf3 %s: %d streams in the results, want %d", strings.Join(args, " "), len(r.End.Streams), tt.streams)
			}
			if strings.HasPrefix(tt.name, "udp") {
				if r.End.Sum.Bytes <= 0 || r.End.Sum.Packets <= 0 {
					t.Errorf("iperf3 %s: end.sum = %+v, want bytes and packets > 0", strings.Join(args, " "), r.End.Sum)
				}
				return
			}
			if r.End.SumSent.Bytes <= 0 || r.End.SumReceived.Bytes <= 0 {
				t.Errorf("iperf3 %s: sent %d, received %d bytes; want both > 0", strings.Join(args, " "), r.End.SumSent.Bytes, r.End.SumReceived.Bytes)
			}
		})
	}
	waitIdle(t, srv)
	c := srv.Counters()
	srv.Close()
	if c.Tests != uint64(len(tests)) || c.BytesIn == 0 || c.BytesOut == 0 || c.Active != 0 {
		t.Errorf("server counters = %+v, want %d tests, bytes both ways, none active", c, len(tests))
	}
}

// TestClientAgainstServer: our client measures our server, every mode.
func TestClientAgainstServer(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	port := freePort(t)
	srv, err := Listen(hostNet{}, fmt.Sprintf(":%d", port), ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, o := range []ClientOptions{
		{}, {Reverse: true}, {Parallel: 3}, {UDP: true, Rate: 10e6}, {UDP: true, Rate: 10e6, Reverse: true, Parallel: 2},
		{Rate: 8e6}, // paced TCP: about 1 MB in a second
	} {
		o.Addr, o.Time = fmt.Sprintf("127.0.0.1:%d", port), time.Second
		rep, err := Run(context.Background(), hostNet{}, o)
		if err != nil {
			t.Fatalf("Run(%+v) = %v", o, err)
		}
		if len(rep.Streams) != max(o.Parallel, 1) || rep.Sum.SentBytes <= 0 || rep.Sum.ReceivedBytes <= 0 || rep.Sum.ReceivedBytes > rep.Sum.SentBytes {
			t.Errorf("Run(%+v) = %+v, want %d streams, 0 < received <= sent", o, rep, max(o.Parallel, 1))
		}
		if o.UDP && (rep.Sum.Packets == 0 || rep.Sum.Lost > rep.Sum.Packets/2) {
			t.Errorf("Run(%+v): %d packets, %d lost; want packets, few lost", o, rep.Sum.Packets, rep.Sum.Lost)
		}
		if o.Rate > 0 && (rep.Sum.SentBps > 1.3*float64(o.Rate)*float64(max(o.Parallel, 1)) || rep.Sum.SentBps < 0.5*float64(o.Rate)) {
			t.Errorf("Run(%+v): sent at %.0f bit/s, want about %d per stream", o, rep.Sum.SentBps, o.Rate)
		}
	}
}

// TestClientAgainstRealServer: our client measures a real `iperf3 -s`.
func TestClientAgainstRealServer(t *testing.T) {
	bin := needIperf3(t)
	port := freePort(t)
	cmd := exec.Command(bin, "-s", "-B", "127.0.0.1", "-p", fmt.Sprint(port))
	var serverOut strings.Builder
	cmd.Stdout, cmd.Stderr = &serverOut, &serverOut
	defer func() {
		if t.Failed() {
			t.Logf("iperf3 -s said:\n%s", serverOut.String())
		}
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ { // wait for it to listen
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i == 50 {
			t.Fatalf("iperf3 -s never listened on %s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // it reads the probe's cookie and gives up first
	for _, o := range []ClientOptions{{}, {Reverse: true}, {Parallel: 2}, {UDP: true, Rate: 10e6}, {UDP: true, Rate: 10e6, Reverse: true}} {
		o.Addr, o.Time = addr, time.Second
		var rep *Report
		var err error
		for range 10 { // the real server takes one test at a time and listens anew between tests (refusing or resetting a dial meanwhile)
			if rep, err = Run(context.Background(), hostNet{}, o); !errors.Is(err, ErrBusy) && !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ECONNRESET) {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("Run(%+v) against iperf3 -s = %v", o, err)
		}
		if rep.Sum.SentBytes <= 0 || rep.Sum.ReceivedBytes <= 0 || len(rep.Streams) != max(o.Parallel, 1) {
			t.Errorf("Run(%+v) against iperf3 -s = %+v, want bytes both sides", o, rep)
		}
	}
}

// TestServerLimits: a second test beyond MaxTests is told the server is busy; a
// test asking for more streams than MaxStreams is refused; both are counted.
func TestServerLimits(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	port := freePort(t)
	srv, err := Listen(hostNet{}, fmt.Sprintf(":%d", port), ServerOptions{MaxTests: 1, MaxStreams: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if _, err := Run(context.Background(), hostNet{}, ClientOptions{Addr: addr, Time: time.Second, Parallel: 3}); err == nil || !strings.Contains(err.Error(), "server error 6") {
		t.Errorf("Run(-P 3) with MaxStreams 2 = %v, want server error 6 (too many streams)", err)
	}
	waitIdle(t, srv)
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), hostNet{}, ClientOptions{Addr: addr, Time: 2 * time.Second})
		done <- err
	}()
	for srv.Counters().Active == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := Run(context.Background(), hostNet{}, ClientOptions{Addr: addr, Time: time.Second}); !errors.Is(err, ErrBusy) {
		t.Errorf("second Run with MaxTests 1 = %v, want ErrBusy", err)
	}
	if err := <-done; err != nil {
		t.Errorf("first Run = %v", err)
	}
	if c := srv.Counters(); c.Refused != 2 || c.Tests != 1 {
		t.Errorf("counters = %+v, want 2 refused, 1 test", c)
	}
	// A client cancelled mid-test leaves nothing running.
	waitIdle(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := Run(ctx, hostNet{}, ClientOptions{Addr: addr, Time: 5 * time.Second}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled Run = %v, want context.DeadlineExceeded", err)
	}
	waitIdle(t, srv)
}

// waitIdle waits until the server has finished its tests (it reads the client's
// IPERF_DONE after the client has its results).
func waitIdle(t *testing.T, srv *Server) {
	t.Helper()
	for i := 0; srv.Counters().Active != 0; i++ {
		if i == 300 {
			t.Fatalf("a test is still active after its client went away: %+v", srv.Counters())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
