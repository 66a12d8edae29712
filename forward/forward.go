package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Dialer opens a connection inside a namespace; *nsstack.Namespace's Dial and a
// wrapper of its ListenPacket fit.
type Dialer interface {
	// Dial opens a TCP connection to addr.
	Dial(ctx context.Context, network, addr string) (net.Conn, error)
	// ListenPacket opens an unconnected UDP socket (addr ":0").
	ListenPacket(network, addr string) (net.PacketConn, error)
}

// Options configure a forward.
type Options struct {
	// Protocol is "tcp" or "udp".
	Protocol string
	// Listen is the host address to listen on.
	Listen netip.AddrPort
	// Target is the address dialled inside the namespace.
	Target netip.AddrPort
	// Dialer returns the namespace to dial in at connection time (so a namespace that
	// is recreated by a reload is picked up); nil result fails the connection.
	Dialer func() Dialer
	// UDPIdle ends a UDP flow after this long without traffic; default 60s.
	UDPIdle time.Duration
	// MaxConns caps the TCP connections relayed at once; a connection beyond it is
	// reset at once and counted in Stats.Refused. Default DefaultMaxConns.
	MaxConns int
	// MaxFlows caps the UDP flows (client addresses with a namespace socket) open at
	// once; a datagram from a new client beyond it is dropped and counted in
	// Stats.Refused. Existing flows keep working. Default DefaultMaxFlows.
	MaxFlows int
	// KeepAlive is the TCP keepalive of accepted host connections, so a peer that
	// vanished frees its relay; zero means DefaultKeepAlive.
	KeepAlive net.KeepAliveConfig
	// DialTimeout bounds connecting to the target; default 5s.
	DialTimeout time.Duration
	// Logger receives errors; default slog.Default().
	Logger *slog.Logger
}

// Defaults of the limits in Options.
const (
	DefaultMaxConns = 1024
	DefaultMaxFlows = 1024
	DefaultUDPIdle  = 60 * time.Second
)

// DefaultKeepAlive probes an idle host connection after 30 s, then every 10 s, and
// gives up after 3 unanswered probes: a dead peer frees its relay in about a minute.
var DefaultKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3}

// udpBufSize is the largest UDP payload a flow relays (IPv4's 65535 less headers).
const udpBufSize = 65535 - 28

// Stats are a forward's counters.
type Stats struct {
	Accepted   uint64 `json:"accepted"`    // connections or UDP flows started
	Active     int64  `json:"active"`      // connections or flows open now
	Limit      int    `json:"limit"`       // max_conns (tcp) or max_flows (udp)
	Refused    uint64 `json:"refused"`     // connections reset or datagrams dropped at the limit
	DialErrors uint64 `json:"dial_errors"` // target unreachable
	BytesIn    uint64 `json:"bytes_in"`    // host to namespace
	BytesOut   uint64 `json:"bytes_out"`   // namespace to host
}

// Forward is a running forward.
type Forward struct {
	o      Options
	ln     net.Listener
	pc     net.PacketConn
	target atomic.Pointer[netip.AddrPort]
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[io.Closer]struct{}
	flows  map[netip.AddrPort]*flow
	once   sync.Once
	limit  atomic.Int64 // MaxConns or MaxFlows, changed by SetLimit
	idle   atomic.Int64 // UDPIdle, changed by SetUDPIdle
	warned atomic.Int64 // when the limit was last logged, UnixNano

	accepted, dialErrors, bytesIn, bytesOut, refused atomic.Uint64
	active                                           atomic.Int64
}

