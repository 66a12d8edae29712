package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/iperf"
)

// iperfService is a running iperf3 server in a namespace.
type iperfService struct {
	listen string
	srv    *iperf.Server
}

// IperfStatus is an iperf3 service's counters in a namespace's status.
type IperfStatus struct {
	Listen   string         `json:"listen"`
	Counters iperf.Counters `json:"counters"`
}

// startIperf serves iperf3 (TCP and UDP) on the service's listen address.
func (d *Daemon) startIperf(e *nsEntry, c config.Namespace, s config.Service) error {
	listen := listenString(s.Listen)
	log := d.log.With("namespace", c.Name, "service", "iperf3")
	srv, err := iperf.Listen(e.ns, listen, iperf.ServerOptions{MaxTests: s.MaxTests, MaxStreams: s.MaxStreams, Logger: log})
	if err != nil {
		return fmt.Errorf("namespace %q: %w", c.Name, err)
	}
	e.services = append(e.services, srv)
	e.iperf = append(e.iperf, &iperfService{listen: listen, srv: srv})
	log.Debug("iperf3 up", "listen", listen, "max_tests", s.MaxTests, "max_streams", s.MaxStreams)
	return nil
}

func (e *nsEntry) iperfStatus() []IperfStatus {
	var out []IperfStatus
	for _, s := range e.iperf {
		out = append(out, IperfStatus{Listen: s.listen, Counters: s.srv.Counters()})
	}
	return out
}

// IperfSpec is a `vnetd iperf` request: an iperf3 client run inside a namespace.
type IperfSpec struct {
	// Namespace is where the client runs.
	Namespace string `json:"namespace"`
	// Addr is the server's address; Port its port (default 5201).
	Addr string `json:"addr"`
	Port int    `json:"port,omitempty"`
	// Time is the test's length in seconds (default 3, at most 3600).
	Time int `json:"time,omitempty"`
	// Reverse makes the server send (-R).
	Reverse bool `json:"reverse,omitempty"`
	// UDP tests UDP (-u).
	UDP bool `json:"udp,omitempty"`
	// Rate is each stream's target in bit/s (-b); 0: no limit (TCP), 1 Mbit/s (UDP).
	Rate int64 `json:"rate,omitempty"`
	// Parallel is the number of streams (-P, default 1, at most 128).
	Parallel int `json:"parallel,omitempty"`
	// Len is the block size in bytes (-l); default 128 KiB (TCP), 1460 (UDP).
	Len int `json:"len,omitempty"`
}

// ErrInvalidIperf is returned for a malformed IperfSpec.
var ErrInvalidIperf = errors.New("invalid iperf request")

// ErrNoNamespace is returned for a namespace that does not exist.
var ErrNoNamespace = errors.New("no such namespace")

// Iperf runs an iperf3 client inside a namespace against s.Addr and returns both
// sides' results. It works against vnetd's iperf3 service and a real iperf3 server.
func (d *Daemon) Iperf(ctx context.Context, s IperfSpec) (*iperf.Report, error) {
	addr, err := netip.ParseAddr(s.Addr)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: address %q", ErrInvalidIperf, s.Addr)
	case s.Port < 0 || s.Port > 65535:
		return nil, fmt.Errorf("%w: port %d out of range 1-65535", ErrInvalidIperf, s.Port)
	case s.Time < 0 || s.Time > 3600:
		return nil, fmt.Errorf("%w: time %d out of range 1-3600 seconds", ErrInvalidIperf, s.Time)
	case s.Parallel < 0 || s.Parallel > 128:
		return nil, fmt.Errorf("%w: parallel %d out of range 1-128", ErrInvalidIperf, s.Parallel)
	case s.Rate < 0:
		return nil, fmt.Errorf("%w: rate %d below 0", ErrInvalidIperf, s.Rate)
	case s.Len < 0 || s.Len > iperf.MaxBlockSize || s.UDP && s.Len > 65507 || s.UDP && s.Len > 0 && s.Len < 16:
		return nil, fmt.Errorf("%w: len %d out of range (TCP 1-%d, UDP 16-65507)", ErrInvalidIperf, s.Len, iperf.MaxBlockSize)
	}
	if s.Port == 0 {
		s.Port = iperf.DefaultPort
	}
	if s.Time == 0 {
		s.Time = 3
	}
	ns, err := d.Namespace(s.Namespace)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoNamespace, err)
	}
	return iperf.Run(ctx, ns, iperf.ClientOptions{
		Addr: netip.AddrPortFrom(addr, uint16(s.Port)).String(), Time: time.Duration(s.Time) * time.Second,
		Reverse: s.Reverse, UDP: s.UDP, Rate: s.Rate, Parallel: s.Parallel, Len: s.Len,
	})
}
