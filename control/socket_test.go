package control

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd/daemon"
	"github.com/vnetd/vnetd/internal/testwait"
)

const sockLab = `
[[switch]]
name = "lan0"
[[socket]]
path = %q
switch = "lan0"
max_conns = 1
frame_timeout = "200ms"
`

// TestSocketLimitsInStatusAndMetrics: a VM connection beyond max_conns is refused
// and one stalled in a frame is closed after frame_timeout; both show in /v1/status
// and /metrics for the socket.
func TestSocketLimitsInStatusAndMetrics(t *testing.T) {
	vm := filepath.Join(t.TempDir(), "vm.sock")
	d := startLab(t, fmt.Sprintf(sockLab, vm))
	first, err := net.Dial("unix", vm)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	testwait.Until(5*time.Second, func() bool {
		return !(len(d.Status().Sockets) == 1 && d.Status().Sockets[0].Stats.Ports < 1)
	})
	second, err := net.Dial("unix", vm)
	if err != nil {
		t.Fatal(err)
	}
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := second.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("Read on the connection beyond max_conns = %v, want EOF", err)
	}
	second.Close()
	first.Write([]byte{0, 0, 0}) // three bytes of a length prefix, then nothing
	first.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := first.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("Read on the stalled connection = %v, want EOF after frame_timeout", err)
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
	if len(st.Sockets) != 1 || st.Sockets[0].Stats.Refused != 1 || st.Sockets[0].Stats.Stalled != 1 || st.Sockets[0].Stats.Limit != 1 {
		t.Errorf("/v1/status sockets = %+v, want one with refused 1, stalled 1, limit 1", st.Sockets)
	}
	body := scrape(t, d)
	for _, want := range []string{
		`vnetd_socket_refused_total{protocol="stream",socket="` + vm + `"} 1`,
		`vnetd_socket_stalled_total{protocol="stream",socket="` + vm + `"} 1`,
		`vnetd_socket_limit{protocol="stream",socket="` + vm + `"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
