package dhcpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vnetd/vnetd/frame"
)

// Config configures a server.
type Config struct {
	// ServerIP is the server's own address (the server identifier).
	ServerIP netip.Addr
	// Subnet is the served subnet; its mask is handed out.
	Subnet netip.Prefix
	// RangeStart and RangeEnd bound the dynamic pool, inclusive.
	RangeStart, RangeEnd netip.Addr
	// Router is the default gateway handed out; invalid means none.
	Router netip.Addr
	// DNS are the name servers handed out.
	DNS []netip.Addr
	// Lease is the lease duration; 0 means one hour.
	Lease time.Duration
	// Static maps MACs to fixed addresses.
	Static map[frame.MAC]netip.Addr
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives lease events; nil means slog.Default().
	Logger *slog.Logger
	// MaxLeases caps the bindings (offers and leases, static ones included) the server
	// keeps; 0 means DefaultMaxLeases. A client asking while the table is full (after
	// expired bindings are swept) gets no answer and is counted in Stats.AtCap.
	MaxLeases int
}

// DefaultMaxLeases is the lease table cap when Config.MaxLeases is 0: a DISCOVER
// storm from random MACs cannot make the server allocate (or scan) more.
const DefaultMaxLeases = 4096

// Stats are a server's counters.
type Stats struct {
	// Leases is how many bindings the table holds now (expired ones not yet swept included).
	Leases int `json:"leases"`
	// MaxLeases is the table's cap.
	MaxLeases int `json:"max_leases"`
	// AtCap counts requests from new clients refused because MaxLeases bindings were held.
	AtCap uint64 `json:"refused_at_cap"`
	// Exhausted counts requests refused because no address of the pool was free.
	Exhausted uint64 `json:"pool_exhausted"`
}

// Lease is one address binding.
type Lease struct {
	// MAC is the client's hardware address.
	MAC frame.MAC
	// Addr is the leased address.
	Addr netip.Addr
	// Expires is when the lease ends (zero for an offer not yet acknowledged).
	Expires time.Time
	// Static reports a configured static lease.
	Static bool
}

// Server hands out leases.
type Server struct {
	cfg    Config
	mu     sync.Mutex
	leases map[frame.MAC]*Lease // guarded by mu
	full   bool                 // guarded by mu: the last new client was refused (logged once)

	atCap, exhausted atomic.Uint64
}

