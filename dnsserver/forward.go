package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Defaults of ForwarderOptions.
const (
	DefaultResolvConf  = "/etc/resolv.conf"
	DefaultMaxInFlight = 256
	DefaultTimeout     = 2 * time.Second
)

// ForwarderOptions configure a Forwarder.
type ForwarderOptions struct {
	// ResolvConf is the file naming the upstream resolvers (its nameserver lines, on
	// port 53, or on the port of a nameserver written ADDR:PORT or [ADDR]:PORT);
	// default DefaultResolvConf.
	ResolvConf string
	// MaxInFlight caps the queries waiting for an upstream answer at once; a query
	// beyond it gets SERVFAIL at once and is counted as dropped. Default
	// DefaultMaxInFlight.
	MaxInFlight int
	// Timeout bounds each upstream try; default DefaultTimeout.
	Timeout time.Duration
}

// ForwardStats are a Forwarder's counters.
type ForwardStats struct {
	Upstreams []string `json:"upstreams"` // the resolvers, as read from ResolvConf
	InFlight  int64    `json:"in_flight"` // queries waiting for an upstream now
	Forwarded uint64   `json:"forwarded"` // queries answered by an upstream
	Errors    uint64   `json:"errors"`    // queries no upstream answered (SERVFAIL)
	Dropped   uint64   `json:"dropped"`   // queries refused at MaxInFlight (SERVFAIL)
}

// Forwarder sends queries for names outside a server's zone to the host's resolvers.
// It is safe for concurrent use.
type Forwarder struct {
	o        ForwarderOptions
	servers  []string // host:port
	inFlight atomic.Int64

	forwarded, errors, dropped atomic.Uint64
}

// NewForwarder reads the upstream resolvers from o.ResolvConf.
func NewForwarder(o ForwarderOptions) (*Forwarder, error) {
	if o.ResolvConf == "" {
		o.ResolvConf = DefaultResolvConf
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	cc, err := dns.ClientConfigFromFile(o.ResolvConf)
	if err != nil {
		return nil, fmt.Errorf("dns forward: read %s: %w", o.ResolvConf, err)
	}
	f := &Forwarder{o: o}
	for _, s := range cc.Servers {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			f.servers = append(f.servers, ap.String())
			continue
		}
		f.servers = append(f.servers, net.JoinHostPort(s, cc.Port))
	}
	if len(f.servers) == 0 {
		return nil, fmt.Errorf("dns forward: %s names no nameserver", o.ResolvConf)
	}
	return f, nil
}

// Stats returns the counters.
func (f *Forwarder) Stats() ForwardStats {
	return ForwardStats{Upstreams: append([]string(nil), f.servers...), InFlight: f.inFlight.Load(),
		Forwarded: f.forwarded.Load(), Errors: f.errors.Load(), Dropped: f.dropped.Load()}
}

// errBusy is Exchange's error at MaxInFlight.
var errBusy = errors.New("dns forward: too many queries in flight")

// Exchange asks the upstreams in turn (UDP, then TCP when the answer is truncated)
// and returns the first answer, its ID set to q's.
func (f *Forwarder) Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	if f.inFlight.Add(1) > int64(f.o.MaxInFlight) {
		f.inFlight.Add(-1)
		f.dropped.Add(1)
		return nil, errBusy
	}
	defer f.inFlight.Add(-1)
	var lastErr error
	for _, srv := range f.servers {
		r, err := f.exchange(ctx, q, srv)
		if err == nil {
			f.forwarded.Add(1)
			r.Id = q.Id
			return r, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	f.errors.Add(1)
	return nil, fmt.Errorf("dns forward %s: %w", q.Question[0].Name, lastErr)
}

func (f *Forwarder) exchange(ctx context.Context, q *dns.Msg, srv string) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", Timeout: f.o.Timeout}
	r, _, err := c.ExchangeContext(ctx, q, srv)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(ctx, q, srv)
	}
	return r, err
}

// reply answers q: from the records for names in the zone (and always when there
// is no forwarder), else through the forwarder, SERVFAIL when that fails.
func (s *Server) reply(ctx context.Context, q *dns.Msg) *dns.Msg {
	f := s.opts.Forward
	if f == nil || len(q.Question) != 1 || dns.IsSubDomain(s.zone, dns.CanonicalName(q.Question[0].Name)) {
		return s.Answer(q)
	}
	r, err := f.Exchange(ctx, q)
	if err != nil {
		s.opts.Logger.Debug("dns forward failed", "name", q.Question[0].Name, "err", err)
		r = new(dns.Msg)
		r.SetRcode(q, dns.RcodeServerFailure)
		r.RecursionAvailable = true
	}
	return r
}
