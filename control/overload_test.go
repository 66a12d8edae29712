package control

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/daemon"
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
	c, err := config.Parse("lab.toml", []byte(lab))
	if err != nil {
		t.Fatalf("Parse(lab.toml) = %v", err)
	}
	d := daemon.New(daemon.Options{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { d.Close() })
	if err := d.Apply(c); err != nil {
		t.Fatalf("Apply(lab.toml) = %v", err)
	}
	s, err := Listen(ServerOptions{Path: filepath.Join(t.TempDir(), "vnetd.sock"), Daemon: d, Logger: slog.New(slog.DiscardHandler)})
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
	// The stalled stream is still a stream: reading resumes.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.CopyN(io.Discard, br, 64<<10); err != nil {
		t.Errorf("reading the capture stream after the stall: %v", err)
	}
}
