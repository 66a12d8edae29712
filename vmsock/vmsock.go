package vmsock

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/internal/gather"
	"github.com/vnetd/vnetd/internal/sockpath"
	"github.com/vnetd/vnetd/offload"
)

// Options configure a socket listener.
type Options struct {
	// Path is the unix socket path to listen on.
	Path string
	// Protocol is "stream" (QEMU -netdev stream, 4-byte big-endian length then the
	// frame) or "dgram" (QEMU -netdev dgram, one datagram per frame); "" means stream.
	Protocol string
	// MTU is the ports' MTU; 0 means 1500.
	MTU int
	// Logger receives connection events; nil means slog.Default().
	Logger *slog.Logger
	// OnPort is called for every new connection with its port and name.
	OnPort func(p frame.Port, name string)
	// OnPortGone is called when a connection's port goes away. It runs on the
	// goroutine that found it gone, the port's reader or the one in WriteFrames (a
	// switch's writer), so it must not wait for the port to stop.
	OnPortGone func(name string)
	// QueueLen bounds each dgram peer's receive queue; 0 means 256. (A stream port
	// has no queue of its own: the switch's queue for the port is the one.) The
	// queue starts empty and grows with the frames actually queued.
	QueueLen int
	// MaxConns caps a stream listener's connections at once; one more is closed as
	// soon as it is accepted and counted (Stats.Refused). 0 means DefaultMaxConns.
	MaxConns int
	// FrameTimeout is how long a stream connection may take to finish a frame it
	// has started (its first byte arrived): a connection stalled in the middle of a
	// frame is closed and counted (Stats.Stalled). A connection idle between frames
	// is never timed out. 0 means DefaultFrameTimeout.
	FrameTimeout time.Duration
	// MaxPeers caps a dgram listener's peers (source addresses) at once; datagrams
	// from a new address beyond it are dropped and counted (Stats.Refused), and
	// logged once until a peer leaves. 0 means DefaultMaxPeers.
	MaxPeers int
	// PeerIdle is how long a dgram peer may send nothing before it is removed (its
	// port leaves the switch; Stats.Expired). 0 means DefaultPeerIdle.
	PeerIdle time.Duration
	// Now is the clock dgram peers are aged by; nil means time.Now.
	Now func() time.Time
	// NoCoalesce turns off merging a stream VM's TCP segments into superframes (see
	// Port.ReadFrames).
	NoCoalesce bool
}

// Defaults of the Options limits.
const (
	DefaultMaxConns     = 64
	DefaultFrameTimeout = 10 * time.Second
	DefaultMaxPeers     = 64
	DefaultPeerIdle     = 5 * time.Minute
)

// Stats are a listener's counters and its port count.
type Stats struct {
	// Ports is how many VM connections (stream) or peers (dgram) are attached now.
	Ports int `json:"ports"`
	// Limit is MaxConns (stream) or MaxPeers (dgram).
	Limit int `json:"limit"`
	// Refused: stream connections closed at MaxConns; dgram datagrams from new
	// peers dropped at MaxPeers.
	Refused uint64 `json:"refused"`
	// Stalled: stream connections closed for a frame not finished in FrameTimeout.
	Stalled uint64 `json:"stalled"`
	// Malformed: stream connections closed for an impossible length; dgram
	// datagrams too short for a frame or from an unnamed socket.
	Malformed uint64 `json:"malformed"`
	// Expired: dgram peers removed after PeerIdle without a datagram.
	Expired uint64 `json:"expired"`
	// Gone: dgram peers removed because their socket no longer exists (a write to
	// it found no one there).
	Gone uint64 `json:"gone"`
	// Coalesced: TCP segments from stream VMs merged into the frame before them (a
	// superframe).
	Coalesced uint64 `json:"coalesced"`
}

// ErrMalformed is returned by ReadFrames when the peer sent an impossible length.
var ErrMalformed = errors.New("malformed frame length")

// Listener accepts VM connections on a unix socket.
type Listener struct {
	opts      Options
	ln        net.Listener
	log       *slog.Logger
	seq       atomic.Uint64
	refused   atomic.Uint64
	stalled   atomic.Uint64
	expired   atomic.Uint64
	peersGone atomic.Uint64
	coalesced atomic.Uint64
	atCap     atomic.Bool    // the cap was hit and logged; cleared when a port leaves
	drops     frame.Counters // what no port counts: too_short, bad_length, refused_peer
	closeOnce sync.Once
	wg        sync.WaitGroup
	mu        sync.Mutex
	ports     map[*Port]struct{} // guarded by mu
	dgram     *dgramListener     // set for Protocol "dgram"
}

