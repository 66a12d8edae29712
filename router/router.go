package router

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/gaissmai/bart"

	"github.com/vnetd/vnetd/frame"
)

// Options configure a Router.
type Options struct {
	// Name names the router in logs and listings.
	Name string
	// Logger receives control-path messages (never per packet); nil discards them.
	Logger *slog.Logger
	// Now is the clock for the neighbour cache and ICMP rate limit; nil means time.Now.
	Now func() time.Time
	// MaxNeighbors bounds the neighbour cache; 0 means 1024.
	MaxNeighbors int
	// MaxPending bounds the frames queued on one incomplete neighbour entry; 0 means 8.
	MaxPending int
	// NeighborTTL is how long a resolved entry is trusted before it is re-probed;
	// 0 means 5 minutes.
	NeighborTTL time.Duration
	// ResolveTimeout is how long an incomplete entry waits for an answer before its
	// queued frames are dropped; 0 means 3 seconds.
	ResolveTimeout time.Duration
	// ICMPRate is the number of ICMP errors sent per second; 0 means 100, negative
	// disables ICMP errors.
	ICMPRate int
	// ICMPBurst is the ICMP error burst; 0 means ICMPRate.
	ICMPBurst int
	// QueueLen bounds each interface's egress queue; 0 means 1024.
	QueueLen int
	// RAInterval is the time between unsolicited router advertisements on
	// interfaces with Advertise; 0 means 60 seconds.
	RAInterval time.Duration
	// Shortcut, if set, resolves a next hop MAC on an interface's switch (and VLAN) to
	// an in-process port; forwarded frames for it are written straight to that port.
	Shortcut func(iface string, vlan uint16, dst frame.MAC) (frame.Port, bool)
}

// IfaceConfig describes one router interface.
type IfaceConfig struct {
	// Name is the interface's name, unique in the router.
	Name string
	// MAC is the interface's MAC; zero means frame.LocalMAC(router name + "." + Name).
	MAC frame.MAC
	// MTU is the largest L3 packet the interface sends; 0 means 1500.
	MTU int
	// VLAN is the VLAN the daemon attaches the interface to (passed to Shortcut).
	VLAN uint16
	// Addresses are the interface's addresses; their prefixes become connected routes.
	Addresses []netip.Prefix
	// ProxyARP answers ARP requests for addresses routed out of another interface.
	ProxyARP bool
	// Advertise sends IPv6 router advertisements (RFC 4861) on the interface: the
	// router as a default router, the MTU, and every /64 of Addresses as a SLAAC
	// prefix, every RAInterval and in answer to router solicitations.
	Advertise bool
	// L3Peer, when set, makes the interface a point-to-point L3 leg to one L3-only
	// NIC (see L3Peer); ProxyARP and Advertise are then ignored.
	L3Peer *L3Peer
}

// L3Peer is the far end of a point-to-point L3 leg: an L3-only NIC (nsstack's
// NICL3) joined to the interface by a pass-through pair. On such a leg the router
// resolves no neighbour, answers no ARP or NDP and sends no router advertisement:
// every packet routed out of it is framed with the interface's MAC as source, MAC as
// destination and the IP EtherType, the framing the NIC expects; every IPv4 or IPv6
// frame it receives is routed whatever its destination MAC, anything else is dropped
// (counted as proto).
type L3Peer struct {
	// MAC is the NIC's MAC, the destination of every frame sent on the leg.
	MAC frame.MAC
	// Addresses are the NIC's addresses; each becomes a connected host route (/32,
	// /128) out of the leg.
	Addresses []netip.Addr
}

// Route is a static route.
type Route struct {
	// To is the destination prefix.
	To netip.Prefix
	// Via is the next hop, which must be on a connected prefix.
	Via netip.Addr
}

// RouteInfo is one routing table entry as listed by Routes.
type RouteInfo struct {
	To        netip.Prefix `json:"to"`
	Via       netip.Addr   `json:"via,omitzero"`
	Iface     string       `json:"iface"`
	Connected bool         `json:"connected"`
}

// NeighborInfo is one neighbour cache entry.
type NeighborInfo struct {
	Addr     netip.Addr `json:"addr"`
	MAC      frame.MAC  `json:"mac"`
	Iface    string     `json:"iface"`
	Complete bool       `json:"complete"`
	Pending  int        `json:"pending"`
	Updated  time.Time  `json:"updated"`
}

