package l2switch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/internal/worker"
)

// Defaults of Config's output queue bounds.
const (
	DefaultQueueLen       = 512
	DefaultDirectQueueLen = 4096
	DefaultQueueBytes     = 32 << 20
)

// Config configures a switch.
type Config struct {
	// Name names the switch in logs and listings.
	Name string
	// MACAging is how long an idle MAC stays learned. Default 5m.
	MACAging time.Duration
	// MaxMACs caps the FDB; sources beyond it are not learned (counted) and traffic to
	// them floods. Default 8192.
	MaxMACs int
	// PortMaxMACs caps the MACs learned per port; 0 means no cap. A port's own
	// PortConfig.MaxMACs overrides it. Frames from a source beyond the cap are
	// dropped (counted as port_max_macs on the port) unless PortMaxMACsLearnOnly.
	PortMaxMACs int
	// PortMaxMACsLearnOnly makes the cap stop learning only: frames from a source
	// beyond it are forwarded, unlearned (replies to it flood).
	PortMaxMACsLearnOnly bool
	// QueueLen bounds each port's output queue in frames. Default 512.
	QueueLen int
	// DirectQueueLen is QueueLen for ports that advertise frame.CapDirect (namespace
	// NICs: their writes only queue in-process, so the queue drains as fast as the
	// stack takes frames and never waits on an outside peer). Default 4096: a TCP
	// window of MTU-sized frames from a tunnel or a TAP without offloads, which at 512
	// overflowed while the namespace caught up (a kernel sender over VXLAN saw 6-8%
	// of its segments dropped, as queue_full on the NIC's port).
	DirectQueueLen int
	// QueueBytes bounds each port's output queue in memory as well: the sizes of the
	// queued frames' buffers (64 KiB for a superframe, 2 KiB for an MTU-sized frame;
	// see frame.NewQueueBytes). Default 32 MiB, what 512 superframes hold, so a deep
	// queue of superframes costs no more than a 512-frame one did. Frames beyond
	// either bound are dropped and counted as queue_full.
	QueueBytes int
	// Batch is how many frames a port reader takes per ReadFrames. Default 64.
	Batch int
	// Now is the clock; default time.Now. Tests pass their own.
	Now func() time.Time
	// AgeEvery is how often the switch ages its FDB by itself; default MACAging/10
	// (at least 1s). Negative: never (callers use Age).
	AgeEvery time.Duration
	// Logger receives port up/down events; default slog.Default().
	Logger *slog.Logger
	// Ring, when Ring.Bytes > 0, gives every port an always-on capture ring.
	Ring RingConfig
}

// Stats are a switch's FDB size and learning events.
type Stats struct {
	FDBSize      int64  `json:"fdb_size"`
	Learned      uint64 `json:"learned"`
	Moved        uint64 `json:"moved"`
	Aged         uint64 `json:"aged"`
	Limited      uint64 `json:"limited"`
	PortLimited  uint64 `json:"port_limited"`
	Ports        int    `json:"ports"`
	MaxMACs      int    `json:"max_macs"`
	PortMaxMACs  int    `json:"port_max_macs"`
	AgingSeconds int64  `json:"aging_seconds"`
	// Captures is the number of live captures open on the switch; CaptureDropped
	// counts the frames captures (open and closed ones) missed because their reader
	// fell behind: dropped from the capture, never from the switch.
	Captures       int    `json:"captures"`
	CaptureDropped uint64 `json:"capture_dropped"`
}

// Switch is an L2 learning switch. Its methods are safe for concurrent use.
type Switch struct {
	cfg   Config
	fdb   *fdb
	ports atomic.Pointer[[]*swPort] // immutable snapshot, replaced whole

	captures   atomic.Pointer[[]*Capture] // open captures, nil when none; replaced whole
	capDropped atomic.Uint64              // frames dropped by captures since closed

	mu     sync.Mutex // control plane: AddPort, RemovePort, Close
	closed bool       // guarded by mu
	wg     sync.WaitGroup
	stop   chan struct{}
}

