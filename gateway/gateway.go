package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gaissmai/bart"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/nsstack"
)

// Defaults for Options.
const (
	DefaultMaxFlows       = 1024
	DefaultUDPIdleTimeout = 60 * time.Second
	DefaultDialTimeout    = 10 * time.Second
)

// Options configure a gateway.
type Options struct {
	// Name names the gateway in logs and its port ("NAME.NIC").
	Name string
	// NIC names its one interface; default "eth0".
	NIC string
	// Logger receives lifecycle events; default slog.Default().
	Logger *slog.Logger
	// MAC is the interface's address; zero derives one from "NAME.NIC".
	MAC frame.MAC
	// MTU defaults to 1500.
	MTU int
	// Addresses are the gateway's own addresses with their subnets; guests use one
	// as their next hop.
	Addresses []netip.Prefix
	// Host and Host6 are the host loopback aliases: flows to them go to 127.0.0.1
	// and ::1. Zero means none. The gateway answers ARP for Host and neighbour
	// solicitations for Host6 (a unicast address), so guests may have them on-link.
	Host, Host6 netip.Addr
	// Allow lists the destinations flows may go to (after alias mapping); empty
	// means all. Deny lists those they may not; it wins over Allow.
	Allow, Deny []netip.Prefix
	// MaxFlows caps the flows (host sockets) open at once; default DefaultMaxFlows.
	MaxFlows int
	// UDPIdleTimeout closes a UDP flow that carried nothing for this long; default
	// DefaultUDPIdleTimeout.
	UDPIdleTimeout time.Duration
	// DialTimeout bounds a host TCP dial; default DefaultDialTimeout.
	DialTimeout time.Duration
	// Dial opens the host sockets of TCP ("tcp") and UDP ("udp") flows; default
	// net.Dialer's DialContext. Tests use it to dial inside a network namespace.
	// Ping sockets do not go through it.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// Stats are a gateway's counters.
type Stats struct {
	// FlowsActive is how many flows are open now (each holds one host socket).
	FlowsActive int64 `json:"flows_active"`
	// FlowsTCP, FlowsUDP and FlowsICMP count flows relayed since start (an ICMP
	// flow is one guest's echo identifier to one destination).
	FlowsTCP  uint64 `json:"flows_tcp_total"`
	FlowsUDP  uint64 `json:"flows_udp_total"`
	FlowsICMP uint64 `json:"flows_icmp_total"`
	// BytesToHost and BytesFromHost count payload relayed each way.
	BytesToHost   uint64 `json:"bytes_to_host"`
	BytesFromHost uint64 `json:"bytes_from_host"`
	// Refused counts flows whose host dial failed (refused, unreachable, timed out).
	Refused uint64 `json:"refused"`
	// Denied counts flows the allow/deny policy refused.
	Denied uint64 `json:"denied"`
	// DroppedAtCap counts flows refused because MaxFlows were open.
	DroppedAtCap uint64 `json:"dropped_at_cap"`
	// ICMPUnsupported counts echo requests dropped because the host refused vnetd an
	// unprivileged ping socket (net.ipv4.ping_group_range excludes its group).
	ICMPUnsupported uint64 `json:"icmp_unsupported"`
}

// Gateway is a running gateway. Its methods are safe for concurrent use.
type Gateway struct {
	o     Options
	log   *slog.Logger
	ns    *nsstack.Namespace
	nic   *nsstack.NIC
	allow *bart.Lite // nil: everything
	deny  bart.Lite
	own   map[netip.Addr]bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	flows  map[closer]struct{} // guarded by mu
	closed bool                // guarded by mu

	echoMu   sync.Mutex
	echoes   map[echoKey]*echoFlow // guarded by echoMu
	prohibit chan *nsstack.EchoRequest

	active                        atomic.Int64
	tcpFlows, udpFlows, icmpFlows atomic.Uint64
	icmpUnsupported               atomic.Uint64
	bytesToHost, bytesFromHost    atomic.Uint64
	refused, denied, droppedAtCap atomic.Uint64
}

// closer is an open flow, as Close ends it.
type closer interface{ close() }

// flow is one relayed flow: the guest side and the host socket.
type flow struct{ guest, host net.Conn }

func (f *flow) close() {
	f.guest.Close()
	f.host.Close()
}

// New builds a gateway; attach Port to a switch.
func New(o Options) (*Gateway, error) {
	if o.NIC == "" {
		o.NIC = "eth0"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxFlows <= 0 {
		o.MaxFlows = DefaultMaxFlows
	}
	if o.UDPIdleTimeout <= 0 {
		o.UDPIdleTimeout = DefaultUDPIdleTimeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.Dial == nil {
		o.Dial = new(net.Dialer).DialContext
	}
	if len(o.Addresses) == 0 {
		return nil, fmt.Errorf("gateway %q: needs addresses", o.Name)
	}
	g := &Gateway{o: o, log: o.Logger.With("gateway", o.Name), own: map[netip.Addr]bool{},
		flows: map[closer]struct{}{}, echoes: map[echoKey]*echoFlow{}, prohibit: make(chan *nsstack.EchoRequest, prohibitQueue)}
	if len(o.Allow) > 0 {
		g.allow = new(bart.Lite)
		for _, p := range o.Allow {
			g.allow.Insert(p.Masked())
		}
	}
	for _, p := range o.Deny {
		g.deny.Insert(p.Masked())
	}
	ns, err := nsstack.New(nsstack.Options{Name: o.Name, Logger: o.Logger, TCPProcessors: 2, Terminating: true})
	if err != nil {
		return nil, fmt.Errorf("gateway %q: %w", o.Name, err)
	}
	g.ns = ns
	fail := func(err error) (*Gateway, error) {
		ns.Close()
		return nil, fmt.Errorf("gateway %q: %w", o.Name, err)
	}
	if g.nic, err = ns.AddNIC(nsstack.NICConfig{Name: o.NIC, MAC: o.MAC, MTU: o.MTU}); err != nil {
		return fail(err)
	}
	for _, p := range o.Addresses {
		if err := ns.AddAddress(o.NIC, p); err != nil {
			return fail(err)
		}
		g.own[p.Addr()] = true
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	// The aliases answer ARP and neighbour solicitations: guests may have them on-link
	// (slirp's 10.0.2.0/24 and fd00::/64 layouts).
	var arp, ndp []netip.Addr
	if o.Host.IsValid() {
		arp = append(arp, o.Host)
	}
	if o.Host6.IsValid() {
		ndp = append(ndp, o.Host6)
	}
	if err := ns.Terminate(o.NIC, nsstack.Terminators{TCP: g.handleTCP, UDP: g.handleUDP, Echo: g.handleEcho, ARP: arp, NDP: ndp}); err != nil {
		g.cancel()
		return fail(err)
	}
	g.wg.Add(1)
	go g.prohibitLoop()
	return g, nil
}

// Port is the gateway's switch port.
func (g *Gateway) Port() frame.Port { return g.nic }

// Stats snapshots the counters.
func (g *Gateway) Stats() Stats {
	return Stats{
		FlowsActive: g.active.Load(), FlowsTCP: g.tcpFlows.Load(), FlowsUDP: g.udpFlows.Load(), FlowsICMP: g.icmpFlows.Load(),
		BytesToHost: g.bytesToHost.Load(), BytesFromHost: g.bytesFromHost.Load(),
		Refused: g.refused.Load(), Denied: g.denied.Load(), DroppedAtCap: g.droppedAtCap.Load(),
		ICMPUnsupported: g.icmpUnsupported.Load(),
	}
}

// Close ends every flow (closing its host socket), then the gateway's stack.
func (g *Gateway) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	flows := g.flows
	g.flows = nil
	g.mu.Unlock()
	g.cancel()
	for f := range flows {
		f.close()
	}
	g.wg.Wait()
	return g.ns.Close()
}

// destination maps a guest's destination to the host address to dial, or reports
// that policy forbids it (counting it).
func (g *Gateway) destination(dst netip.AddrPort) (netip.AddrPort, bool) {
	a := dst.Addr().Unmap()
	switch {
	case g.o.Host.IsValid() && a == g.o.Host:
		a = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	case g.o.Host6.IsValid() && a == g.o.Host6:
		a = netip.IPv6Loopback()
	}
	ok := !g.own[dst.Addr()] && !a.IsUnspecified() && !a.IsMulticast() &&
		(g.allow == nil || g.allow.Lookup(a)) && !g.deny.Lookup(a)
	if !ok {
		g.denied.Add(1)
	}
	return netip.AddrPortFrom(a, dst.Port()), ok
}

// reserve claims a flow slot; false (counted) when MaxFlows are open.
func (g *Gateway) reserve() bool {
	if g.active.Add(1) > int64(g.o.MaxFlows) {
		g.active.Add(-1)
		g.droppedAtCap.Add(1)
		return false
	}
	return true
}

// track registers an open flow so Close can end it; false if the gateway closed.
func (g *Gateway) track(f closer) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.flows[f] = struct{}{}
	g.wg.Add(1)
	return true
}

// finish closes a flow's sockets and gives its slot back.
func (g *Gateway) finish(f closer) {
	f.close()
	g.mu.Lock()
	delete(g.flows, f)
	g.mu.Unlock()
	g.active.Add(-1)
	g.wg.Done()
}