// IfaceInfo is one interface with its counters, as listed by Interfaces.
type IfaceInfo struct {
	Name string `json:"name"`
	// Kind is KindL2 (a switch port) or KindL3 (a point-to-point leg; PeerMAC is
	// the L3 NIC's MAC).
	Kind       string                `json:"kind"`
	PeerMAC    frame.MAC             `json:"peer_mac,omitzero"`
	MAC        frame.MAC             `json:"mac"`
	MTU        int                   `json:"mtu"`
	VLAN       uint16                `json:"vlan"`
	Addresses  []netip.Prefix        `json:"addresses"`
	Counters   frame.CounterSnapshot `json:"counters"`
	Forwarded  uint64                `json:"forwarded"`
	Shortcut   uint64                `json:"shortcut"`
	ICMPErrors uint64                `json:"icmp_errors"`
	Dropped    map[string]uint64     `json:"dropped"`
}

type route struct {
	to        netip.Prefix
	iface     *iface
	via       netip.Addr
	connected bool
}

// Router is an L3 router between switches. Its methods are safe for concurrent use.
type Router struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time

	mu     sync.RWMutex
	ifaces []*iface               // guarded by mu
	byName map[string]*iface      // guarded by mu
	table  bart.Table[*route]     // guarded by mu
	static map[netip.Prefix]Route // guarded by mu
	closed bool                   // guarded by mu

	neigh neighbors
	icmp  tokenBucket

	stop     chan struct{}
	wg       sync.WaitGroup
	closeOne sync.Once
}

// New returns a router with no interfaces.
func New(o Options) *Router {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxNeighbors <= 0 {
		o.MaxNeighbors = 1024
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 8
	}
	if o.NeighborTTL <= 0 {
		o.NeighborTTL = 5 * time.Minute
	}
	if o.ResolveTimeout <= 0 {
		o.ResolveTimeout = 3 * time.Second
	}
	if o.ICMPRate == 0 {
		o.ICMPRate = 100
	}
	if o.ICMPBurst <= 0 {
		o.ICMPBurst = max(o.ICMPRate, 1)
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 1024
	}
	if o.RAInterval <= 0 {
		o.RAInterval = time.Minute
	}
	r := &Router{
		opts:   o,
		log:    o.Logger.With("router", o.Name),
		now:    o.Now,
		byName: map[string]*iface{},
		static: map[netip.Prefix]Route{},
		stop:   make(chan struct{}),
	}
	r.neigh.init(o.MaxNeighbors)
	r.icmp.init(o.ICMPRate, o.ICMPBurst)
	r.wg.Add(1)
	go r.janitor()
	return r
}

// janitor expires incomplete neighbour entries and retries their probes.
func (r *Router) janitor() {
	defer r.wg.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.Tick()
		}
	}
}

// Tick runs the neighbour cache's timers at Now(): it re-probes unresolved entries
// and drops those past ResolveTimeout. A janitor goroutine calls it twice a second;
// tests with a fake clock call it directly.
func (r *Router) Tick() {
	now := r.now()
	r.neigh.expire(r, now)
	r.mu.Lock()
	ifaces := r.ifaces
	r.mu.Unlock()
	for _, i := range ifaces {
		i.periodicRA(now)
	}
}

var errClosed = errors.New("router closed")

// AddInterface adds an interface and returns the port to attach to its switch.
func (r *Router) AddInterface(c IfaceConfig) (frame.Port, error) {
	if c.Name == "" {
		return nil, fmt.Errorf("router %q: add interface: empty name", r.opts.Name)
	}
	if c.MTU == 0 {
		c.MTU = 1500
	}
	if c.MTU < 576 || c.MTU > 65535 {
		return nil, fmt.Errorf("router %q: add interface %q: MTU %d out of range 576-65535", r.opts.Name, c.Name, c.MTU)
	}
	if c.MAC.IsZero() {
		c.MAC = frame.LocalMAC(r.opts.Name + "." + c.Name)
	}
	if c.MAC.IsMulticast() {
		return nil, fmt.Errorf("router %q: add interface %q: multicast MAC %v", r.opts.Name, c.Name, c.MAC)
	}
	for _, p := range c.Addresses {
		if !p.IsValid() {
			return nil, fmt.Errorf("router %q: add interface %q: invalid address %v", r.opts.Name, c.Name, p)
		}
	}
	if pc := c.L3Peer; pc != nil {
		if pc.MAC.IsZero() || pc.MAC.IsMulticast() {
			return nil, fmt.Errorf("router %q: add interface %q: l3 peer MAC %v is not a unicast MAC", r.opts.Name, c.Name, pc.MAC)
		}
		for _, a := range pc.Addresses {
			if !a.IsValid() {
				return nil, fmt.Errorf("router %q: add interface %q: invalid l3 peer address %v", r.opts.Name, c.Name, a)
			}
		}
		c.ProxyARP, c.Advertise = false, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("router %q: add interface %q: %w", r.opts.Name, c.Name, errClosed)
	}
	if _, dup := r.byName[c.Name]; dup {
		return nil, fmt.Errorf("router %q: add interface %q: name in use", r.opts.Name, c.Name)
	}
	ifc := newIface(r, c)
	r.ifaces = append(r.ifaces, ifc)
	r.byName[c.Name] = ifc
	for _, pm := range ifc.connected() {
		r.table.Insert(pm, &route{to: pm, iface: ifc, connected: true})
	}
	r.log.Info("interface added", "iface", c.Name, "mac", c.MAC, "addresses", c.Addresses)
	return ifc, nil
}

