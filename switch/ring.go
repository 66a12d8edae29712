package l2switch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vnetd/vnetd/frame"
)

// RingConfig sizes the always-on capture ring every port of a switch keeps when
// Bytes > 0: the frames that crossed the port (in and out, as captured) during the
// last MaxAge, at most Bytes of them, newest kept. `vnetd capture --ring SECONDS`
// dumps them. A ring copies every frame once more on the data path, without
// allocating; memory is Bytes per port, taken when the port is added.
type RingConfig struct {
	// Bytes caps a port's ring (frames plus 16 bytes of header each); 0 means no
	// ring. Smaller than MinRingBytes is raised to it.
	Bytes int
	// MaxAge drops frames older than this; 0 means DefaultRingMaxAge.
	MaxAge time.Duration
}

const (
	// MinRingBytes is the smallest ring: one superframe and its header fit.
	MinRingBytes = frame.MaxSuperFrame + 1024
	// DefaultRingMaxAge is how long a ring keeps a frame by default.
	DefaultRingMaxAge = 60 * time.Second
)

// ringHdr is the header in front of each frame in a ring: time (8 bytes, Unix ns),
// length (4), flags (1: ingress), padding (3). Frames start 8-byte aligned.
const ringHdr = 16

// ring is one port's capture ring: records [hdr|frame] in buf, oldest at tail, next
// written at head. A record never straddles the end of buf: when one does not fit
// before the end, the ring wraps and wrapEnd marks where the older part stops.
type ring struct {
	mu      sync.Mutex
	buf     []byte
	maxAge  int64 // ns
	head    int
	tail    int
	wrapEnd int // with wrapped: records run [tail, wrapEnd) then [0, head)
	wrapped bool
	frames  int // records held
	bytes   int // bytes held (records, headers included)
	evicted int // frames evicted in this push, published once per batch

	// Published once per push for status readers, who take no lock.
	used        atomic.Int64  // bytes
	held        atomic.Int64  // frames held
	overwritten atomic.Uint64 // frames evicted to make room or because they aged out
	skipped     atomic.Uint64 // frames larger than the ring (not recorded)
}

func newRing(cfg RingConfig) *ring {
	n := max(cfg.Bytes, MinRingBytes)
	age := cfg.MaxAge
	if age <= 0 {
		age = DefaultRingMaxAge
	}
	return &ring{buf: make([]byte, n&^7), maxAge: int64(age)}
}

func recLen(n int) int { return ringHdr + (n+7)&^7 }

// evictLocked drops the oldest record.
func (r *ring) evictLocked() {
	n := int(binary.LittleEndian.Uint32(r.buf[r.tail+8:]))
	r.tail += recLen(n)
	r.bytes -= recLen(n)
	r.frames--
	r.evicted++
	if r.wrapped && r.tail >= r.wrapEnd {
		r.tail, r.wrapped = 0, false
	}
	if r.frames == 0 {
		r.head, r.tail, r.wrapped = 0, 0, false
	}
}

// reserveLocked makes room for a record of sz bytes and returns its offset.
func (r *ring) reserveLocked(sz int) int {
	for {
		if r.frames == 0 {
			r.head, r.tail, r.wrapped = 0, 0, false
			return 0
		}
		if !r.wrapped {
			if len(r.buf)-r.head >= sz {
				return r.head
			}
			r.wrapEnd, r.head, r.wrapped = r.head, 0, true
			continue
		}
		if r.tail-r.head >= sz {
			return r.head
		}
		r.evictLocked()
	}
}

