package control

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/daemon"
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
	second, err := net.Dial("tcp", listenAddr)
	if err != nil {
		t.Fatal(err)
	}
	if echoOnce(second) {
		t.Error("second client beyond max_conns 1 got its echo")
	}
	second.Close()

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

	m, err := ServeMetrics("127.0.0.1:0", d, slog.New(slog.NewTextHandler(io.Discard, nil)))
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
	name := "tcp/" + listenAddr
	for _, want := range []string{
		`vnetd_forward_refused_total{forward="` + name + `"} 1`,
		`vnetd_forward_active{forward="` + name + `"} 1`,
		`vnetd_forward_limit{forward="` + name + `"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