// Listen starts listening on opts.Path. A stale socket file nobody listens on is
// replaced; a socket somebody still listens on is refused, and so is anything that is
// not a socket (a regular file, a directory, a symlink), which is left untouched.
func Listen(opts Options) (*Listener, error) {
	if opts.Protocol == "" {
		opts.Protocol = "stream"
	}
	if opts.Protocol != "stream" && opts.Protocol != "dgram" {
		return nil, fmt.Errorf("listen %q: protocol %q not supported", opts.Path, opts.Protocol)
	}
	if opts.MTU == 0 {
		opts.MTU = 1500
	}
	if opts.QueueLen == 0 {
		opts.QueueLen = 256
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.FrameTimeout <= 0 {
		opts.FrameTimeout = DefaultFrameTimeout
	}
	if opts.MaxPeers <= 0 {
		opts.MaxPeers = DefaultMaxPeers
	}
	if opts.PeerIdle <= 0 {
		opts.PeerIdle = DefaultPeerIdle
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	network := "unix"
	if opts.Protocol == "dgram" {
		network = "unixgram"
	}
	if err := sockpath.Clear(opts.Path, network); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if opts.Protocol == "dgram" {
		l := &Listener{opts: opts, log: opts.Logger, ports: map[*Port]struct{}{}}
		if err := listenDgram(l); err != nil {
			return nil, err
		}
		return l, nil
	}
	ln, err := net.Listen("unix", opts.Path)
	if err != nil {
		return nil, fmt.Errorf("listen %q: %w", opts.Path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	l := &Listener{opts: opts, ln: ln, log: opts.Logger, ports: map[*Port]struct{}{}}
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

// Malformed returns how many connections were closed for a malformed length, and
// datagrams dropped as too short or from an unnamed peer: every drop the listener
// counts itself (Drops lists them by reason).
func (l *Listener) Malformed() uint64 { return l.drops.RxDropped.Load() }

// Stats returns the listener's counters.
func (l *Listener) Stats() Stats {
	st := Stats{Refused: l.refused.Load(), Stalled: l.stalled.Load(), Malformed: l.Malformed(),
		Expired: l.expired.Load(), Gone: l.peersGone.Load(), Coalesced: l.coalesced.Load()}
	if l.dgram != nil {
		st.Limit = l.opts.MaxPeers
		l.dgram.mu.Lock()
		st.Ports = len(l.dgram.peers)
		l.dgram.mu.Unlock()
		return st
	}
	st.Limit = l.opts.MaxConns
	l.mu.Lock()
	st.Ports = len(l.ports)
	l.mu.Unlock()
	return st
}

// refuse counts a connection or peer refused at the cap and logs the first of each
// episode (until a port leaves).
func (l *Listener) refuse(what string, limit int) {
	l.refused.Add(1)
	if !l.atCap.Swap(true) {
		l.log.Warn("vm "+what+" refused: listener at its cap (logged once until one leaves)", "limit", limit)
	}
}

// Drops returns the frames the listener dropped before any port took them, by
// reason: too_short and refused_peer (dgram: a datagram shorter than an Ethernet
// header, or from a peer with no address to answer), bad_length (stream: an
// impossible length prefix, which also closes the connection and its port).
func (l *Listener) Drops() map[string]uint64 { return l.drops.Drops() }

func (l *Listener) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		full := len(l.ports) >= l.opts.MaxConns
		l.mu.Unlock()
		if full {
			l.refuse("connection", l.opts.MaxConns) // counted before the VM can see the close
			c.Close()
			continue
		}
		n := l.seq.Add(1)
		name := fmt.Sprintf("sock:%s#%d", l.opts.Path, n)
		p := newPort(l, c, name)
		l.mu.Lock()
		l.ports[p] = struct{}{}
		l.mu.Unlock()
		l.log.Info("vm connected", "port", name)
		if l.opts.OnPort != nil {
			l.opts.OnPort(p, name)
		}
	}
}

func (l *Listener) gone(p *Port) {
	l.mu.Lock()
	_, ok := l.ports[p]
	delete(l.ports, p)
	l.mu.Unlock()
	if ok {
		l.atCap.Store(false)
		l.log.Info("vm disconnected", "port", p.name)
		if l.opts.OnPortGone != nil {
			l.opts.OnPortGone(p.name)
		}
	}
}

// Close stops listening, closes every port and removes the socket file. Idempotent.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		if l.dgram != nil {
			l.dgram.close()
			l.wg.Wait()
			os.Remove(l.opts.Path)
			return
		}
		l.ln.Close()
		l.wg.Wait()
		l.mu.Lock()
		ps := make([]*Port, 0, len(l.ports))
		for p := range l.ports {
			ps = append(ps, p)
		}
		l.mu.Unlock()
		for _, p := range ps {
			p.Close()
		}
	})
	return nil
}

