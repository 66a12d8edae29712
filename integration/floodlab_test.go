package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vnetd/vnetd/internal/procstat"
)

// The flood tests (floods_test.go, floodapi_test.go) drive the real vnetd binary from
// outside: frames written into a TAP it attached, datagrams from host sockets, HTTP on
// its control socket. This file holds what they share: a daemon started from a TOML
// string, its control API over the unix socket, its /proc figures and its metrics.

// floodLab is a running vnetd (inside netns ns when ns is not "") and a client of its
// control API.
type floodLab struct {
	*vnetdProc
	pid int
	ns  string
	api *http.Client
}

// startFloodLab runs vnetd on a config made of "[daemon]\ncontrol = SOCK\n" and lab
// (which may begin with more [daemon] keys), inside netns ns when it is not "", until
// the test ends; it returns once the control API answers.
func startFloodLab(t *testing.T, bin, ns, lab string) *floodLab {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "vnetd.sock")
	cfg := filepath.Join(dir, "lab.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("[daemon]\ncontrol = %q\n", sock)+lab), 0o600); err != nil {
		t.Fatal(err)
	}
	// ip netns exec execs vnetd in place, so the process is vnetd itself.
	cmd, exited, log := runVnetd(t, bin, ns, cfg)
	d := &floodLab{vnetdProc: &vnetdProc{bin: bin, sock: sock, stderr: log}, pid: cmd.Process.Pid, ns: ns}
	d.api = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return new(net.Dialer).DialContext(ctx, "unix", sock)
			},
			MaxIdleConnsPerHost: 4,
		},
	}
	t.Cleanup(d.api.CloseIdleConnections)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vnetd output:\n%s", log.String())
		}
	})
	eventually(t, 20*time.Second, "vnetd's control API", func() bool {
		select {
		case <-exited:
			t.Fatalf("vnetd exited:\n%s", log.String())
		default:
		}
		_, err := d.get("/v1/version")
		return err == nil
	}, log)
	return d
}

// get GETs path from the control API and returns the body of a 200 answer.
func (d *floodLab) get(path string) ([]byte, error) {
	resp, err := d.api.Get("http://vnetd" + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return b, err
}

// getJSON GETs path into v, failing the test on any error.
func (d *floodLab) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := d.get(path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, b)
	}
}

// floodStatus is the part of /v1/status the flood tests read.
type floodStatus struct {
	Switches []struct {
		Name  string `json:"name"`
		Stats struct {
			FDBSize        int    `json:"fdb_size"`
			Limited        uint64 `json:"limited"`
			MaxMACs        int    `json:"max_macs"`
			Captures       int    `json:"captures"`
			CaptureDropped uint64 `json:"capture_dropped"`
		} `json:"stats"`
		Ports []floodPort `json:"ports"`
	} `json:"switches"`
	Namespaces []struct {
		Name string `json:"name"`
		DHCP []struct {
			Stats struct {
				Leases        int    `json:"leases"`
				MaxLeases     int    `json:"max_leases"`
				RefusedAtCap  uint64 `json:"refused_at_cap"`
				PoolExhausted uint64 `json:"pool_exhausted"`
			} `json:"stats"`
		} `json:"dhcp"`
	} `json:"namespaces"`
	Forwards []struct {
		Name  string `json:"name"`
		Stats struct {
			Active  int    `json:"active"`
			Limit   int    `json:"limit"`
			Refused uint64 `json:"refused"`
		} `json:"stats"`
	} `json:"forwards"`
	Gateways []struct {
		Name  string `json:"name"`
		Stats struct {
			FlowsActive  int    `json:"flows_active"`
			FlowsUDP     uint64 `json:"flows_udp_total"`
			DroppedAtCap uint64 `json:"dropped_at_cap"`
		} `json:"stats"`
	} `json:"gateways"`
}

type floodPort struct {
	Name     string `json:"name"`
	MACs     int    `json:"macs"`
	Counters struct {
		RxFrames uint64 `json:"rx_frames"`
		TxFrames uint64 `json:"tx_frames"`
	} `json:"counters"`
	Drops map[string]uint64 `json:"drops"`
}

func (d *floodLab) status(t *testing.T) floodStatus {
	t.Helper()
	var st floodStatus
	d.getJSON(t, "/v1/status", &st)
	return st
}

