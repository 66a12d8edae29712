package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/daemon"
	"github.com/vnetd/vnetd/internal/testwait"
)

// fwdLab is one namespace running echo, with a tcp forward (max_conns 1) into it.
const fwdLab = `
[[switch]]
name = "lan0"
[[namespace]]
name = "alpha"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.10/24", "fd00::10/64"]
  [[namespace.service]]
  kind = "echo"
[[forward]]
listen = "%s"
namespace = "alpha"
target = "10.0.0.10:7"
max_conns = 1
`

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startLab(t *testing.T, src string) *daemon.Daemon {
	t.Helper()
	c, err := config.Parse("lab.toml", []byte(src))
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	d := daemon.New(daemon.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { d.Close() })
	if err := d.Apply(c); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return d
}

// scrape serves d's metrics for a moment and returns one scrape.
func scrape(t *testing.T, d *daemon.Daemon) string {
	t.Helper()
	m, err := ServeMetrics("127.0.0.1:0", d, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	resp, err := http.Get("http://" + m.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// echoOnce writes a line through c and reads it back; false if that fails in 3 s.
func echoOnce(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return false
	}
	buf := make([]byte, 5)
	_, err := io.ReadFull(c, buf)
	return err == nil && string(buf) == "ping\n"
}

// TestForwardRefusedInStatusAndMetrics: a client beyond max_conns is refused and
// the refusal shows in /v1/status and /metrics.
func TestForwardRefusedInStatusAndMetrics(t *testing.T) {
	listenAddr := freeAddr(t)
	d := startLab(t, fmt.Sprintf(fwdLab, listenAddr))
	first, err := net.Dial("tcp", listenAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if !echoOnce(first) {
		t.Fatal("first client: no echo through the forward")
	}
	// The forward resets the second client as soon as it accepts it: the reset may
	// reach the client while its connect is still returning (ECONNRESET from Dial)
	// or after. Either way it gets no echo.
	if second, err := net.Dial("tcp", listenAddr); err == nil {
		if echoOnce(second) {
			t.Error("second client beyond max_conns 1 got its echo")
		}
		second.Close()
	}

	path := t.TempDir() + "/vnetd.sock"
	s, err := Listen(ServerOptions{Path: path, Daemon: d})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var st daemon.Status
	if err := NewClient(path).Get(context.Background(), "/v1/status", &st); err != nil {
		t.Fatalf("GET /v1/status: %v", err)
	}
	if len(st.Forwards) != 1 || st.Forwards[0].Stats.Refused != 1 || st.Forwards[0].Stats.Limit != 1 {
		t.Errorf("/v1/status forwards = %+v, want one with refused 1, limit 1", st.Forwards)
	}

	body := scrape(t, d)
	name := "tcp/" + listenAddr
	for _, want := range []string{
		`vnetd_forward_refused_total{forward="` + name + `"} 1`,
		`vnetd_forward_active{forward="` + name + `"} 1`,
		`vnetd_forward_limit{forward="` + name + `"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// apiLab runs fwdLab (its config forward on a free port) behind a control socket.
func apiLab(t *testing.T) (*daemon.Daemon, *Client, string) {
	t.Helper()
	d := startLab(t, fmt.Sprintf(fwdLab, freeAddr(t)))
	path := t.TempDir() + "/vnetd.sock"
	s, err := Listen(ServerOptions{Path: path, Daemon: d})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c := NewClient(path)
	t.Cleanup(c.Close)
	return d, c, path
}

// TestRuntimeForwardAddTrafficDel: a forward added through the API carries traffic
// (IPv4 and an IPv6 [::1] listener), is listed with its origin and counters, and
// deleting it closes its listener.
func TestRuntimeForwardAddTrafficDel(t *testing.T) {
	_, c, _ := apiLab(t)
	ctx := context.Background()
	v6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatalf("listen on ::1: %v", err)
	}
	v6addr := v6.Addr().String()
	v6.Close()
	for _, listen := range []string{freeAddr(t), v6addr} {
		t.Run(listen, func(t *testing.T) {
			st, err := c.AddForward(ctx, config.ForwardSpec{Listen: listen, Namespace: "alpha", Target: "[fd00::10]:7"})
			if err != nil {
				t.Fatalf("AddForward(%s) = %v", listen, err)
			}
			name := "tcp/" + listen
			if st.Name != name || st.Origin != daemon.OriginRuntime || st.Stats.Limit != config.DefaultForwardMaxConns {
				t.Errorf("AddForward(%s) = %+v, want name %s, origin runtime, default limit", listen, st, name)
			}
			conn, err := net.Dial("tcp", listen)
			if err != nil {
				t.Fatalf("net.Dial(%s) = %v", listen, err)
			}
			if !echoOnce(conn) {
				t.Errorf("no echo through the runtime forward %s", listen)
			}
			conn.Close()
			// A relay counts bytes after writing them: poll until the echo is counted.
			var list []daemon.ForwardStatus
			testwait.Until(3*time.Second, func() bool {
				if err := c.Get(ctx, "/v1/forwards", &list); err != nil {
					t.Fatal(err)
				}
				return len(list) == 2 && list[1].Stats.BytesOut == 5
			})
			if len(list) != 2 || list[0].Origin != daemon.OriginConfig || list[1].Name != name || list[1].Stats.Accepted != 1 || list[1].Stats.BytesOut != 5 {
				t.Errorf("GET /v1/forwards = %+v, want the config forward then %s with 1 accepted, 5 bytes out", list, name)
			}
			if err := c.RemoveForward(ctx, name); err != nil {
				t.Fatalf("RemoveForward(%s) = %v", name, err)
			}
			if conn, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
				conn.Close()
				t.Errorf("%s still accepts after RemoveForward", listen)
			}
			var ae *APIError
			if err := c.RemoveForward(ctx, name); !errors.As(err, &ae) || ae.Status != 404 {
				t.Errorf("second RemoveForward(%s) = %v, want a 404", name, err)
			}
		})
	}
}

// TestRuntimeForwardBadRequests: bad requests get a JSON error with status 400 (the
// config's own messages), a port in use 409, and nothing is left running.
func TestRuntimeForwardBadRequests(t *testing.T) {
	d, c, path := apiLab(t)
	ctx := context.Background()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		spec   config.ForwardSpec
		status int
		want   string
	}{
		{config.ForwardSpec{Listen: "127.0.0.1", Namespace: "alpha", Target: "10.0.0.10:7"}, 400, `listen "127.0.0.1": want HOST:PORT`},
		{config.ForwardSpec{Listen: freeAddr(t), Namespace: "nope", Target: "10.0.0.10:7"}, 400, `namespace "nope" is not defined`},
		{config.ForwardSpec{Listen: freeAddr(t), Namespace: "alpha", Target: "8.8.8.8:53"}, 400, "not reachable from namespace"},
		{config.ForwardSpec{Listen: freeAddr(t), Namespace: "alpha", Target: "10.0.0.10:7", MaxFlows: new(int)}, 400, "max_flows applies to udp"},
		{config.ForwardSpec{Listen: busy.Addr().String(), Namespace: "alpha", Target: "10.0.0.10:7"}, 409, "address already in use"},
	}
	for _, tt := range tests {
		_, err := c.AddForward(ctx, tt.spec)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != tt.status || !strings.Contains(ae.Msg, tt.want) {
			t.Errorf("AddForward(%+v) = %v, want status %d and %q", tt.spec, err, tt.status, tt.want)
		}
	}
	// Not JSON, and an unknown key: 400 with a JSON body.
	for _, body := range []string{"listen=1", `{"listen":"127.0.0.1:1","namespace":"alpha","target":"10.0.0.10:7","colour":"red"}`} {
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}
		resp, err := hc.Post("http://vnetd/v1/forwards", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		derr := json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != 400 || derr != nil || !strings.Contains(e.Error, "bad forward request") {
			t.Errorf("POST %q = %d %q (%v), want 400 with a JSON error", body, resp.StatusCode, e.Error, derr)
		}
	}
	if n := len(d.Forwards()); n != 1 {
		t.Errorf("after the bad requests %d forwards run, want only the config's", n)
	}
}

// TestDNSForwardMetrics: a dns service that forwards has its counters in /metrics.
func TestDNSForwardMetrics(t *testing.T) {
	rc := t.TempDir() + "/resolv.conf"
	if err := os.WriteFile(rc, []byte("nameserver 127.0.0.1:9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startLab(t, fmt.Sprintf("[[namespace]]\nname = \"alpha\"\n  [[namespace.service]]\n  kind = \"dns\"\n  forward = true\n  resolv_conf = %q\n", rc))
	body := scrape(t, d)
	for _, name := range []string{"vnetd_dns_forwarded_total", "vnetd_dns_forward_errors_total", "vnetd_dns_forward_dropped_total", "vnetd_dns_forward_in_flight"} {
		if want := name + `{listen=":53",namespace="alpha"} 0`; !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