// Port is one VM connection.
type Port struct {
	l         *Listener
	c         net.Conn
	r         *bufio.Reader
	name      string
	counters  frame.Counters
	closed    atomic.Bool
	closeOnce sync.Once
	hdr       [4]byte
	started   bool // the frame being read has armed its deadline
	deadline  bool // a read deadline is set on c
	merge     bool // coalesces(), fixed at connection

	wmu  sync.Mutex // one gather write at a time; guards what follows
	hdrs [][4]byte  // the length prefix of each frame of the write
	vec  net.Buffers
}

var _ frame.Port = (*Port)(nil)

func newPort(l *Listener, c net.Conn, name string) *Port {
	p := &Port{l: l, c: c, name: name}
	// The reader's buffer holds any frame whole (ReadFrames looks at it there).
	p.r = bufio.NewReaderSize(c, max(64<<10, p.wireMax()))
	p.merge = p.coalesces()
	return p
}

// Counters returns the port's traffic counters.
func (p *Port) Counters() *frame.Counters { return &p.counters }

// Drops implements frame.DropReporter.
func (p *Port) Drops() map[string]uint64 { return p.counters.Drops() }

// coalesceMax is the largest superframe a stream port makes: what fits a pooled jumbo
// buffer (about 11 segments of 1448 bytes), so a VM port's read buffers cost the
// switch 1 MiB (64 of 16 KiB) rather than 4 MiB of superframe-sized ones.
const coalesceMax = 16384 - frame.Headroom

// wireMax is the longest frame the VM may send: the MTU's, room for a tag included.
func (p *Port) wireMax() int { return frame.MaxFrameFor(p.l.opts.MTU, false) }

// coalesces reports whether the port merges TCP segments (unless Options.NoCoalesce,
// with an MTU whose frames leave room to merge). Port is the stream port only.
func (p *Port) coalesces() bool {
	return !p.l.opts.NoCoalesce && 2*p.wireMax() <= coalesceMax
}

// Info describes the port.
func (p *Port) Info() frame.Info {
	maxFrame := p.wireMax()
	if p.coalesces() {
		maxFrame = coalesceMax // what ReadFrames returns may be a superframe
	}
	// CapPacket: a namespace's frames are written from its gVisor buffers.
	return frame.Info{Name: p.name, MTU: p.l.opts.MTU, MaxFrame: maxFrame, Caps: frame.CapPacket}
}