// portRx reads the rx frame counter of switch sw's port name (for goroutines: no t).
func (d *floodLab) portRx(sw, name string) (uint64, error) {
	b, err := d.get("/v1/status")
	if err != nil {
		return 0, err
	}
	var st floodStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, err
	}
	for _, s := range st.Switches {
		for _, p := range s.Ports {
			if s.Name == sw && p.Name == name {
				return p.Counters.RxFrames, nil
			}
		}
	}
	return 0, fmt.Errorf("/v1/status: no port %s on switch %s", name, sw)
}

// port returns switch sw's port named name from st.
func (st floodStatus) port(t *testing.T, sw, name string) floodPort {
	t.Helper()
	for _, s := range st.Switches {
		if s.Name != sw {
			continue
		}
		for _, p := range s.Ports {
			if p.Name == name {
				return p
			}
		}
	}
	t.Fatalf("/v1/status: no port %s on switch %s", name, sw)
	return floodPort{}
}

// rss is vnetd's resident set size in bytes (VmRSS in /proc/PID/status).
func (d *floodLab) rss(t *testing.T) int64 {
	t.Helper()
	n, err := d.readRSS()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// readRSS is rss for goroutines other than the test's.
func (d *floodLab) readRSS() (int64, error) {
	n, err := procstat.RSSOf(d.pid)
	if err != nil {
		return 0, fmt.Errorf("vnetd's RSS: %w", err)
	}
	return n, nil
}

// iperfUDP runs vnetd's iperf3 client in namespace from against addr for secs seconds
// at rate (UDP) and returns the bit rate the server received.
func (d *floodLab) iperfUDP(t *testing.T, from, addr, rate string, secs int) float64 {
	t.Helper()
	out, err := d.run("iperf", from, addr, "-u", "-b", rate, "-t", strconv.Itoa(secs), "--json")
	if err != nil {
		t.Fatalf("vnetd iperf %s %s -u -b %s: %v\n%s", from, addr, rate, err, out)
	}
	var r struct {
		Sum struct {
			ReceivedBPS float64 `json:"received_bps"`
			Packets     uint64  `json:"packets"`
			Lost        uint64  `json:"lost"`
		} `json:"sum"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("vnetd iperf --json: %v\n%s", err, out)
	}
	t.Logf("iperf3 UDP %s -> %s at %s: received %.1f Mbit/s, %d packets, %d lost", from, addr, rate, r.Sum.ReceivedBPS/1e6, r.Sum.Packets, r.Sum.Lost)
	return r.Sum.ReceivedBPS
}

// metrics scrapes vnetd's /metrics listener at addr (dialled inside the daemon's netns).
func (d *floodLab) metrics(t *testing.T, addr string) string {
	t.Helper()
	tr := &http.Transport{DialContext: new(net.Dialer).DialContext}
	if d.ns != "" {
		tr.DialContext = dialIn(d.ns)
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s %v", resp.Status, err)
	}
	return string(b)
}

// metricSum adds up the samples of metric name whose label set contains every one of
// labels (`reason="cap"`), and reports whether there was any.
func metricSum(text, name string, labels ...string) (float64, bool) {
	var sum float64
	found := false
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				continue next
			}
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	return sum, found
}

// frameSender writes whole Ethernet frames out of one interface of a netns through an
// AF_PACKET socket that receives nothing (protocol 0): for a TAP, every frame it sends
// is a frame the TAP's reader (vnetd) receives.
type frameSender struct {
	fd int
	sa unix.SockaddrLinklayer
}

func openFrameSender(t *testing.T, ns, ifname string) *frameSender {
	t.Helper()
	s := &frameSender{fd: -1}
	err := doInNetns(t, ns, func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		s.fd = fd
		s.sa = unix.SockaddrLinklayer{Ifindex: ifc.Index}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifc.Index})
	})
	if err != nil {
		if s.fd >= 0 {
			unix.Close(s.fd)
		}
		t.Fatalf("AF_PACKET socket on %s in %s: %v", ifname, ns, err)
	}
	t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

// send writes one frame; ENOBUFS (the device's queue full) is returned, not retried.
func (s *frameSender) send(f []byte) error {
	return unix.Sendto(s.fd, f, 0, &s.sa)
}