// New validates cfg and returns a server.
func New(cfg Config) (*Server, error) {
	if !cfg.ServerIP.Is4() || !cfg.Subnet.Addr().Is4() {
		return nil, fmt.Errorf("dhcp server: ServerIP %v and Subnet %v must be IPv4", cfg.ServerIP, cfg.Subnet)
	}
	if !cfg.Subnet.Contains(cfg.RangeStart) || !cfg.Subnet.Contains(cfg.RangeEnd) || cfg.RangeEnd.Less(cfg.RangeStart) {
		return nil, fmt.Errorf("dhcp server: range %v-%v not inside %v", cfg.RangeStart, cfg.RangeEnd, cfg.Subnet)
	}
	if cfg.Lease == 0 {
		cfg.Lease = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxLeases <= 0 {
		cfg.MaxLeases = DefaultMaxLeases
	}
	return &Server{cfg: cfg, leases: map[frame.MAC]*Lease{}}, nil
}

// Leases returns the current bindings sorted by address.
func (s *Server) Leases() []Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	out := make([]Lease, 0, len(s.leases))
	for _, l := range s.leases {
		if !l.Static && !l.Expires.IsZero() && now.After(l.Expires) {
			continue
		}
		out = append(out, *l)
	}
	// Static bindings are listed before their host asks, so the table shows every
	// address the server will hand out; Expires stays zero until it is leased.
	for mac, a := range s.cfg.Static {
		if _, leased := s.leases[mac]; !leased {
			out = append(out, Lease{MAC: mac, Addr: a, Static: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Less(out[j].Addr) })
	return out
}

// Stats snapshots the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.leases)
	s.mu.Unlock()
	return Stats{Leases: n, MaxLeases: s.cfg.MaxLeases, AtCap: s.atCap.Load(), Exhausted: s.exhausted.Load()}
}

// roomLocked reports whether mac may get a binding: it has one already, or the table
// has room once expired bindings are swept. A refusal is counted and logged once
// until a new client is served again (a storm logs one line, not one per packet).
func (s *Server) roomLocked(mac frame.MAC) bool {
	if _, ok := s.leases[mac]; ok {
		return true
	}
	if _, ok := s.cfg.Static[mac]; ok {
		return true // configured: never refused, whatever a storm did
	}
	if len(s.leases) >= s.cfg.MaxLeases {
		now := s.cfg.Now()
		for m, l := range s.leases {
			if !l.Static && now.After(l.Expires) {
				delete(s.leases, m)
			}
		}
	}
	if len(s.leases) < s.cfg.MaxLeases {
		return true
	}
	s.atCap.Add(1)
	if !s.full {
		s.full = true
		s.cfg.Logger.Warn("dhcp lease table full: new clients get no answer", "max_leases", s.cfg.MaxLeases)
	}
	return false
}

// pick returns the address for mac: static, existing, or the first free in the range.
func (s *Server) pick(mac frame.MAC, want netip.Addr) (netip.Addr, bool) {
	if a, ok := s.cfg.Static[mac]; ok {
		return a, true
	}
	if l, ok := s.leases[mac]; ok {
		return l.Addr, true
	}
	now := s.cfg.Now()
	used := map[netip.Addr]bool{}
	for m, l := range s.leases {
		if m != mac && (l.Static || l.Expires.IsZero() || now.Before(l.Expires)) {
			used[l.Addr] = true
		}
	}
	for _, a := range s.cfg.Static {
		used[a] = true
	}
	if want.IsValid() && !used[want] && !want.Less(s.cfg.RangeStart) && !s.cfg.RangeEnd.Less(want) {
		return want, true
	}
	for a := s.cfg.RangeStart; !s.cfg.RangeEnd.Less(a); a = a.Next() {
		if !used[a] && a != s.cfg.ServerIP {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// Handle answers one request; it returns nil when no reply is due.
func (s *Server) Handle(req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	if req.OpCode != dhcpv4.OpcodeBootRequest || len(req.ClientHWAddr) != 6 {
		return nil
	}
	var mac frame.MAC
	copy(mac[:], req.ClientHWAddr)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		if !s.roomLocked(mac) {
			return nil
		}
		want, _ := netip.AddrFromSlice(req.RequestedIPAddress().To4())
		a, ok := s.pick(mac, want)
		if !ok {
			s.exhausted.Add(1)
			if !s.full {
				s.full = true
				s.cfg.Logger.Warn("dhcp pool exhausted: new clients get no answer", "mac", mac)
			}
			return nil
		}
		if _, had := s.leases[mac]; !had {
			s.full = false
			s.leases[mac] = &Lease{MAC: mac, Addr: a, Expires: s.cfg.Now().Add(time.Minute), Static: s.cfg.Static[mac].IsValid()}
		}
		return s.reply(req, dhcpv4.MessageTypeOffer, a)
	case dhcpv4.MessageTypeRequest:
		if sid := req.ServerIdentifier(); sid != nil && !sid.Equal(net.IP(s.cfg.ServerIP.AsSlice())) {
			delete(s.leases, mac) // chose another server
			return nil
		}
		want, _ := netip.AddrFromSlice(req.RequestedIPAddress().To4())
		if !want.IsValid() {
			want, _ = netip.AddrFromSlice(req.ClientIPAddr.To4())
		}
		if !s.roomLocked(mac) {
			return nil
		}
		a, ok := s.pick(mac, want)
		if !ok || a != want {
			return s.reply(req, dhcpv4.MessageTypeNak, netip.Addr{})
		}
		s.leases[mac] = &Lease{MAC: mac, Addr: a, Expires: s.cfg.Now().Add(s.cfg.Lease), Static: s.cfg.Static[mac].IsValid()}
		s.cfg.Logger.Info("dhcp lease", "mac", mac, "addr", a)
		return s.reply(req, dhcpv4.MessageTypeAck, a)
	case dhcpv4.MessageTypeRelease:
		if l, ok := s.leases[mac]; ok && net.IP(l.Addr.AsSlice()).Equal(req.ClientIPAddr) {
			delete(s.leases, mac)
		}
	}
	return nil
}

func (s *Server) reply(req *dhcpv4.DHCPv4, t dhcpv4.MessageType, a netip.Addr) *dhcpv4.DHCPv4 {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(t),
		dhcpv4.WithServerIP(net.IP(s.cfg.ServerIP.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(s.cfg.ServerIP.AsSlice()))),
	}
	if t != dhcpv4.MessageTypeNak {
		mods = append(mods,
			dhcpv4.WithYourIP(net.IP(a.AsSlice())),
			dhcpv4.WithNetmask(net.CIDRMask(s.cfg.Subnet.Bits(), 32)),
			dhcpv4.WithLeaseTime(uint32(s.cfg.Lease/time.Second)))
		if s.cfg.Router.IsValid() {
			mods = append(mods, dhcpv4.WithRouter(net.IP(s.cfg.Router.AsSlice())))
		}
		if len(s.cfg.DNS) > 0 {
			var ips []net.IP
			for _, d := range s.cfg.DNS {
				ips = append(ips, net.IP(d.AsSlice()))
			}
			mods = append(mods, dhcpv4.WithDNS(ips...))
		}
	}
	resp, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		return nil
	}
	return resp
}

// Serve answers requests on conn (a UDP socket on port 67) until ctx ends or conn
// fails. Replies go to the relay, the client's address when it has one, or broadcast
// 255.255.255.255:68.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("dhcp read: %w", err)
		}
		req, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			continue
		}
		resp := s.Handle(req)
		if resp == nil {
			continue
		}
		to := &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
		switch {
		case !req.GatewayIPAddr.IsUnspecified() && req.GatewayIPAddr != nil:
			to = &net.UDPAddr{IP: req.GatewayIPAddr, Port: dhcpv4.ServerPort}
		case !req.ClientIPAddr.IsUnspecified() && req.ClientIPAddr != nil:
			to = &net.UDPAddr{IP: req.ClientIPAddr, Port: dhcpv4.ClientPort}
		}
		_ = from
		if _, err := conn.WriteTo(resp.ToBytes(), to); err != nil {
			s.cfg.Logger.Warn("dhcp reply", "to", to, "err", err)
		}
	}
}

// Restore takes over bindings another server held (an imported namespace's): each
// lease not yet expired whose address lies in the subnet becomes this server's, so
// its client's renewal is acknowledged. Offers and expired leases are skipped; a
// MAC already bound keeps its binding. It returns how many were taken.
func (s *Server) Restore(leases []Lease) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	n := 0
	for _, l := range leases {
		if l.Expires.IsZero() || !now.Before(l.Expires) || !s.cfg.Subnet.Contains(l.Addr) || l.Addr == s.cfg.ServerIP {
			continue
		}
		if _, had := s.leases[l.MAC]; had {
			continue
		}
		l.Static = s.cfg.Static[l.MAC].IsValid()
		s.leases[l.MAC] = &l
		n++
	}
	return n
}