// New returns a running switch with no ports.
func New(cfg Config) *Switch {
	if cfg.MACAging <= 0 {
		cfg.MACAging = 5 * time.Minute
	}
	if cfg.MaxMACs <= 0 {
		cfg.MaxMACs = 8192
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.DirectQueueLen <= 0 {
		cfg.DirectQueueLen = DefaultDirectQueueLen
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Logger = cfg.Logger.With("switch", cfg.Name)
	if cfg.AgeEvery == 0 {
		cfg.AgeEvery = max(cfg.MACAging/10, time.Second)
	}
	s := &Switch{cfg: cfg, fdb: newFDB(cfg.MaxMACs), stop: make(chan struct{})}
	s.fdb.portLearnOnly = cfg.PortMaxMACsLearnOnly
	s.ports.Store(new([]*swPort))
	if cfg.AgeEvery > 0 {
		s.wg.Add(1)
		go s.ager()
	}
	return s
}

// Name returns the switch's name.
func (s *Switch) Name() string { return s.cfg.Name }

func (s *Switch) ager() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.AgeEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.Age(s.cfg.Now())
		case <-s.stop:
			return
		}
	}
}

// Age forgets MACs idle for longer than MACAging at time now.
func (s *Switch) Age(now time.Time) { s.fdb.age(now, s.cfg.MACAging) }

// ErrClosed is returned by AddPort on a closed switch.
var ErrClosed = errors.New("switch closed")

// AddPort attaches p and starts forwarding its frames. The switch owns p from now on:
// RemovePort and Close close it.
func (s *Switch) AddPort(p frame.Port, pc PortConfig) error {
	if bad := validVLANs(pc); bad >= 0 {
		return fmt.Errorf("switch %q: add port %q: VLAN %d out of range 1-4094", s.cfg.Name, pc.Name, bad)
	}
	for _, v := range pc.Trunk {
		if v == 0 {
			return fmt.Errorf("switch %q: add port %q: trunk VLAN 0 is not a VLAN (use 1-4094)", s.cfg.Name, pc.Name)
		}
	}
	queueLen := s.cfg.QueueLen
	if p.Info().Caps&frame.CapDirect != 0 {
		queueLen = s.cfg.DirectQueueLen
	}
	sp := newSwPort(p, pc, queueLen, s.cfg.QueueBytes, s.cfg.PortMaxMACs)
	if sp.name == "" {
		return fmt.Errorf("switch %q: add port: empty name", s.cfg.Name)
	}
	if s.cfg.Ring.Bytes > 0 {
		sp.ring = newRing(s.cfg.Ring)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	old := *s.ports.Load()
	for _, q := range old {
		if q.name == sp.name {
			return fmt.Errorf("switch %q: add port %q: name already in use", s.cfg.Name, sp.name)
		}
	}
	// One goroutine per port, its reader; the writer runs only while frames are
	// queued for the port (its Kick), so the thousands of ports of idle namespaces, or
	// of busy ones written directly (CapDirect), cost one goroutine each. The writer
	// exists before the port is published: other ports' readers Kick it as soon as
	// they can see the port.
	sp.writer = worker.New(func() { s.writeLoop(sp) })
	next := make([]*swPort, len(old), len(old)+1)
	copy(next, old)
	next = append(next, sp)
	s.ports.Store(&next)

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(sp.done)
		s.readLoop(sp)
	}()
	return nil
}

// RemovePort detaches and closes the named port and forgets its MACs. Other ports are
// not paused.
func (s *Switch) RemovePort(name string) error {
	s.mu.Lock()
	old := *s.ports.Load()
	var sp *swPort
	next := make([]*swPort, 0, len(old))
	for _, q := range old {
		if q.name == name {
			sp = q
			continue
		}
		next = append(next, q)
	}
	if sp == nil {
		s.mu.Unlock()
		return fmt.Errorf("switch %q: remove port %q: no such port", s.cfg.Name, name)
	}
	s.ports.Store(&next)
	s.mu.Unlock()
	s.shutPort(sp)
	s.fdb.flushPort(sp)
	return nil
}

func (s *Switch) shutPort(sp *swPort) {
	sp.up.Store(false)
	sp.p.Close()
	sp.out.Close()
	<-sp.done
	sp.writer.Stop() // no writer starts from now on
}

