package l2switch

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vnetd/vnetd/frame"
)

// minShards is the least number of FDB shards; more are used so that a shard holds
// at most about shardTarget entries when the FDB is full, keeping copy-on-write cheap.
const (
	minShards   = 64
	shardTarget = 128
)

// fdbKey packs a VLAN and a MAC into one word: vlan<<48 | mac.
type fdbKey uint64

func keyOf(vlan uint16, mac []byte) fdbKey {
	_ = mac[5]
	return fdbKey(uint64(vlan)<<48 | uint64(mac[0])<<40 | uint64(mac[1])<<32 |
		uint64(mac[2])<<24 | uint64(mac[3])<<16 | uint64(mac[4])<<8 | uint64(mac[5]))
}

func (k fdbKey) vlan() uint16 { return uint16(k >> 48) }

func (k fdbKey) mac() frame.MAC {
	return frame.MAC{byte(k >> 40), byte(k >> 32), byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}
}

// shard returns k's shard index among 1<<(64-shift) shards.
func (k fdbKey) shard(shift uint) int {
	// Mix so that MACs differing only in their first bytes spread too.
	h := uint64(k) * 0x9e3779b97f4a7c15
	return int(h >> shift)
}

type fdbEntry struct {
	port     atomic.Pointer[swPort]
	lastSeen atomic.Int64 // unix nanoseconds
}

// fdbShard is one slice of the FDB. Readers load its map with one atomic read and take
// no lock; writers (a new MAC, aging, a flush) serialise on mu and publish a modified
// copy. A shard holds at most about shardTarget entries, so a copy is small, and writes
// are rare next to reads: a known MAC moving or refreshing changes its entry's atomics,
// not the map.
type fdbShard struct {
	mu sync.Mutex                           // serialises writers
	m  atomic.Pointer[map[fdbKey]*fdbEntry] // immutable once published
	_  [48]byte                             // keep shards on separate cache lines
}

// load returns the shard's current map; callers must not modify it.
func (s *fdbShard) load() map[fdbKey]*fdbEntry { return *s.m.Load() }

// publishLocked replaces the shard's map. s.mu must be held.
func (s *fdbShard) publishLocked(m map[fdbKey]*fdbEntry) { s.m.Store(&m) }

// fdb is the forwarding database. Its counters are the switch's learn events.
type fdb struct {
	shards  []fdbShard // len is a power of two
	shift   uint       // 64 - log2(len(shards))
	size    atomic.Int64
	maxMACs int64
	// portLearnOnly: a source beyond its port's MAC cap is forwarded unlearned
	// instead of dropped (Config.PortMaxMACsLearnOnly).
	portLearnOnly bool

	learned, moved, aged, limited, portLimited atomic.Uint64
}

func newFDB(maxMACs int) *fdb {
	f := &fdb{maxMACs: int64(maxMACs)}
	n, bits := minShards, uint(6)
	for n*shardTarget < maxMACs && bits < 16 {
		n, bits = n*2, bits+1
	}
	f.shards, f.shift = make([]fdbShard, n), 64-bits
	for i := range f.shards {
		f.shards[i].publishLocked(make(map[fdbKey]*fdbEntry))
	}
	return f
}

// lookup returns the port (vlan, mac) was learned on, or nil.
func (f *fdb) lookup(k fdbKey) *swPort {
	e := f.shards[k.shard(f.shift)].load()[k]
	if e == nil {
		return nil
	}
	return e.port.Load()
}

// refreshEvery bounds how often a known source's last-seen time is rewritten, so a busy
// source does not bounce its entry's cache line between cores on every frame.
const refreshEvery = int64(time.Second)

// learn records that k was seen on p at now. It reports false when the frame must be
// dropped: a new source beyond the port's cap when the cap's violation is "drop".
func (f *fdb) learn(k fdbKey, p *swPort, now int64) bool {
	s := &f.shards[k.shard(f.shift)]
	e := s.load()[k]
	if e != nil && e.port.Load() == p {
		if now-e.lastSeen.Load() > refreshEvery {
			e.lastSeen.Store(now)
		}
		return true
	}
	if e == nil && f.size.Load() >= f.maxMACs { // full: a MAC flood takes no lock
		f.limited.Add(1)
		return true
	}
	if p.atMACLimit() { // a port's MAC flood takes no lock either
		f.portLimited.Add(1)
		p.macLimit.Add(1)
		return f.portLearnOnly
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.load()
	e = cur[k]
	switch {
	case e == nil:
		if f.size.Load() >= f.maxMACs {
			f.limited.Add(1)
			return true
		}
		if p.atMACLimit() {
			f.portLimited.Add(1)
			p.macLimit.Add(1)
			return f.portLearnOnly
		}
		e = new(fdbEntry)
		e.port.Store(p)
		e.lastSeen.Store(now)
		next := maps.Clone(cur)
		next[k] = e
		s.publishLocked(next)
		f.size.Add(1)
		p.macs.Add(1)
		f.learned.Add(1)
	case e.port.Load() != p:
		if p.atMACLimit() {
			f.portLimited.Add(1)
			p.macLimit.Add(1)
			return f.portLearnOnly
		}
		e.port.Load().macs.Add(-1)
		e.port.Store(p)
		e.lastSeen.Store(now)
		p.macs.Add(1)
		f.moved.Add(1)
	default: // learned meanwhile by another reader
		e.lastSeen.Store(now)
	}
	return true
}

// atMACLimit reports whether p has learned as many MACs as it may.
func (p *swPort) atMACLimit() bool { return p.maxMACs > 0 && p.macs.Load() >= p.maxMACs }

// age forgets entries idle for longer than maxAge.
func (f *fdb) age(now time.Time, maxAge time.Duration) {
	cutoff := now.Add(-maxAge).UnixNano()
	f.removeIf(func(e *fdbEntry) bool { return e.lastSeen.Load() < cutoff }, &f.aged)
}

// flushPort forgets every entry on p.
func (f *fdb) flushPort(p *swPort) {
	f.removeIf(func(e *fdbEntry) bool { return e.port.Load() == p }, nil)
}

// removeIf forgets the entries gone reports, counting them in events when not nil.
// A shard is copied only when it loses an entry.
func (f *fdb) removeIf(gone func(*fdbEntry) bool, events *atomic.Uint64) {
	for i := range f.shards {
		s := &f.shards[i]
		s.mu.Lock()
		cur := s.load()
		var next map[fdbKey]*fdbEntry
		for k, e := range cur {
			if !gone(e) {
				continue
			}
			if next == nil {
				next = maps.Clone(cur)
			}
			delete(next, k)
			e.port.Load().macs.Add(-1)
			f.size.Add(-1)
			if events != nil {
				events.Add(1)
			}
		}
		if next != nil {
			s.publishLocked(next)
		}
		s.mu.Unlock()
	}
}

// FDBEntry is one learned address, for listings.
type FDBEntry struct {
	VLAN uint16        `json:"vlan"`
	MAC  frame.MAC     `json:"mac"`
	Port string        `json:"port"`
	Age  time.Duration `json:"age_ns"`
}

func (f *fdb) snapshot(now time.Time) []FDBEntry {
	var out []FDBEntry
	for i := range f.shards {
		for k, e := range f.shards[i].load() {
			out = append(out, FDBEntry{
				VLAN: k.vlan(),
				MAC:  k.mac(),
				Port: e.port.Load().name,
				Age:  now.Sub(time.Unix(0, e.lastSeen.Load())),
			})
		}
	}
	return out
}
