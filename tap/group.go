package tap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vnetd/vnetd/frame"
)

// Group is a multi-queue TAP as one frame.Port, "tap:NAME": ReadFrames takes the
// frames of every queue (the kernel spreads the host's flows over them), and
// WriteFrames writes each frame to the queue its flow hashes to, so one flow always
// goes through one queue, in order, and different flows are written (and handed to
// the host's stack) in parallel by concurrent writers. To the switch it is one port:
// one FDB entry per MAC, one set of counters, one capture and link state.
//
// One port per queue (tap:NAME.qI, as OpenQueues gives) was not taken: the kernel
// picks the queue of each host flow, so a host MAC would be learned on one queue port
// and then another (FDB moves, max_macs and port security counted per queue), and
// status, capture and link state would be split N ways; and measured on 2 cores
// (docs/performance.md) it was no faster than a single queue.
//
// The reader waits for any queue through an epoll instance of its own holding every
// queue's descriptor, itself waited on by the Go runtime poller: no goroutine per
// queue and no copy of a frame. Each read drains the queues epoll reports ready,
// which are reported again while they still hold frames, so a busy queue cannot
// starve the others.
type Group struct {
	name      string
	qs        []*TAP
	info      frame.Info
	ep        *os.File // the epoll instance over the queues' descriptors
	epRaw     syscall.RawConn
	closeOnce sync.Once
	closed    atomic.Bool

	// Read side: one reader at a time (the frame.Port contract).
	events  []unix.EpollEvent
	readFn  func(fd uintptr) bool
	rframes []frame.Frame
	rn      int
	rerr    error // a queue's fault, already wrapped
	repoll  error // epoll_wait's own error
}

var (
	_ frame.Port          = (*Group)(nil)
	_ frame.DropReporter  = (*Group)(nil)
	_ frame.QueueReporter = (*Group)(nil)
)

// OpenGroup opens (and with Create, creates) the TAP described by o with o.Queues
// queues, as OpenQueues does, and joins them into one port. With Create false the
// existing TAP must be multi-queue when o.Queues > 1 (ip tuntap add ... multi_queue).
func OpenGroup(o Options) (*Group, error) {
	qs, err := OpenQueues(o)
	if err != nil {
		return nil, err
	}
	g, err := newGroup(o.Name, qs)
	if err != nil {
		for _, q := range qs {
			q.Close()
		}
		return nil, fmt.Errorf("open TAP %q: %w", o.Name, err)
	}
	return g, nil
}

func newGroup(name string, qs []*TAP) (*Group, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	for i, q := range qs {
		var cerr error
		err := q.raw.Control(func(fd uintptr) {
			// Level-triggered: a queue left with frames in it is reported again.
			cerr = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, int(fd), &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)})
		})
		if err == nil {
			err = cerr
		}
		if err != nil {
			unix.Close(epfd)
			return nil, fmt.Errorf("epoll_ctl queue %d: %w", i, err)
		}
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll set non-blocking: %w", err)
	}
	ep := os.NewFile(uintptr(epfd), "epoll:tap:"+name)
	raw, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		return nil, err
	}
	info := qs[0].info
	info.Name = "tap:" + name
	g := &Group{name: name, qs: qs, info: info, ep: ep, epRaw: raw, events: make([]unix.EpollEvent, len(qs))}
	g.readFn = g.readReady
	return g, nil
}

// Name returns the TAP's interface name.
func (g *Group) Name() string { return g.name }

// Info implements frame.Port.
func (g *Group) Info() frame.Info { return g.info }

// Queues returns the number of queues.
func (g *Group) Queues() int { return len(g.qs) }

// Drops implements frame.DropReporter: the drops of every queue.
func (g *Group) Drops() map[string]uint64 {
	var m map[string]uint64
	for _, q := range g.qs {
		for r, v := range q.Counters.Drops() {
			if m == nil {
				m = make(map[string]uint64)
			}
			m[r] += v
		}
	}
	return m
}

// QueueCounts implements frame.QueueReporter: the frames each queue read and wrote.
func (g *Group) QueueCounts() []frame.QueueCounts {
	out := make([]frame.QueueCounts, len(g.qs))
	for i, q := range g.qs {
		out[i] = frame.QueueCounts{RxFrames: q.Counters.RxFrames.Load(), TxFrames: q.Counters.TxFrames.Load()}
	}
	return out
}

// ReadFrames implements frame.Port: it blocks until some queue has a frame, then takes
// whatever the ready queues hold, up to len(frames), without blocking.
func (g *Group) ReadFrames(frames []frame.Frame) (int, error) {
	if len(frames) == 0 {
		return 0, nil
	}
	for {
		if g.closed.Load() {
			return 0, net.ErrClosed
		}
		g.rframes, g.rn, g.rerr, g.repoll = frames, 0, nil, nil
		err := g.epRaw.Read(g.readFn)
		n, rerr, repoll := g.rn, g.rerr, g.repoll
		g.rframes, g.rerr, g.repoll = nil, nil, nil
		if n > 0 {
			return n, nil // a queue's fault, if any, is seen again on the next read
		}
		if g.closed.Load() || errors.Is(err, os.ErrClosed) {
			return 0, net.ErrClosed
		}
		if rerr != nil {
			return 0, rerr
		}
		if err == nil {
			err = repoll
		}
		if err != nil {
			return 0, fmt.Errorf("read TAP %q: epoll: %w: %w", g.name, ErrDown, err)
		}
		// Only dropped frames were ready: wait again.
	}
}