// Close removes every port and stops the switch. It is idempotent.
func (s *Switch) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ports := *s.ports.Load()
	s.ports.Store(new([]*swPort))
	close(s.stop)
	s.mu.Unlock()
	for _, sp := range ports {
		s.shutPort(sp)
		s.fdb.flushPort(sp)
	}
	s.wg.Wait()
	return nil
}

// Ports lists the ports with their state and counters.
func (s *Switch) Ports() []PortStatus {
	ports := *s.ports.Load()
	out := make([]PortStatus, len(ports))
	for i, p := range ports {
		out[i] = p.status()
	}
	return out
}

// FDB lists the learned addresses.
func (s *Switch) FDB() []FDBEntry { return s.fdb.snapshot(s.cfg.Now()) }

// Stats returns the switch's FDB size and learning events.
func (s *Switch) Stats() Stats {
	st := Stats{
		FDBSize: s.fdb.size.Load(), Learned: s.fdb.learned.Load(), Moved: s.fdb.moved.Load(),
		Aged: s.fdb.aged.Load(), Limited: s.fdb.limited.Load(), PortLimited: s.fdb.portLimited.Load(),
		Ports: len(*s.ports.Load()), MaxMACs: s.cfg.MaxMACs, PortMaxMACs: s.cfg.PortMaxMACs,
		AgingSeconds:   int64(s.cfg.MACAging / time.Second),
		CaptureDropped: s.capDropped.Load(),
	}
	if cs := s.captures.Load(); cs != nil {
		st.Captures = len(*cs)
		for _, c := range *cs {
			st.CaptureDropped += c.dropped.Load()
		}
	}
	return st
}

// LookupPort returns the port mac was learned on in vlan (0 means the default VLAN).
func (s *Switch) LookupPort(vlan uint16, mac frame.MAC) (frame.Port, bool) {
	if vlan == 0 {
		vlan = DefaultVLAN
	}
	sp := s.fdb.lookup(keyOf(vlan, mac[:]))
	if sp == nil || !sp.up.Load() {
		return nil, false
	}
	return sp.p, true
}

// readLoop reads batches from sp and forwards them until the port closes or fails. A
// port that can return frames by reference (a namespace NIC) is read that way, unless a
// capture is open: then every frame is copied anyway.
func (s *Switch) readLoop(sp *swPort) {
	pr, _ := sp.p.(frame.PacketReader)
	// A port that returns only frames by reference gets buffers for their heads: a
	// superframe-sized batch per namespace NIC was 4.9 MB of Go heap per port. Its
	// frames are made plain, when they must be, in a buffer taken then (Materialize).
	refOnly := pr != nil && sp.info.ByRefOnly
	need := max(sp.info.MaxFrame, frame.MaxFrameFor(sp.info.MTU, false), 64)
	if refOnly {
		need = frame.PacketHead
	}
	b := newBatch(s.cfg.Batch, need)
	b.sw = s
	defer b.release()
	for {
		var n int
		var err error
		// With a capture open, a port that can return plain frames does (the capture
		// copies every frame anyway); one whose buffers hold heads only cannot.
		b.byRef = refOnly || pr != nil && s.captures.Load() == nil
		if b.byRef {
			n, err = pr.ReadPackets(b.frames)
		} else {
			n, err = sp.p.ReadFrames(b.frames)
		}
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.cfg.Logger.Warn("port down: read failed", "port", sp.name, "err", err)
			}
			if sp.up.Swap(false) {
				s.fdb.flushPort(sp) // as a bridge forgets a disabled port's MACs: flood, not drop
			}
			sp.out.Close() // stops the writer too
			return
		}
		s.forwardBatch(sp, b, n)
	}
}

// writerLinger is how long an idle writer waits for more frames before it exits.
var writerLinger = time.Second