// ReadFrames reads at least one frame, then whatever is already buffered. Once the port
// is closed (by the peer, a malformed length or Close) it returns net.ErrClosed, also
// while bytes read before are still buffered: those are not frames any more.
func (p *Port) ReadFrames(frames []frame.Frame) (int, error) {
	if p.closed.Load() {
		return 0, net.ErrClosed
	}
	n := 0
	for n < len(frames) {
		if n > 0 && p.r.Buffered() < 4 {
			break
		}
		if p.r.Buffered() == 0 {
			// Between frames: a VM may stay quiet as long as it likes.
			if p.deadline {
				p.c.SetReadDeadline(time.Time{})
				p.deadline = false
			}
			if _, err := p.r.Peek(1); err != nil {
				return p.readErr(n, err)
			}
		}
		// A frame has started: the rest must come within FrameTimeout.
		p.started = false
		if err := p.need(4); err != nil {
			return p.readErr(n, err)
		}
		if _, err := io.ReadFull(p.r, p.hdr[:]); err != nil {
			return p.readErr(n, err)
		}
		ln := int(binary.BigEndian.Uint32(p.hdr[:]))
		max := p.wireMax()
		if ln < frame.EthHeaderLen || ln > max {
			p.l.drops.DropRx(frame.DropBadLength, 1)
			p.l.log.Warn("malformed frame length, closing connection", "port", p.name, "len", ln)
			p.Close()
			if n > 0 {
				return n, nil
			}
			return 0, fmt.Errorf("read %s: length %d: %w", p.name, ln, ErrMalformed)
		}
		if err := p.need(ln); err != nil {
			return p.readErr(n, err)
		}
		// The frame is looked at in the reader's buffer (it always fits: the MTU's
		// frames are far shorter), then copied into frames[n] or, when it continues
		// the TCP stream of the frame before it, appended to that one as a superframe
		// (offload.Coalesce: QEMU hands a stream backend MTU-sized segments, and a
		// namespace takes one superframe for what were up to 11).
		b, err := p.r.Peek(ln)
		if err != nil {
			// The frame will not complete: drop its part so that the next read finds
			// the end of the stream, not the middle of this frame.
			p.r.Discard(p.r.Buffered())
			return p.readErr(n, err)
		}
		if n > 0 && p.merge && offload.Coalesce(&frames[n-1], b) {
			p.r.Discard(ln)
			p.l.coalesced.Add(1)
			p.counters.RxFrames.Add(1)
			p.counters.RxBytes.Add(uint64(ln))
			continue
		}
		f := &frames[n]
		if len(f.Buf) < ln {
			p.r.Discard(ln)
			p.counters.DropRx(frame.DropBufferShort, 1)
			continue
		}
		copy(f.Buf, b)
		p.r.Discard(ln)
		f.N = ln
		f.Meta = frame.Meta{}
		p.counters.RxFrames.Add(1)
		p.counters.RxBytes.Add(uint64(ln))
		n++
	}
	return n, nil
}

// need arms the frame deadline, once per frame, when fewer than k bytes of the
// started frame are buffered, so that reading them may block. A frame already in the
// buffer costs no deadline.
func (p *Port) need(k int) error {
	if p.started || p.r.Buffered() >= k {
		return nil
	}
	p.started = true
	p.deadline = true
	return p.c.SetReadDeadline(time.Now().Add(p.l.opts.FrameTimeout))
}

func (p *Port) readErr(n int, err error) (int, error) {
	if errors.Is(err, os.ErrDeadlineExceeded) && !p.closed.Load() {
		p.l.stalled.Add(1)
		p.l.log.Warn("vm frame stalled, closing connection", "port", p.name, "frame_timeout", p.l.opts.FrameTimeout)
		p.Close()
	}
	if n > 0 {
		return n, nil
	}
	p.Close()
	return 0, net.ErrClosed
}

// WriteFrames writes frames to the VM in one gather write (writev): each frame's 4-byte
// length and its bytes, for a frame by reference straight from the sending stack's
// buffers. It blocks while the VM does not read, as a socket does: the switch's writer
// for the port does the waiting and its bounded queue the dropping, so one slow VM
// never holds up another port. A failed write (the VM went away, or the port was
// closed under a blocked write) closes the port.
func (p *Port) WriteFrames(frames []frame.Frame) (int, error) {
	if p.closed.Load() {
		return 0, net.ErrClosed
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if len(p.hdrs) < len(frames) {
		p.hdrs = make([][4]byte, len(frames))
	}
	vec, bytes := p.vec[:0], 0
	for i := range frames {
		f := &frames[i]
		binary.BigEndian.PutUint32(p.hdrs[i][:], uint32(f.N))
		vec = append(vec, p.hdrs[i][:])
		vec = f.SlicesAtMost(vec, gather.MaxFrameSlices)
		bytes += f.N
	}
	p.vec = vec[:0]
	w := vec // WriteTo consumes its receiver
	_, err := w.WriteTo(p.c)
	clear(vec) // keep no reference to the caller's buffers
	if err != nil {
		p.counters.DropTx(frame.DropSendError, uint64(len(frames)))
		p.Close()
		return 0, net.ErrClosed
	}
	p.counters.TxFrames.Add(uint64(len(frames)))
	p.counters.TxBytes.Add(uint64(bytes))
	return len(frames), nil
}

// Close closes the connection. Idempotent.
func (p *Port) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		p.c.Close()
		p.l.gone(p)
	})
	return nil
}