// readReady is the epoll descriptor's raw.Read callback: it reads the queues epoll
// reports ready into g.rframes and reports whether the poller should stop waiting.
func (g *Group) readReady(epfd uintptr) bool {
	n, err := unix.EpollWait(int(epfd), g.events, 0)
	for err == unix.EINTR {
		n, err = unix.EpollWait(int(epfd), g.events, 0)
	}
	if err != nil {
		g.repoll = err
		return true
	}
	for _, ev := range g.events[:n] {
		if g.rn == len(g.rframes) {
			break // the rest stay ready (level-triggered) for the next call
		}
		q := g.qs[ev.Fd]
		q.rframes, q.rn, q.rerr = g.rframes[g.rn:], 0, nil
		cerr := q.raw.Control(q.drainFn) // holds the queue's descriptor open meanwhile
		g.rn += q.rn
		rerr := q.rerr
		q.rframes, q.rerr = nil, nil
		if cerr != nil || rerr != nil {
			if g.closed.Load() || q.closed.Load() {
				g.rerr = net.ErrClosed
			} else if rerr != nil {
				g.rerr = q.fault("read", rerr)
			} else {
				g.rerr = q.fault("read", cerr)
			}
			return true
		}
	}
	return g.rn > 0
}

// WriteFrames implements frame.Port: each run of frames of one queue is one write to
// it (see flowQueue). Safe for concurrent use, as a single queue's TAP is.
func (g *Group) WriteFrames(frames []frame.Frame) (int, error) {
	if g.closed.Load() {
		return 0, net.ErrClosed
	}
	if len(frames) == 0 {
		return 0, nil
	}
	nq := len(g.qs)
	total, start := 0, 0
	cur := flowQueue(&frames[0], nq)
	for i := 1; i <= len(frames); i++ {
		q := -1
		if i < len(frames) {
			if q = flowQueue(&frames[i], nq); q == cur {
				continue
			}
		}
		n, err := g.qs[cur].WriteFrames(frames[start:i])
		total += n
		if err != nil {
			return total, err
		}
		start, cur = i, q
	}
	return total, nil
}

// Close closes every queue; a created TAP disappears with the last. Idempotent.
func (g *Group) Close() error {
	var err error
	g.closeOnce.Do(func() {
		g.closed.Store(true)
		err = g.ep.Close() // wakes a waiting reader
		for _, q := range g.qs {
			if e := q.Close(); e != nil && err == nil {
				err = e
			}
		}
	})
	return err
}

// flowQueue returns the queue, of nq, that f's flow is written to: a hash of its IP
// addresses and, for TCP and UDP, its ports (802.1Q tags skipped); queue 0 for
// anything else. All fragments of an IPv4 datagram go to one queue (ports are left
// out for every fragmented datagram). The kernel then sends that flow's frames to
// vnetd on the same queue (it steers a flow to the queue that last wrote it).
func flowQueue(f *frame.Frame, nq int) int {
	if nq <= 1 {
		return 0
	}
	b := f.Buf
	if f.N < len(b) {
		b = b[:f.N]
	}
	if len(b) < frame.EthHeaderLen {
		return 0
	}
	off := 12
	et := binary.BigEndian.Uint16(b[off:])
	for (et == 0x8100 || et == 0x88a8) && len(b) >= off+6 {
		off += 4
		et = binary.BigEndian.Uint16(b[off:])
	}
	off += 2
	var h uint32 = 2166136261 // FNV-1a
	mix := func(p []byte) {
		for _, c := range p {
			h ^= uint32(c)
			h *= 16777619
		}
	}
	var l4 int
	var proto byte
	switch et {
	case 0x0800:
		if len(b) < off+20 {
			return 0
		}
		ip := b[off:]
		ihl := int(ip[0]&0x0f) * 4
		proto = ip[9]
		mix(ip[12:20])
		if binary.BigEndian.Uint16(ip[6:8])&0x3fff == 0 { // not a fragment
			l4 = off + ihl
		}
	case 0x86dd:
		if len(b) < off+40 {
			return 0
		}
		ip := b[off:]
		proto = ip[6]
		mix(ip[8:40])
		l4 = off + 40
	default:
		return 0
	}
	if l4 > 0 && (proto == unix.IPPROTO_TCP || proto == unix.IPPROTO_UDP) && len(b) >= l4+4 {
		h ^= uint32(proto)
		h *= 16777619
		mix(b[l4 : l4+4])
	}
	return int(uint64(h) * uint64(nq) >> 32)
}