// writeLoop drains sp's output queue into the port until the queue has been empty for
// writerLinger or is closed. Superframes the port cannot take are segmented here, at
// the port's edge, as Linux segments GSO packets only when the device transmits: the
// queue holds (and its bound counts) one entry per superframe, not its up to 45
// segments, so a TCP burst toward a port without offloads no longer overflows the
// queue and loses most of a window at once.
func (s *Switch) writeLoop(sp *swPort) {
	bufs := make([]*frame.Buf, s.cfg.Batch)
	var sc egressScratch
	pending := func() bool { return sp.out.Len() > 0 }
	for {
		if n := sp.out.TryPop(bufs); n > 0 {
			s.egress(sp, bufs[:n], &sc)
			continue
		}
		if !sp.writer.Idle(writerLinger, sp.out.Done(), pending) {
			return
		}
	}
}

// egressScratch is an egress writer's reusable storage.
type egressScratch struct {
	frames []frame.Frame
	segs   []*frame.Buf // software segments, released after the write
}

// egress writes bufs to sp, making plain (frame.Buf.Materialize) the frames by
// reference sp cannot take and segmenting the superframes it cannot take, and releases
// bufs. It runs on sp's writer, or on a reader for a port that takes direct writes.
func (s *Switch) egress(sp *swPort, bufs []*frame.Buf, sc *egressScratch) {
	for _, b := range bufs {
		if b.Pkt != nil && (sp.info.Caps&frame.CapPacket == 0 || !sp.info.Caps.Accepts(&b.Meta)) {
			b.Materialize()
		} else if b.Pkt != nil && sp.info.Caps&frame.CapDirect == 0 {
			b.Grow() // a port other than a NIC may fill the frame in place
		}
		if sp.info.Caps.Accepts(&b.Meta) {
			sc.frames = append(sc.frames, frame.Frame{Buf: b.B[b.Off:], N: b.N, Meta: b.Meta, Pkt: b.Pkt})
			continue
		}
		k := softwareOffload(b, sp.info.MTU, func(seg *frame.Buf) bool {
			sc.segs = append(sc.segs, seg)
			sc.frames = append(sc.frames, frame.Frame{Buf: seg.B[seg.Off:], N: seg.N, Meta: seg.Meta})
			return true
		})
		if k < 0 {
			sp.drops[dropOffload].Add(1)
			sp.stats.TxDropped.Add(1)
		} else {
			sp.segments.Add(uint64(k))
		}
	}
	for off := 0; off < len(sc.frames); off += s.cfg.Batch {
		s.writeFrames(sp, sc.frames[off:min(off+s.cfg.Batch, len(sc.frames))])
	}
	clear(sc.frames)
	sc.frames = sc.frames[:0]
	frame.ReleaseBufs(bufs) // with the references of frames written by reference
	frame.ReleaseBufs(sc.segs)
	clear(sc.segs)
	sc.segs = sc.segs[:0]
}

// writeDirect writes bufs to sp from the calling reader (sp.direct), or counts them
// dropped when sp is down (a deleted TAP: no failed syscall per batch); either way it
// releases bufs and clears their slots.
func (s *Switch) writeDirect(sp *swPort, bufs []*frame.Buf, sc *egressScratch) {
	if !sp.up.Load() {
		sp.drops[dropQueueFull].Add(uint64(len(bufs)))
		sp.stats.TxDropped.Add(uint64(len(bufs)))
		frame.ReleaseBufs(bufs)
		return
	}
	s.egress(sp, bufs, sc)
}

// writeFrames writes one batch to sp's port and counts the result.
func (s *Switch) writeFrames(sp *swPort, frames []frame.Frame) {
	bytes := 0
	for i := range frames {
		bytes += frames[i].N
	}
	if cs := s.captures.Load(); cs != nil {
		s.capture(*cs, sp, frames, false)
	}
	if sp.ring != nil {
		sp.ring.push(frames, s.cfg.Now().UnixNano(), false)
	}
	w, werr := sp.p.WriteFrames(frames)
	sp.stats.TxFrames.Add(uint64(w))
	if w == len(frames) {
		sp.stats.TxBytes.Add(uint64(bytes))
	} else {
		sp.stats.TxDropped.Add(uint64(len(frames) - w))
	}
	if werr != nil && !errors.Is(werr, net.ErrClosed) && sp.up.Swap(false) {
		s.cfg.Logger.Warn("port down: write failed", "port", sp.name, "err", werr)
		s.fdb.flushPort(sp)
	}
}