// Start binds the host socket and serves in the background.
func Start(o Options) (*Forward, error) {
	if o.UDPIdle <= 0 {
		o.UDPIdle = DefaultUDPIdle
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.MaxFlows <= 0 {
		o.MaxFlows = DefaultMaxFlows
	}
	if o.KeepAlive == (net.KeepAliveConfig{}) {
		o.KeepAlive = DefaultKeepAlive
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	f := &Forward{o: o, conns: map[io.Closer]struct{}{}, flows: map[netip.AddrPort]*flow{}}
	f.target.Store(&o.Target)
	f.idle.Store(int64(o.UDPIdle))
	f.ctx, f.cancel = context.WithCancel(context.Background())
	var err error
	switch o.Protocol {
	case "tcp":
		if f.ln, err = net.Listen("tcp", o.Listen.String()); err != nil {
			f.cancel()
			return nil, fmt.Errorf("forward tcp %s: %w", o.Listen, err)
		}
		f.limit.Store(int64(o.MaxConns))
		f.wg.Add(1)
		go func() { defer f.wg.Done(); f.acceptLoop() }()
	case "udp":
		if f.pc, err = net.ListenPacket("udp", o.Listen.String()); err != nil {
			f.cancel()
			return nil, fmt.Errorf("forward udp %s: %w", o.Listen, err)
		}
		f.limit.Store(int64(o.MaxFlows))
		f.wg.Add(1)
		go func() { defer f.wg.Done(); f.udpLoop() }()
	default:
		f.cancel()
		return nil, fmt.Errorf("forward %s: unknown protocol %q", o.Listen, o.Protocol)
	}
	return f, nil
}

// Addr is the bound host address (useful with port 0).
func (f *Forward) Addr() net.Addr {
	if f.ln != nil {
		return f.ln.Addr()
	}
	return f.pc.LocalAddr()
}

// SetTarget changes where new connections go.
func (f *Forward) SetTarget(t netip.AddrPort) { f.target.Store(&t) }

// SetLimit changes MaxConns (tcp) or MaxFlows (udp); n <= 0 means the default. What
// is open beyond a lowered limit stays open; new ones are refused until below it.
func (f *Forward) SetLimit(n int) {
	if n <= 0 {
		n = DefaultMaxConns
		if f.pc != nil {
			n = DefaultMaxFlows
		}
	}
	f.limit.Store(int64(n))
}

// SetUDPIdle changes UDPIdle for every flow; d <= 0 means the default.
func (f *Forward) SetUDPIdle(d time.Duration) {
	if d <= 0 {
		d = DefaultUDPIdle
	}
	f.idle.Store(int64(d))
}

// Stats returns the counters.
func (f *Forward) Stats() Stats {
	return Stats{Accepted: f.accepted.Load(), Active: f.active.Load(), Limit: int(f.limit.Load()), Refused: f.refused.Load(),
		DialErrors: f.dialErrors.Load(), BytesIn: f.bytesIn.Load(), BytesOut: f.bytesOut.Load()}
}

// limitLogEvery is how often at most a forward logs that it is refusing clients.
const limitLogEvery = time.Minute

// atLimit reports whether n open connections or flows fill the limit; if so it
// counts a refusal and logs it, at most once a limitLogEvery.
func (f *Forward) atLimit(n int64) bool {
	lim := f.limit.Load()
	if n < lim {
		return false
	}
	refused := f.refused.Add(1)
	now := time.Now().UnixNano()
	if last := f.warned.Load(); now-last >= int64(limitLogEvery) && f.warned.CompareAndSwap(last, now) {
		what := "max_conns"
		if f.pc != nil {
			what = "max_flows"
		}
		f.o.Logger.Warn("forward at its limit; refusing new clients until some end", "listen", f.o.Listen, "protocol", f.o.Protocol, what, lim, "refused", refused)
	}
	return true
}

func (f *Forward) track(c io.Closer) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ctx.Err() != nil {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Forward) untrack(c io.Closer) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

func (f *Forward) acceptLoop() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		if f.atLimit(f.active.Load()) {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // reset: the client learns at once, no TIME_WAIT here
			}
			c.Close()
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetKeepAliveConfig(f.o.KeepAlive)
		}
		if !f.track(c) {
			c.Close()
			return
		}
		f.accepted.Add(1)
		f.active.Add(1)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.active.Add(-1)
			defer f.untrack(c)
			defer c.Close()
			f.relayTCP(c)
		}()
	}
}