// AddRoute adds (or replaces) a static route. Its next hop must be on a connected
// prefix.
func (r *Router) AddRoute(rt Route) error {
	if !rt.To.IsValid() || !rt.Via.IsValid() {
		return fmt.Errorf("router %q: add route %v via %v: invalid prefix or next hop", r.opts.Name, rt.To, rt.Via)
	}
	if rt.To.Addr().Is4() != rt.Via.Is4() {
		return fmt.Errorf("router %q: add route %v via %v: address family mismatch", r.opts.Name, rt.To, rt.Via)
	}
	rt.To = rt.To.Masked()
	r.mu.Lock()
	defer r.mu.Unlock()
	nh, ok := r.table.Lookup(rt.Via)
	if !ok || !nh.connected {
		return fmt.Errorf("router %q: add route %v via %v: next hop not on a connected network", r.opts.Name, rt.To, rt.Via)
	}
	r.table.Insert(rt.To, &route{to: rt.To, iface: nh.iface, via: rt.Via})
	r.static[rt.To] = rt
	return nil
}

// RemoveRoute removes the static route to rt.To.
func (r *Router) RemoveRoute(rt Route) error {
	rt.To = rt.To.Masked()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.static[rt.To]; !ok {
		return fmt.Errorf("router %q: remove route %v: no such static route", r.opts.Name, rt.To)
	}
	delete(r.static, rt.To)
	r.table.Delete(rt.To)
	// Restore a connected route the static one shadowed.
	for _, ifc := range r.ifaces {
		for _, pm := range ifc.connected() {
			if pm == rt.To {
				r.table.Insert(rt.To, &route{to: rt.To, iface: ifc, connected: true})
			}
		}
	}
	return nil
}

// Routes lists the routing table, sorted by prefix.
func (r *Router) Routes() []RouteInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []RouteInfo
	for _, rt := range r.table.All() {
		out = append(out, RouteInfo{To: rt.to, Via: rt.via, Iface: rt.iface.cfg.Name, Connected: rt.connected})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].To, out[j].To
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c < 0
		}
		return a.Bits() < b.Bits()
	})
	return out
}

// Interfaces lists the interfaces with their counters.
func (r *Router) Interfaces() []IfaceInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]IfaceInfo, 0, len(r.ifaces))
	for _, ifc := range r.ifaces {
		out = append(out, ifc.info())
	}
	return out
}

// Neighbors lists the neighbour cache.
func (r *Router) Neighbors() []NeighborInfo { return r.neigh.list() }

// Close closes every interface and stops the router. It is idempotent.
func (r *Router) Close() error {
	r.closeOne.Do(func() {
		r.mu.Lock()
		r.closed = true
		ifs := append([]*iface(nil), r.ifaces...)
		r.mu.Unlock()
		close(r.stop)
		r.wg.Wait()
		for _, ifc := range ifs {
			ifc.Close()
		}
		r.neigh.clear()
	})
	return nil
}

// lookup returns the route for dst. Caller holds no lock.
func (r *Router) lookup(dst netip.Addr) (*route, bool) {
	r.mu.RLock()
	rt, ok := r.table.Lookup(dst)
	r.mu.RUnlock()
	return rt, ok
}

// ownerOf returns the interface holding address a, if any.
func (r *Router) ownerOf(a netip.Addr) *iface {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, ifc := range r.ifaces {
		for _, p := range ifc.cfg.Addresses {
			if p.Addr() == a {
				return ifc
			}
		}
	}
	return nil
}

// tokenBucket is the ICMP error rate limit.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func (b *tokenBucket) init(rate, burst int) {
	b.rate, b.burst, b.tokens = float64(rate), float64(burst), float64(burst)
}

func (b *tokenBucket) take(now time.Time) bool {
	if b.rate < 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