// batch is a reader's set of pooled buffers, each with frame.Headroom bytes kept in front.
type batch struct {
	sw     *Switch
	bufs   []*frame.Buf
	frames []frame.Frame
	need   int // read-buffer size the port needs
	off    int // headroom kept in front of each frame

	// Unicast frames for one egress port are gathered and queued together.
	pendPort *swPort
	pend     []*frame.Buf
	// byRef: this batch was read by reference (ReadPackets). Only such batches are
	// written straight to CapDirect ports (NICs): handing on a reference is cheap,
	// while a plain frame costs the receiving NIC a copy, which its own writer
	// goroutine makes in parallel with this reader's next read (kernel -> namespace over
	// a TAP lost a third of its throughput when the TAP's reader made it). CapInline
	// ports (TAPs) are written straight whatever the batch: see swPort.direct.
	byRef  bool
	direct egressScratch // for writes to ports that take them directly
	one    [1]*frame.Buf // a single flooded frame written directly

	// Slots whose buffers were handed on, refilled together after the batch.
	taken []int
	fresh []*frame.Buf

	// The last source learned and destination looked up: a batch is usually one flow.
	lastSrc  fdbKey
	lastDst  fdbKey
	lastPort *swPort
}

func newBatch(n, maxFrame int) *batch {
	b := &batch{bufs: make([]*frame.Buf, n), frames: make([]frame.Frame, n), need: maxFrame,
		pend: make([]*frame.Buf, 0, n), taken: make([]int, 0, n), fresh: make([]*frame.Buf, n)}
	probe := frame.GetBuf(maxFrame)
	b.off = min(frame.Headroom, len(probe.B)-maxFrame)
	probe.Release()
	for i := range b.bufs {
		b.refill(i)
	}
	return b
}

func (b *batch) refill(i int) {
	buf := frame.GetBuf(b.need + b.off)
	buf.Off = b.off
	b.bufs[i] = buf
	b.frames[i] = frame.Frame{Buf: buf.B[buf.Off:]}
}

// refillTaken gives every slot listed in taken a fresh buffer.
func (b *batch) refillTaken() {
	if len(b.taken) == 0 {
		return
	}
	fresh := b.fresh[:len(b.taken)]
	frame.GetBufs(b.need+b.off, fresh)
	for j, i := range b.taken {
		buf := fresh[j]
		buf.Off = b.off
		b.bufs[i] = buf
		b.frames[i] = frame.Frame{Buf: buf.B[buf.Off:]}
		fresh[j] = nil
	}
	b.taken = b.taken[:0]
}

// flush queues the gathered unicast frames, dropping (and counting) what does not fit.
func (b *batch) flush() {
	if len(b.pend) == 0 {
		return
	}
	out := b.pendPort
	if out.direct(b.byRef) {
		b.sw.writeDirect(out, b.pend, &b.direct)
	} else {
		k := out.out.PushBatch(b.pend)
		if k > 0 {
			out.writer.Kick()
		}
		if k < len(b.pend) {
			out.drops[dropQueueFull].Add(uint64(len(b.pend) - k))
			out.stats.TxDropped.Add(uint64(len(b.pend) - k))
			frame.ReleaseBufs(b.pend[k:])
		}
	}
	clear(b.pend)
	b.pend = b.pend[:0]
	b.pendPort = nil
}

func (b *batch) release() {
	b.flush()
	for i, buf := range b.bufs {
		buf.Release()
		b.bufs[i] = nil
	}
}

const (
	etherTypeVLAN = 0x8100
	etherTypeQinQ = 0x88a8
	tciVIDMask    = 0x0fff
)

