package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"
)

// Options configure a server.
type Options struct {
	// TTL is the TTL of every answer in seconds; 0 means 60.
	TTL uint32
	// Logger receives serve errors; nil means slog.Default().
	Logger *slog.Logger
	// Zone is the zone the records live in (default "lab."): with Forward set,
	// queries for names outside it go to Forward instead of getting NXDOMAIN.
	Zone string
	// Forward, when set, resolves names outside Zone (see forward.go).
	Forward *Forwarder
}

// Server answers A/AAAA queries from its record snapshot.
type Server struct {
	opts    Options
	zone    string // canonical Zone
	records atomic.Pointer[map[string][]netip.Addr]
}

// New returns a server with no records.
func New(opts Options) *Server {
	if opts.TTL == 0 {
		opts.TTL = 60
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Zone == "" {
		opts.Zone = "lab."
	}
	s := &Server{opts: opts, zone: dns.CanonicalName(opts.Zone)}
	s.SetRecords(nil)
	return s
}

// Names builds the conventional names for a namespace NIC: NIC.NAMESPACE.ZONE, and
// NAMESPACE.ZONE for the namespace itself. Callers add both to the record map.
func Names(nic, namespace, zone string) (nicName, nsName string) {
	zone = strings.Trim(zone, ".")
	return nic + "." + namespace + "." + zone, namespace + "." + zone
}

// SetRecords replaces the record snapshot: name (any case, with or without a trailing
// dot) to addresses. Safe to call while serving.
func (s *Server) SetRecords(recs map[string][]netip.Addr) {
	m := make(map[string][]netip.Addr, len(recs))
	for name, addrs := range recs {
		k := dns.CanonicalName(name)
		m[k] = append(m[k], addrs...)
	}
	s.records.Store(&m)
}

// Answer builds the reply to q.
func (s *Server) Answer(q *dns.Msg) *dns.Msg {
	r := new(dns.Msg)
	r.SetReply(q)
	r.Authoritative = true
	r.RecursionAvailable = false
	if len(q.Question) != 1 {
		r.Rcode = dns.RcodeFormatError
		return r
	}
	qq := q.Question[0]
	addrs, ok := (*s.records.Load())[dns.CanonicalName(qq.Name)]
	if !ok {
		r.Rcode = dns.RcodeNameError
		return r
	}
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: qq.Name, Rrtype: t, Class: dns.ClassINET, Ttl: s.opts.TTL}
	}
	for _, a := range addrs {
		switch {
		case a.Is4() && (qq.Qtype == dns.TypeA || qq.Qtype == dns.TypeANY):
			r.Answer = append(r.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: net.IP(a.AsSlice())})
		case a.Is6() && (qq.Qtype == dns.TypeAAAA || qq.Qtype == dns.TypeANY):
			r.Answer = append(r.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: net.IP(a.AsSlice())})
		}
	}
	return r // name exists: NOERROR, possibly empty (NODATA)
}

// Serve answers queries over UDP on conn until ctx ends or conn fails. An answer larger
// than the client can take (512 bytes, or its EDNS0 buffer size) is truncated and
// flagged TC, so the client asks again over TCP (ServeTCP).
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	return s.run(ctx, &dns.Server{PacketConn: conn, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		s.write(w, s.udpReply(ctx, q))
	})})
}

// udpReply is the answer to q over UDP: truncated to what the client can take.
func (s *Server) udpReply(ctx context.Context, q *dns.Msg) *dns.Msg {
	r := s.reply(ctx, q)
	r.Truncate(udpSize(q))
	return r
}

// udpSize is the largest UDP answer q's sender takes: 512 bytes, or its EDNS0 size.
func udpSize(q *dns.Msg) int {
	if opt := q.IsEdns0(); opt != nil {
		return max(int(opt.UDPSize()), dns.MinMsgSize)
	}
	return dns.MinMsgSize
}

// ServeTCP answers queries over TCP (RFC 7766; what a client falls back to after a
// truncated UDP answer) on l until ctx ends or l fails.
func (s *Server) ServeTCP(ctx context.Context, l net.Listener) error {
	return s.run(ctx, &dns.Server{Listener: l, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		s.write(w, s.reply(ctx, q))
	})})
}

func (s *Server) write(w dns.ResponseWriter, r *dns.Msg) {
	if err := w.WriteMsg(r); err != nil {
		s.opts.Logger.Debug("dns reply", "err", err)
	}
}

// run serves srv until ctx ends; a listener closed under it is a normal end.
func (s *Server) run(ctx context.Context, srv *dns.Server) error {
	stop := context.AfterFunc(ctx, func() { srv.Shutdown() })
	defer stop()
	err := srv.ActivateAndServe()
	if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dns serve: %w", err)
	}
	return nil
}