func (f *Forward) relayTCP(c net.Conn) {
	d := f.o.Dialer()
	if d == nil {
		f.dialErrors.Add(1)
		return
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.o.DialTimeout)
	t, err := d.Dial(ctx, "tcp", f.target.Load().String())
	cancel()
	if err != nil {
		f.dialErrors.Add(1)
		f.o.Logger.Debug("forward dial failed", "listen", f.o.Listen, "err", err)
		return
	}
	if !f.track(t) {
		t.Close()
		return
	}
	defer f.untrack(t)
	defer t.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pipe(t, c, &f.bytesIn)
	}()
	pipe(c, t, &f.bytesOut)
	wg.Wait()
}

// pipe copies src to dst, then half-closes dst's write side so the peer sees EOF
// while the other direction keeps flowing.
func pipe(dst, src net.Conn, n *atomic.Uint64) {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				break
			}
			n.Add(uint64(k))
		}
		if err != nil {
			break
		}
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
}

type flow struct {
	pc   net.PacketConn
	last atomic.Int64
}

func (f *Forward) udpLoop() {
	uc := f.pc.(*net.UDPConn)
	buf := make([]byte, udpBufSize)
	for {
		n, from, err := uc.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		f.mu.Lock()
		fl := f.flows[from]
		open := len(f.flows)
		f.mu.Unlock()
		if fl == nil {
			if f.atLimit(int64(open)) {
				continue
			}
			if fl = f.newFlow(from); fl == nil {
				continue
			}
		}
		fl.last.Store(time.Now().UnixNano())
		t := f.target.Load()
		if _, err := fl.pc.WriteTo(buf[:n], net.UDPAddrFromAddrPort(*t)); err == nil {
			f.bytesIn.Add(uint64(n))
		}
	}
}

// newFlow opens the namespace socket of a new client and the goroutine relaying its
// replies; only udpLoop calls it, so the flow count it checked still holds.
func (f *Forward) newFlow(from netip.AddrPort) *flow {
	d := f.o.Dialer()
	if d == nil {
		f.dialErrors.Add(1)
		return nil
	}
	network := "udp4"
	if f.target.Load().Addr().Is6() {
		network = "udp6"
	}
	pc, err := d.ListenPacket(network, ":0")
	if err != nil {
		f.dialErrors.Add(1)
		return nil
	}
	fl := &flow{pc: pc}
	fl.last.Store(time.Now().UnixNano())
	if !f.track(pc) {
		pc.Close()
		return nil
	}
	f.mu.Lock()
	f.flows[from] = fl
	f.mu.Unlock()
	f.accepted.Add(1)
	f.active.Add(1)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer f.active.Add(-1)
		defer func() {
			f.mu.Lock()
			delete(f.flows, from)
			f.mu.Unlock()
			f.untrack(pc)
			pc.Close()
		}()
		f.relayReplies(fl, from)
	}()
	return fl
}

// relayReplies copies a flow's replies from the namespace to its client until the
// flow has been idle for UDPIdle or the forward closes.
func (f *Forward) relayReplies(fl *flow, to netip.AddrPort) {
	uc := f.pc.(*net.UDPConn)
	buf := make([]byte, udpBufSize)
	for {
		idle := time.Duration(f.idle.Load())
		fl.pc.SetReadDeadline(time.Now().Add(idle / 4))
		n, _, err := fl.pc.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && f.ctx.Err() == nil &&
				time.Since(time.Unix(0, fl.last.Load())) < idle {
				continue
			}
			return
		}
		fl.last.Store(time.Now().UnixNano())
		if _, err := uc.WriteToUDPAddrPort(buf[:n], to); err == nil {
			f.bytesOut.Add(uint64(n))
		}
	}
}

// Flows is the number of UDP flows in the flow table.
func (f *Forward) Flows() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.flows)
}

// Close stops listening, closes every relayed connection and waits; idempotent.
func (f *Forward) Close() error {
	f.once.Do(func() {
		f.mu.Lock()
		f.cancel()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		if f.ln != nil {
			f.ln.Close()
		}
		if f.pc != nil {
			f.pc.Close()
		}
		f.wg.Wait()
	})
	return nil
}