// forwardBatch forwards frames[0:n] of b, read from in. Buffers handed to an egress
// queue are replaced in b from the pool.
func (s *Switch) forwardBatch(in *swPort, b *batch, n int) {
	now := s.cfg.Now().UnixNano()
	ports := *s.ports.Load()
	rxBytes := 0
	b.lastSrc, b.lastDst, b.lastPort = 0, 0, nil // keys are never 0: VLAN 0 is not used
	if cs := s.captures.Load(); cs != nil {
		s.capture(*cs, in, b.frames[:n], true)
	}
	if in.ring != nil {
		in.ring.push(b.frames[:n], now, true)
	}
	for i := 0; i < n; i++ {
		f := &b.frames[i]
		buf := b.bufs[i]
		rxBytes += f.N
		buf.Off = b.off // a previous frame's tag pop may have moved it
		buf.Pkt, f.Pkt = f.Pkt, nil
		buf.N = f.N // Materialize and Grow size by it
		if s.forward(in, ports, b, buf, f, now) {
			b.taken = append(b.taken, i)
		} else if buf.Pkt != nil { // dropped: the buffer stays, the reference goes
			buf.Pkt.Release()
			buf.Pkt = nil
		}
	}
	b.flush()
	b.refillTaken()
	in.stats.RxFrames.Add(uint64(n))
	in.stats.RxBytes.Add(uint64(rxBytes))
}

// forward switches one frame held in buf (f views it) and reports whether buf was
// handed on (and must be replaced).
func (s *Switch) forward(in *swPort, ports []*swPort, rb *batch, buf *frame.Buf, f *frame.Frame, now int64) bool {
	// A frame by reference read into a head-sized buffer (Info.ByRefOnly) has only its
	// head in pkt; lengths come from f.N.
	pkt := f.Buf[:min(f.N, len(f.Buf))]
	if f.N < frame.EthHeaderLen {
		in.drops[dropTooShort].Add(1)
		return false
	}
	vlan, taggedIn, drop := in.classify(pkt, f.N, &f.Meta)
	if drop >= 0 {
		in.drops[drop].Add(1)
		return false
	}
	src := pkt[6:12]
	if k := keyOf(vlan, src); k != rb.lastSrc {
		if !s.fdb.learn(k, in, now) {
			in.drops[dropPortMACs].Add(1)
			return false
		}
		rb.lastSrc = k
	}

	// Known unicast.
	dst := pkt[0:6]
	if dst[0]&1 == 0 {
		k := keyOf(vlan, dst)
		out := rb.lastPort
		if k != rb.lastDst {
			out = s.fdb.lookup(k)
			rb.lastDst, rb.lastPort = k, out
		}
		if out != nil {
			if out == in {
				in.drops[dropSamePort].Add(1)
				return false
			}
			buf.N, buf.Meta = f.N, f.Meta
			return s.emit(out, rb, true, buf, vlan, taggedIn, true)
		}
	}

	// Flood: copies to all but the last egress port, which gets buf itself. Gathered
	// unicast frames go first, so each egress port sees frames in arrival order.
	rb.flush()
	var last *swPort
	for _, out := range ports {
		if out == in || !out.carries(vlan) || !out.up.Load() {
			continue
		}
		if last != nil {
			if buf.Pkt != nil { // a copy needs the bytes, maybe in new storage
				buf.Materialize()
				f.Buf, f.N = buf.B[buf.Off:], buf.N
				pkt = f.Bytes()
			}
			c := frame.GetBuf(buf.Off + f.N)
			c.Off = buf.Off
			c.N = copy(c.B[c.Off:], pkt)
			c.Meta = f.Meta
			s.emit(last, rb, false, c, vlan, taggedIn, false)
		}
		last = out
	}
	if last == nil {
		return false
	}
	buf.N, buf.Meta = f.N, f.Meta
	return s.emit(last, rb, false, buf, vlan, taggedIn, true)
}

