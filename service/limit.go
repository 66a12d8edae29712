package service

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of LimitOptions.
const (
	DefaultRate       = 500  // datagrams a second answered per source (address and port)
	DefaultBurst      = 200  // datagrams a source may send at once before the rate applies
	DefaultMaxSources = 4096 // sources tracked; beyond it new sources share one bucket
)

// reflectorPorts are the well-known UDP ports of services that answer whatever
// arrives (the lists of amplification and reflection sources: echo, systat, daytime,
// qotd, chargen, time, DNS, TFTP, portmap, NTP, NetBIOS name, SNMP, CLDAP, SSDP,
// mDNS, memcached, WS-Discovery) and port 0, which no real client sends from. A
// datagram from one of them is either spoofed or another server's answer; replying
// starts a loop between two servers (echo to echo, echo to chargen, ...).
var reflectorPorts = [...]uint16{0, 7, 11, 13, 17, 19, 37, 53, 69, 111, 123, 137, 161, 389, 1900, 3702, 5353, 11211}

// ReflectorPort reports whether a UDP echo must not answer datagrams from port.
func ReflectorPort(port uint16) bool {
	for _, p := range reflectorPorts {
		if p == port {
			return true
		}
	}
	return false
}

// LimitOptions configure a Limiter; zero fields take the defaults.
type LimitOptions struct {
	// Rate is the datagrams a second answered per source (address and port); default
	// 500. A source is a client socket: the clients of a forward, which all come from
	// the forward's namespace address, each have their own.
	Rate int
	// Burst is the bucket's depth, what a source may send at once; default 200.
	Burst int
	// MaxSources bounds the sources tracked; default 4096. When every slot is taken
	// by a source that sent recently, new sources share one overflow bucket.
	MaxSources int
}

// Limiter is a per-source token bucket with a bounded table of sources. A single
// datagram bouncing between two servers (a loop started by one spoofed datagram)
// drains its bucket within the burst and dies at the first drop.
type Limiter struct {
	o         LimitOptions
	mu        sync.Mutex
	sources   map[netip.AddrPort]*bucket // guarded by mu
	overflow  bucket                     // guarded by mu: shared by sources beyond MaxSources
	swept     time.Time                  // guarded by mu: the last sweep, at most one a second
	reflector atomic.Uint64
	limited   atomic.Uint64
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewLimiter returns a limiter with o's settings.
func NewLimiter(o LimitOptions) *Limiter {
	if o.Rate <= 0 {
		o.Rate = DefaultRate
	}
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.MaxSources <= 0 {
		o.MaxSources = DefaultMaxSources
	}
	return &Limiter{o: o, sources: make(map[netip.AddrPort]*bucket)}
}

// Allow takes a token from src's bucket at now; false (counted) when it is empty.
func (l *Limiter) Allow(src netip.AddrPort, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.sources[src]
	if b == nil {
		if len(l.sources) >= l.o.MaxSources && now.Sub(l.swept) >= time.Second {
			l.swept = now
			l.sweepLocked(now)
		}
		if len(l.sources) < l.o.MaxSources {
			b = &bucket{tokens: float64(l.o.Burst), last: now}
			l.sources[src] = b
		} else {
			b = &l.overflow
		}
	}
	b.refill(now, l.o)
	if b.tokens < 1 {
		l.limited.Add(1)
		return false
	}
	b.tokens--
	return true
}

// sweepLocked forgets the sources whose bucket has refilled: they are idle, and a
// new bucket for them would start full anyway.
func (l *Limiter) sweepLocked(now time.Time) {
	for a, b := range l.sources {
		b.refill(now, l.o)
		if b.tokens >= float64(l.o.Burst) {
			delete(l.sources, a)
		}
	}
}

func (b *bucket) refill(now time.Time, o LimitOptions) {
	if b.last.IsZero() {
		b.tokens, b.last = float64(o.Burst), now
		return
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(float64(o.Burst), b.tokens+d.Seconds()*float64(o.Rate))
		b.last = now
	}
}

// Len is the number of sources tracked now.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sources)
}
