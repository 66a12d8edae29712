package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/daemon"
	"github.com/vnetd/vnetd/internal/testwait"
)

// overloadLab is fuzzLab with an echo service on alpha, to move bulk data across lan0.
const overloadLab = fuzzLab + `
[[namespace]]
name = "beta"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.20/24"]
  [[namespace.service]]
  kind = "echo"
`

func listenLab(t *testing.T, lab string) (*Server, *daemon.Daemon) {
	t.Helper()
	return listenLabWith(t, lab, ServerOptions{})
}

// listenLabWith is listenLab with the server options o (Path, Daemon and Logger are
// set here).
func listenLabWith(t *testing.T, lab string, o ServerOptions) (*Server, *daemon.Daemon) {
	t.Helper()
	c, err := config.Parse("lab.toml", []byte(lab))
	if err != nil {
		t.Fatalf("Parse(lab.toml) = %v", err)
	}
	d := daemon.New(daemon.Options{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { d.Close() })
	if err := d.Apply(c); err != nil {
		t.Fatalf("Apply(lab.toml) = %v", err)
	}
	o.Path, o.Daemon, o.Logger = filepath.Join(t.TempDir(), "vnetd.sock"), d, slog.New(slog.DiscardHandler)
	s, err := Listen(o)
	if err != nil {
		t.Fatalf("Listen() = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, d
}

// TestAPIConcurrentClients has 200 clients ask at once: every request is answered.
func TestAPIConcurrentClients(t *testing.T) {
	clients, rounds := 200, 5
	if testing.Short() {
		rounds = 1
	}
	s, _ := listenLab(t, fuzzLab)
	// A bound, not a speed check: under -race on a loaded 2-core host 1,200 requests
	// took over a minute.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	paths := []string{"/v1/status", "/v1/topology", "/v1/fdb/lan0", "/v1/router/r1", "/v1/ns/alpha/sockets", "/v1/forwards"}
	var wg sync.WaitGroup
	errs := make(chan error, clients*rounds*len(paths))
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := NewClient(s.Path())
			defer c.Close()
			for range rounds {
				for _, p := range paths {
					var v any
					if err := c.Get(ctx, p, &v); err != nil {
						errs <- fmt.Errorf("client %d GET %s: %w", i, p, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if n > 0 {
		t.Errorf("%d of %d requests failed", n, clients*rounds*len(paths))
	}
}

// TestAPIBadQueryValues sends huge, negative and malformed query values: each is a 400
// (or 404 for a name that does not exist) with a JSON error, never a 5xx or a hang.
func TestAPIBadQueryValues(t *testing.T) {
	s, _ := listenLab(t, fuzzLab)
	c := NewClient(s.Path())
	defer c.Close()
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/v1/capture/lan0?count=-1", 400},
		{"/v1/capture/lan0?count=99999999999999999999999", 400},
		{"/v1/capture/lan0?count=1e9", 400},
		{"/v1/capture/lan0?count=1&port=nope", 404},
		{"/v1/ping/alpha/10.0.1.10?count=-1", 400},
		{"/v1/ping/alpha/10.0.1.10?count=0", 400},
		{"/v1/ping/alpha/10.0.1.10?count=1001", 400},
		{"/v1/ping/alpha/10.0.1.10?count=9223372036854775808", 400},
		{"/v1/ping/alpha/999.0.0.1", 400},
		{"/v1/ping/nope/10.0.1.10", 404},
		{"/v1/topology?aggregate=-1", 400},
		{"/v1/topology?aggregate=18446744073709551616", 400},
		{"/v1/fdb/" + string(bytes.Repeat([]byte("x"), 4000)), 404},
	} {
		t.Run(tc.path[:min(len(tc.path), 60)], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var v any
			err := c.Get(ctx, tc.path, &v)
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != tc.want || ae.Msg == "" {
				t.Errorf("GET %s = %v, want a %d with a message", tc.path, err, tc.want)
			}
		})
	}
}

// TestSlowCaptureReaderDoesNotBlockSwitch opens a capture stream of lan0 and never
// reads it while 8 MiB are echoed across lan0: the transfer completes (the switch
// drops frames from the capture, not from its ports), and the stream still works.
func TestSlowCaptureReaderDoesNotBlockSwitch(t *testing.T) {
	size := 8 << 20
	if testing.Short() {
		size = 2 << 20
	}
	s, d := listenLab(t, overloadLab)
	conn, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatalf("Dial(control socket) = %v", err)
	}
	defer conn.Close()
	conn.(*net.UnixConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /v1/capture/lan0 HTTP/1.1\r\nHost: vnetd\r\n\r\n")
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || !bytes.Contains([]byte(line), []byte("200")) {
		t.Fatalf("capture answer %q, %v; want 200", line, err)
	}
	// Now the reader stalls: nothing more is read until the transfer is done.

	alpha, err := d.Namespace("alpha")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ec, err := alpha.Dial(ctx, "tcp", "10.0.0.20:7")
	if err != nil {
		t.Fatalf("alpha Dial(beta:7) = %v", err)
	}
	defer ec.Close()
	ec.SetDeadline(time.Now().Add(60 * time.Second))
	go func() {
		buf := make([]byte, 64<<10)
		for sent := 0; sent < size; sent += len(buf) {
			if _, err := ec.Write(buf); err != nil {
				return
			}
		}
	}()
	n, err := io.CopyN(io.Discard, ec, int64(size))
	if err != nil {
		t.Fatalf("echo across lan0 with a stalled capture reader: %d of %d bytes back, %v", n, size, err)
	}
	// 6,000 small datagrams more than fill the stalled stream's queue (4096 frames).
	uc, err := alpha.ListenPacket("udp", "10.0.0.10:0")
	if err != nil {
		t.Fatalf("alpha ListenPacket(udp) = %v", err)
	}
	defer uc.Close()
	to := &net.UDPAddr{IP: net.IPv4(10, 0, 0, 20), Port: 9}
	// The frames the stalled reader missed are counted, per switch.
	lan0 := func() (captures int, dropped uint64) {
		for _, sw := range d.Status().Switches {
			if sw.Name == "lan0" {
				return sw.Stats.Captures, sw.Stats.CaptureDropped
			}
		}
		return 0, 0
	}
	// Small datagrams, paced so that they reach the switch (a tight loop of them
	// overflows alpha's own NIC queue first), until the stalled stream's queue (4096
	// frames) has overflowed by 1000: at most 20,000 datagrams.
	for sent := 0; sent < 20000; sent += 100 {
		if _, dr := lan0(); dr >= 1000 {
			break
		}
		for range 100 {
			uc.WriteTo([]byte("x"), to)
		}
		time.Sleep(2 * time.Millisecond)
	}
	testwait.Eventually(t, 10*time.Second, func() bool { n, dr := lan0(); return n == 1 && dr >= 1000 },
		"status of lan0: captures, capture_dropped = %v; want 1 stream and >= 1000 drops counted", fmt.Sprint(lan0()))
	// The stalled stream is still a stream: reading resumes.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.CopyN(io.Discard, br, 64<<10); err != nil {
		t.Errorf("reading the capture stream after the stall: %v", err)
	}
}

// openCapture asks for a live capture of lan0 on a new connection and returns the
// connection and the answer's status line.
func openCapture(t *testing.T, s *Server) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	conn, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatalf("Dial(control socket) = %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "GET /v1/capture/lan0 HTTP/1.1\r\nHost: vnetd\r\n\r\n")
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("capture answer: %v", err)
	}
	return conn, br, line
}

// TestCaptureStreamCap: DefaultMaxCaptureStreams live captures are served; one more
// gets a 503 with a JSON error; once a stream ends, a new one is served again. A ring
// dump is not a stream and is not refused.
func TestCaptureStreamCap(t *testing.T) {
	s, d := listenLab(t, fuzzLab)
	var conns []net.Conn
	for i := range DefaultMaxCaptureStreams {
		c, _, line := openCapture(t, s)
		if !strings.Contains(line, " 200 ") {
			t.Fatalf("capture stream %d: %q, want 200", i+1, line)
		}
		conns = append(conns, c)
	}
	_, br, line := openCapture(t, s)
	if !strings.Contains(line, " 503 ") {
		t.Fatalf("capture stream %d: %q, want 503", DefaultMaxCaptureStreams+1, line)
	}
	resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(strings.NewReader(line), br)), nil)
	if err != nil {
		t.Fatalf("read the 503: %v", err)
	}
	var body struct{ Error string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || !strings.Contains(body.Error, "too many capture streams") {
		t.Errorf("503 body: %+v, %v; want a JSON error naming the cap", body, err)
	}
	for _, sw := range d.Status().Switches {
		if sw.Name == "lan0" && sw.Stats.Captures != DefaultMaxCaptureStreams {
			t.Errorf("status of lan0: captures %d, want %d", sw.Stats.Captures, DefaultMaxCaptureStreams)
		}
	}
	// The client goes away: its stream ends and frees its place.
	conns[0].Close()
	testwait.Eventually(t, 20*time.Second, func() bool {
		c, _, line := openCapture(t, s)
		defer c.Close()
		return strings.Contains(line, " 200 ")
	}, "no capture stream served after one of %d closed", DefaultMaxCaptureStreams)
}

// TestSlowPingReaders: 20 clients ask for 1000 pings each and never read a byte.
// Meanwhile status and a 2-ping stream from another client are answered, and the
// lab's own traffic flows; once the stalled clients go away their pings stop (the
// daemon's goroutines are back to their count before) rather than run 1000 seconds.
func TestSlowPingReaders(t *testing.T) {
	s, _ := listenLab(t, overloadLab)
	c := NewClient(s.Path())
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// One ping first: beta's MAC is resolved and every lazy goroutine started.
	if err := c.Ping(ctx, "alpha", "10.0.0.20", 1, func(daemon.PingResult) {}); err != nil {
		t.Fatalf("c.Ping(alpha -> beta, 1) = %v", err)
	}
	runtime.GC()
	before := runtime.NumGoroutine()

	var stalled []net.Conn
	for range 20 {
		conn, err := net.Dial("unix", s.Path())
		if err != nil {
			t.Fatalf("Dial(control socket) = %v", err)
		}
		defer conn.Close()
		conn.(*net.UnixConn).SetReadBuffer(1024)
		fmt.Fprintf(conn, "GET /v1/ping/alpha/10.0.0.20?count=1000 HTTP/1.1\r\nHost: vnetd\r\n\r\n")
		stalled = append(stalled, conn) // and never read
	}
	testwait.Eventually(t, 20*time.Second, func() bool { return runtime.NumGoroutine() >= before+20 },
		"the 20 stalled ping streams did not start: %d goroutines, %d before", runtime.NumGoroutine(), before)

	start := time.Now()
	var st daemon.Status
	if err := c.Get(ctx, "/v1/status", &st); err != nil || len(st.Switches) == 0 {
		t.Errorf("c.Status() with 20 stalled ping streams = %v", err)
	}
	var replies []daemon.PingResult
	if err := c.Ping(ctx, "alpha", "10.0.0.20", 2, func(r daemon.PingResult) { replies = append(replies, r) }); err != nil ||
		len(replies) != 2 || replies[0].Error != "" || replies[1].Error != "" {
		t.Errorf("c.Ping(alpha -> beta, 2) with 20 stalled ping streams = %v, %+v; want 2 replies", err, replies)
	}
	t.Logf("status and a 2-ping stream beside 20 stalled streams: %v", time.Since(start))

	for _, conn := range stalled {
		conn.Close()
	}
	if !testwait.Until(20*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines 20 s after the stalled clients left, %d before they came:\n%s",
			runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
	}
}