// classify returns the VLAN of a frame of n bytes (pkt its head, at least the Ethernet
// header) read from in, and whether it came tagged; or the reason (>= 0) it is dropped.
func (in *swPort) classify(pkt []byte, n int, meta *frame.Meta) (vlan uint16, taggedIn bool, drop int) {
	src := pkt[6:12]
	if src[0]&1 != 0 || (src[0]|src[1]|src[2]|src[3]|src[4]|src[5]) == 0 {
		return 0, false, dropBadSource
	}
	taggedIn = binary.BigEndian.Uint16(pkt[12:14]) == etherTypeVLAN
	if taggedIn {
		if !in.trunk {
			return 0, true, dropTaggedOnAccess
		}
		if n < frame.EthHeaderLen+frame.VLANTagLen {
			return 0, true, dropTooShort
		}
		vlan = binary.BigEndian.Uint16(pkt[14:16]) & tciVIDMask
		if vlan == 0 { // priority-tagged: the port's untagged VLAN
			vlan = in.access
		}
	} else {
		vlan = in.access
	}
	if vlan == 0 || !in.carries(vlan) {
		return vlan, taggedIn, dropVLANNotAllowed
	}
	if meta.GSO == frame.GSONone {
		limit := in.info.MTU + frame.EthHeaderLen
		if taggedIn {
			limit += frame.VLANTagLen
		}
		if n > limit {
			return vlan, taggedIn, dropTooBig
		}
	}
	return vlan, taggedIn, -1
}

// emit fixes buf's tagging for out and queues it there (or writes it, for a port that
// takes direct writes), or gathers it in rb when gather is set. It reports whether buf
// was consumed; a buf that is not (owned == true) stays with the caller, any other is
// released.
func (s *Switch) emit(out *swPort, rb *batch, gather bool, buf *frame.Buf, vlan uint16, taggedIn, owned bool) bool {
	wantTag := out.tagged(vlan)
	if taggedIn || wantTag {
		buf.Materialize() // the tag is edited in buf's bytes
	}
	switch {
	case taggedIn && !wantTag: // pop: move the MACs 4 bytes on
		b := buf.B[buf.Off:]
		if isVLANType(binary.BigEndian.Uint16(b[16:18])) {
			// A second tag would surface after the pop: the double-tagging VLAN hop.
			out.drops[dropDoubleTagged].Add(1)
			out.stats.TxDropped.Add(1)
			return dropBuf(buf, owned)
		}
		copy(b[frame.VLANTagLen:frame.VLANTagLen+12], b[0:12])
		buf.Off += frame.VLANTagLen
		buf.N -= frame.VLANTagLen
		buf.Meta.Shift(-frame.VLANTagLen)
	case !taggedIn && wantTag: // push into the headroom
		if buf.Off < frame.VLANTagLen {
			out.drops[dropTooBig].Add(1)
			return dropBuf(buf, owned)
		}
		buf.Off -= frame.VLANTagLen
		b := buf.B[buf.Off:]
		copy(b[0:12], b[frame.VLANTagLen:frame.VLANTagLen+12])
		binary.BigEndian.PutUint16(b[12:14], etherTypeVLAN)
		binary.BigEndian.PutUint16(b[14:16], vlan)
		buf.N += frame.VLANTagLen
		buf.Meta.Shift(frame.VLANTagLen)
	case taggedIn && wantTag: // keep the tag, normalise a priority tag's VID
		b := buf.B[buf.Off:]
		binary.BigEndian.PutUint16(b[14:16], binary.BigEndian.Uint16(b[14:16])&^tciVIDMask|vlan)
	}
	if gather {
		if rb.pendPort != out || len(rb.pend) == cap(rb.pend) {
			rb.flush()
			rb.pendPort = out
		}
		rb.pend = append(rb.pend, buf)
		return true
	}
	if out.direct(rb.byRef) {
		rb.one[0] = buf // writeDirect releases it and clears the slot
		s.writeDirect(out, rb.one[:], &rb.direct)
		return true
	}
	if !out.out.Push(buf) {
		out.drops[dropQueueFull].Add(1)
		out.stats.TxDropped.Add(1)
		return dropBuf(buf, owned)
	}
	out.writer.Kick()
	return true
}

// isVLANType reports whether an EtherType introduces an 802.1Q or 802.1ad tag.
func isVLANType(t uint16) bool { return t == etherTypeVLAN || t == etherTypeQinQ }

// dropBuf releases a buf the caller does not keep, and reports it consumed.
func dropBuf(buf *frame.Buf, owned bool) bool {
	if owned {
		return false
	}
	buf.Release()
	return true
}
