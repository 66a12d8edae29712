package l2switch

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/vnetd/vnetd/frame"
)

const fdbShards = 64

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

func (k fdbKey) shard() int {
	// Mix so that MACs differing only in their first bytes spread too.
	h := uint64(k) * 0x9e3779b97f4a7c15
	return int(h >> 58) // top 6 bits: 64 shards
}

type fdbEntry struct {
	port     atomic.Pointer[swPort]
	lastSeen atomic.Int64 // unix nanoseconds
}

type fdbShard struct {
	mu sync.RWMutex
	m  map[fdbKey]*fdbEntry // guarded by mu
	_  [40]byte             // keep shards on separate cache lines
}

// fdb is the forwarding database. Its counters are the switch's learn events.
type fdb struct {
	shards  [fdbShards]fdbShard
	size    atomic.Int64
	maxMACs int64
	portMax int64

	learned, moved, aged, limited, portLimited atomic.Uint64
}

func newFDB(maxMACs, portMax int) *fdb {
	f := &fdb{maxMACs: int64(maxMACs), portMax: int64(portMax)}
	for i := range f.shards {
		f.shards[i].m = make(map[fdbKey]*fdbEntry)
	}
	return f
}

// lookup returns the port (vlan, mac) was learned on, or nil.
func (f *fdb) lookup(k fdbKey) *swPort {
	s := &f.shards[k.shard()]
	s.mu.RLock()
	e := s.m[k]
	s.mu.RUnlock()
	if e == nil {
		return nil
	}
	return e.port.Load()
}

// refreshEvery bounds how often a known source's last-seen time is rewritten, so a busy
// source does not bounce its entry's cache line between cores on every frame.
const refreshEvery = int64(time.Second)

// learn records that k was seen on p at now.
func (f *fdb) learn(k fdbKey, p *swPort, now int64) {
	s := &f.shards[k.shard()]
	s.mu.RLock()
	e := s.m[k]
	s.mu.RUnlock()
	if e != nil && e.port.Load() == p {
		if now-e.lastSeen.Load() > refreshEvery {
			e.lastSeen.Store(now)
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e = s.m[k]
	switch {
	case e == nil:
		if f.size.Load() >= f.maxMACs {
			f.limited.Add(1)
			return
		}
		if f.portMax > 0 && p.macs.Load() >= f.portMax {
			f.portLimited.Add(1)
			return
		}
		e = new(fdbEntry)
		e.port.Store(p)
		e.lastSeen.Store(now)
		s.m[k] = e
		f.size.Add(1)
		p.macs.Add(1)
		f.learned.Add(1)
	case e.port.Load() != p:
		if f.portMax > 0 && p.macs.Load() >= f.portMax {
			f.portLimited.Add(1)
			return
		}
		e.port.Load().macs.Add(-1)
		e.port.Store(p)
		e.lastSeen.Store(now)
		p.macs.Add(1)
		f.moved.Add(1)
	default: // learned meanwhile by another reader
		e.lastSeen.Store(now)
	}
}

// age forgets entries idle for longer than maxAge.
func (f *fdb) age(now time.Time, maxAge time.Duration) {
	cutoff := now.Add(-maxAge).UnixNano()
	for i := range f.shards {
		s := &f.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if e.lastSeen.Load() < cutoff {
				delete(s.m, k)
				e.port.Load().macs.Add(-1)
				f.size.Add(-1)
				f.aged.Add(1)
			}
		}
		s.mu.Unlock()
	}
}

// flushPort forgets every entry on p.
func (f *fdb) flushPort(p *swPort) {
	for i := range f.shards {
		s := &f.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if e.port.Load() == p {
				delete(s.m, k)
				p.macs.Add(-1)
				f.size.Add(-1)
			}
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
		s := &f.shards[i]
		s.mu.RLock()
		for k, e := range s.m {
			out = append(out, FDBEntry{
				VLAN: k.vlan(),
				MAC:  k.mac(),
				Port: e.port.Load().name,
				Age:  now.Sub(time.Unix(0, e.lastSeen.Load())),
			})
		}
		s.mu.RUnlock()
	}
	return out
}
