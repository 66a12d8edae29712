package vxlan

import (
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vnetd/vnetd/frame"
)

// fdb maps inner MAC addresses to the remote VTEP they were last seen behind, as the
// kernel's vxlan FDB does with learning on. Reads (one per frame sent) take the read
// lock; a frame from a known MAC at its known VTEP updates only an atomic timestamp.
type fdb struct {
	mu      sync.RWMutex
	entries map[frame.MAC]*fdbEntry // guarded by mu
	max     int

	learned atomic.Uint64
	moved   atomic.Uint64
	aged    atomic.Uint64
	limited atomic.Uint64
}

type fdbEntry struct {
	remote *remote
	seen   atomic.Int64 // unix nanoseconds
}

func newFDB(max int) *fdb { return &fdb{entries: map[frame.MAC]*fdbEntry{}, max: max} }

// lookup returns the remote mac was learned behind, or nil.
func (f *fdb) lookup(mac frame.MAC) *remote {
	f.mu.RLock()
	e := f.entries[mac]
	f.mu.RUnlock()
	if e == nil {
		return nil
	}
	return e.remote
}

// learn records that mac was seen behind r at now (unix nanoseconds).
func (f *fdb) learn(mac frame.MAC, r *remote, now int64) {
	f.mu.RLock()
	e := f.entries[mac]
	f.mu.RUnlock()
	if e != nil && e.remote == r {
		if e.seen.Load() < now {
			e.seen.Store(now)
		}
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e = f.entries[mac]
	switch {
	case e != nil && e.remote == r:
	case e != nil:
		f.moved.Add(1)
	case len(f.entries) >= f.max:
		f.limited.Add(1)
		return
	default:
		f.learned.Add(1)
	}
	ne := &fdbEntry{remote: r}
	ne.seen.Store(now)
	f.entries[mac] = ne
}

// age forgets entries idle for longer than aging at now and returns how many it forgot.
func (f *fdb) age(now time.Time, aging time.Duration) int {
	cut := now.Add(-aging).UnixNano()
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for mac, e := range f.entries {
		if e.seen.Load() < cut {
			delete(f.entries, mac)
			n++
		}
	}
	f.aged.Add(uint64(n))
	return n
}

// forget drops every entry whose remote keep does not accept.
func (f *fdb) forget(keep func(*remote) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for mac, e := range f.entries {
		if !keep(e.remote) {
			delete(f.entries, mac)
		}
	}
}

// size returns the number of entries.
func (f *fdb) size() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.entries)
}

// MACEntry is one learned MAC address.
type MACEntry struct {
	// MAC is the inner source address.
	MAC frame.MAC `json:"mac"`
	// Remote is the VTEP it was last seen behind.
	Remote netip.Addr `json:"remote"`
	// Age is how long ago it was last seen.
	Age time.Duration `json:"age_ns"`
}

// snapshot lists the entries, sorted by MAC.
func (f *fdb) snapshot(now time.Time) []MACEntry {
	f.mu.RLock()
	out := make([]MACEntry, 0, len(f.entries))
	for mac, e := range f.entries {
		out = append(out, MACEntry{MAC: mac, Remote: e.remote.addr, Age: now.Sub(time.Unix(0, e.seen.Load()))})
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return string(out[i].MAC[:]) < string(out[j].MAC[:]) })
	return out
}
