package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd/daemon"
	"github.com/vnetd/vnetd/internal/testwait"
)

// TestDropsByReasonInAllThree: malformed frames from VMs (a datagram shorter than an
// Ethernet header, a stream length prefix of 3, a frame from a multicast source MAC)
// show up by reason in `vnetd status`, /v1/status and /metrics. Before, the first two
// were only counted inside vmsock.
func TestDropsByReasonInAllThree(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vnetd.sock")
	stream, dgram := filepath.Join(dir, "vm.sock"), filepath.Join(dir, "vmd.sock")
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := filepath.Join(dir, "lab.toml")
	src := fmt.Sprintf(`[daemon]
control = %q
metrics = %q
[[switch]]
name = "lan0"
[[socket]]
path = %q
switch = "lan0"
[[socket]]
path = %q
switch = "lan0"
protocol = "dgram"
`, sock, metrics, stream, dgram)
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() { exited <- Main(ctx, []string{"run", "-c", cfg}, io.Discard, io.Discard) }()
	defer func() {
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("Main(run) = %d, want 0", code)
		}
	}()
	testwait.Eventually(t, 10*time.Second, func() bool { code, _, _ := run(t, "status", "-s", sock); return code == 0 },
		"vnetd run to answer on %s", sock)

	// dgram: 5 bytes (too_short at the listener), then a frame from a multicast
	// source (bad_source at the switch, on the peer's port).
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "peer.sock"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to := &net.UnixAddr{Name: dgram, Net: "unixgram"}
	bad := make([]byte, 60)
	copy(bad, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0x5e, 0, 0, 1, 0x88, 0xb5})
	for _, b := range [][]byte{make([]byte, 5), bad} {
		if _, err := c.WriteToUnix(b, to); err != nil {
			t.Fatalf("dgram write: %v", err)
		}
	}
	// stream: a length prefix of 3 (bad_length; the connection is closed).
	s, err := net.Dial("unix", stream)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Write(binary.BigEndian.AppendUint32(nil, 3))

	want := map[string]map[string]uint64{dgram: {"too_short": 1}, stream: {"bad_length": 1}}
	var st daemon.Status
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	defer hc.CloseIdleConnections()
	ok := func() bool {
		resp, err := hc.Get("http://vnetd/v1/status")
		if err != nil {
			t.Fatalf("GET /v1/status: %v", err)
		}
		defer resp.Body.Close()
		st = daemon.Status{}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatalf("decode /v1/status: %v", err)
		}
		found := 0
		for _, so := range st.Sockets {
			for r, n := range want[so.Path] {
				if so.Drops[r] == n {
					found++
				}
			}
		}
		for _, sw := range st.Switches {
			for _, p := range sw.Ports {
				if strings.HasPrefix(p.Name, "sock:"+dgram) && p.Drops["bad_source"] == 1 {
					found++
				}
			}
		}
		return found == 3
	}
	if !testwait.Until(5*time.Second, ok) {
		t.Fatalf("/v1/status sockets %+v, switches %+v: want too_short 1 on %s, bad_length 1 on %s, bad_source 1 on the dgram VM's port", st.Sockets, st.Switches, dgram, stream)
	}

	_, out, _ := run(t, "status", "-s", sock)
	out = strings.Join(strings.Fields(out), " ") // the columns' padding aside
	for _, w := range []string{
		fmt.Sprintf("socket %s on lan0 dgram drops 1 (too_short 1)", dgram),
		fmt.Sprintf("socket %s on lan0 stream drops 1 (bad_length 1)", stream),
		"drops 1 (bad_source 1)",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("vnetd status lacks %q:\n%s", w, out)
		}
	}

	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, w := range []string{
		fmt.Sprintf(`vnetd_socket_drops_total{path=%q,reason="too_short"} 1`, dgram),
		fmt.Sprintf(`vnetd_socket_drops_total{path=%q,reason="bad_length"} 1`, stream),
		`reason="bad_source",switch="lan0"} 1`,
	} {
		if !bytes.Contains(body, []byte(w)) {
			t.Errorf("/metrics lacks %s", w)
		}
	}
}
