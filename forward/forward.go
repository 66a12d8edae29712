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
	// DialTimeout bounds connecting to the target; default 5s.
	DialTimeout time.Duration
	// Logger receives errors; default slog.Default().
	Logger *slog.Logger
}

// Stats are a forward's counters.
type Stats struct {
	Accepted   uint64 `json:"accepted"`    // connections or UDP flows started
	Active     int64  `json:"active"`      // connections or flows open now
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
	flows  map[string]*flow
	once   sync.Once

	accepted, dialErrors, bytesIn, bytesOut atomic.Uint64
	active                                  atomic.Int64
}

// Start binds the host socket and serves in the background.
func Start(o Options) (*Forward, error) {
	if o.UDPIdle <= 0 {
		o.UDPIdle = 60 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	f := &Forward{o: o, conns: map[io.Closer]struct{}{}, flows: map[string]*flow{}}
	f.target.Store(&o.Target)
	f.ctx, f.cancel = context.WithCancel(context.Background())
	var err error
	switch o.Protocol {
	case "tcp":
		if f.ln, err = net.Listen("tcp", o.Listen.String()); err != nil {
			f.cancel()
			return nil, fmt.Errorf("forward tcp %s: %w", o.Listen, err)
		}
		f.wg.Add(1)
		go func() { defer f.wg.Done(); f.acceptLoop() }()
	case "udp":
		if f.pc, err = net.ListenPacket("udp", o.Listen.String()); err != nil {
			f.cancel()
			return nil, fmt.Errorf("forward udp %s: %w", o.Listen, err)
		}
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

// Stats returns the counters.
func (f *Forward) Stats() Stats {
	return Stats{Accepted: f.accepted.Load(), Active: f.active.Load(), DialErrors: f.dialErrors.Load(), BytesIn: f.bytesIn.Load(), BytesOut: f.bytesOut.Load()}
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
	buf := make([]byte, 65536)
	for {
		n, from, err := f.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		key := from.String()
		f.mu.Lock()
		fl := f.flows[key]
		f.mu.Unlock()
		if fl == nil {
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

func (f *Forward) newFlow(from net.Addr) *flow {
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
	key := from.String()
	f.mu.Lock()
	f.flows[key] = fl
	f.mu.Unlock()
	f.accepted.Add(1)
	f.active.Add(1)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer f.active.Add(-1)
		defer func() {
			f.mu.Lock()
			delete(f.flows, key)
			f.mu.Unlock()
			f.untrack(pc)
			pc.Close()
		}()
		buf := make([]byte, 65536)
		for {
			pc.SetReadDeadline(time.Now().Add(f.o.UDPIdle / 4))
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && f.ctx.Err() == nil &&
					time.Since(time.Unix(0, fl.last.Load())) < f.o.UDPIdle {
					continue
				}
				return
			}
			fl.last.Store(time.Now().UnixNano())
			if _, err := f.pc.WriteTo(buf[:n], from); err == nil {
				f.bytesOut.Add(uint64(n))
			}
		}
	}()
	return fl
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