// push records frames crossing the port at now (Unix ns). It allocates nothing.
func (r *ring) push(frames []frame.Frame, now int64, ingress bool) {
	var flags byte
	if ingress {
		flags = 1
	}
	r.mu.Lock()
	for r.frames > 0 && binary.LittleEndian.Uint64(r.buf[r.tail:]) < uint64(now-r.maxAge) {
		r.evictLocked()
	}
	for i := range frames {
		f := &frames[i]
		sz := recLen(f.N)
		if sz > len(r.buf) {
			r.skipped.Add(1)
			continue
		}
		at := r.reserveLocked(sz)
		rec := r.buf[at : at+sz]
		binary.LittleEndian.PutUint64(rec, uint64(now))
		binary.LittleEndian.PutUint32(rec[8:], uint32(f.N))
		rec[12] = flags
		if f.Pkt != nil {
			b := frame.Buf{B: rec[ringHdr:]} // not pooled: CopyFrom only writes into B
			b.CopyFrom(f)
		} else {
			copy(rec[ringHdr:], f.Bytes())
		}
		r.head = at + sz
		r.frames++
		r.bytes += sz
	}
	r.used.Store(int64(r.bytes))
	r.held.Store(int64(r.frames))
	if r.evicted > 0 {
		r.overwritten.Add(uint64(r.evicted))
		r.evicted = 0
	}
	r.mu.Unlock()
}

// dump appends to out a copy of every frame recorded at or after since (Unix ns) that
// match accepts (nil: all), oldest first, as CapturedFrames of port; with
// ingressOnly, only the frames the port sent into the switch.
func (r *ring) dump(port string, since int64, ingressOnly bool, match func([]byte) bool, out []CapturedFrame) []CapturedFrame {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, wrapped := r.tail, r.wrapped
	for k := 0; k < r.frames; k++ {
		if wrapped && at >= r.wrapEnd {
			at, wrapped = 0, false
		}
		t := int64(binary.LittleEndian.Uint64(r.buf[at:]))
		n := int(binary.LittleEndian.Uint32(r.buf[at+8:]))
		data := r.buf[at+ringHdr : at+ringHdr+n]
		ingress := r.buf[at+12]&1 != 0
		if t >= since && (ingress || !ingressOnly) && (match == nil || match(data)) {
			b := frame.GetBuf(n)
			b.N = copy(b.B, data)
			out = append(out, CapturedFrame{Time: time.Unix(0, t), Port: port, Ingress: ingress, Buf: b})
		}
		at += recLen(n)
	}
	return out
}

// RingStatus is a port's capture ring use.
type RingStatus struct {
	CapBytes    int    `json:"cap_bytes"`
	Bytes       int64  `json:"bytes"`
	Frames      int64  `json:"frames"`
	Overwritten uint64 `json:"overwritten"`
	Skipped     uint64 `json:"skipped,omitempty"`
}

func (r *ring) status() *RingStatus {
	if r == nil {
		return nil
	}
	return &RingStatus{CapBytes: len(r.buf), Bytes: r.used.Load(), Frames: r.held.Load(), Overwritten: r.overwritten.Load(), Skipped: r.skipped.Load()}
}

// ErrNoRing is returned by DumpRing on a switch whose ports keep no capture ring.
var ErrNoRing = errors.New("no capture ring (set capture_ring_bytes)")

// DumpRing returns copies of the frames the capture rings of port (every port when
// "") recorded in the last d, that filter (when not nil) accepts, oldest first. With
// port "", frames are those that entered the switch, each once, as in a switch-wide
// Capture. The caller releases each frame's Buf.
func (s *Switch) DumpRing(port string, d time.Duration, filter Matcher) ([]CapturedFrame, error) {
	if s.cfg.Ring.Bytes <= 0 {
		return nil, fmt.Errorf("switch %q: %w", s.cfg.Name, ErrNoRing)
	}
	var match func([]byte) bool
	if filter != nil {
		match = filter.Match
	}
	since := s.cfg.Now().Add(-d).UnixNano()
	var out []CapturedFrame
	found := false
	for _, sp := range *s.ports.Load() {
		if port != "" && sp.name != port || sp.ring == nil {
			continue
		}
		found = true
		// The switch-wide view takes ingress only, each frame once, as Capture("").
		out = sp.ring.dump(sp.name, since, port == "", match, out)
	}
	if port != "" && !found {
		return nil, fmt.Errorf("switch %q: capture ring: no port %q", s.cfg.Name, port)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}
