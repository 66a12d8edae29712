package vmsock

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vnetd/vnetd/frame"
	"golang.org/x/sys/unix"
)

// dgramListener serves QEMU "-netdev dgram": one datagram per frame, one port per
// peer address.
//
// Peers are aged: one that sent nothing for PeerIdle is removed by a sweep (every
// PeerIdle/4, at most every 30s), and one whose socket is gone (a write to it finds
// no one there: ENOENT, ECONNREFUSED) at once. At most MaxPeers exist at a time.
type dgramListener struct {
	l     *Listener
	conn  *net.UnixConn
	raw   syscall.RawConn // conn's, for writes that never wait
	mu    sync.Mutex
	peers map[string]*DgramPort // guarded by mu
	stop  chan struct{}         // closed by close: ends the sweep
}

func listenDgram(l *Listener) error {
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: l.opts.Path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("listen %q: %w", l.opts.Path, err)
	}
	c.SetReadBuffer(4 << 20)
	raw, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return fmt.Errorf("listen %q: %w", l.opts.Path, err)
	}
	d := &dgramListener{l: l, conn: c, raw: raw, peers: map[string]*DgramPort{}, stop: make(chan struct{})}
	l.dgram = d
	l.wg.Add(2)
	go d.read()
	go d.sweep()
	return nil
}

// sweep expires idle peers until the listener closes.
func (d *dgramListener) sweep() {
	defer d.l.wg.Done()
	t := time.NewTicker(min(max(d.l.opts.PeerIdle/4, 10*time.Millisecond), 30*time.Second))
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.expire(d.l.opts.Now())
		}
	}
}

// expire removes the peers that sent nothing since now-PeerIdle and returns how
// many.
func (d *dgramListener) expire(now time.Time) int {
	limit := now.Add(-d.l.opts.PeerIdle).UnixNano()
	var idle []*DgramPort
	d.mu.Lock()
	for _, p := range d.peers {
		if p.lastSeen.Load() <= limit {
			idle = append(idle, p)
		}
	}
	d.mu.Unlock()
	for _, p := range idle {
		d.l.expired.Add(1)
		d.l.log.Info("vm peer idle, removed", "port", p.name, "peer", p.addr.Name, "peer_idle", d.l.opts.PeerIdle)
		p.Close()
	}
	return len(idle)
}

func (d *dgramListener) read() {
	defer d.l.wg.Done()
	for {
		b := frame.GetBuf(frame.MaxFrameFor(d.l.opts.MTU, false))
		n, addr, err := d.conn.ReadFromUnix(b.B)
		if err != nil {
			b.Release()
			return
		}
		if addr == nil || addr.Name == "" || n < frame.EthHeaderLen {
			b.Release()
			if n < frame.EthHeaderLen {
				d.l.drops.DropRx(frame.DropTooShort, 1)
			} else {
				d.l.drops.DropRx(frame.DropRefusedPeer, 1)
			}
			continue
		}
		b.Off, b.N, b.Meta = 0, n, frame.Meta{}
		now := d.l.opts.Now().UnixNano()
		d.mu.Lock()
		p := d.peers[addr.Name]
		isNew := p == nil
		if isNew && len(d.peers) >= d.l.opts.MaxPeers {
			d.mu.Unlock()
			b.Release()
			d.l.refuse("peer", d.l.opts.MaxPeers)
			continue
		}
		if isNew {
			name := fmt.Sprintf("sock:%s#%d", d.l.opts.Path, d.l.seq.Add(1))
			p = &DgramPort{d: d, addr: addr, sa: &unix.SockaddrUnix{Name: addr.Name}, name: name, rx: frame.NewQueue(d.l.opts.QueueLen)}
			d.peers[addr.Name] = p
		}
		p.lastSeen.Store(now)
		d.mu.Unlock()
		if isNew {
			d.l.log.Info("vm peer seen", "port", p.name, "peer", addr.Name)
			if d.l.opts.OnPort != nil {
				d.l.opts.OnPort(p, p.name)
			}
		}
		if !p.rx.Push(b) {
			b.Release()
			p.counters.DropRx(frame.DropQueueFull, 1)
		}
	}
}

func (d *dgramListener) close() {
	close(d.stop)
	d.conn.Close()
	d.mu.Lock()
	ps := make([]*DgramPort, 0, len(d.peers))
	for _, p := range d.peers {
		ps = append(ps, p)
	}
	d.mu.Unlock()
	for _, p := range ps {
		p.Close()
	}
}

// DgramPort is one datagram peer.
type DgramPort struct {
	d         *dgramListener
	addr      *net.UnixAddr
	sa        *unix.SockaddrUnix // addr, for sendto
	name      string
	rx        *frame.Queue
	counters  frame.Counters
	closed    atomic.Bool
	closeOnce sync.Once
	lastSeen  atomic.Int64 // UnixNano of the peer's last datagram, by Options.Now
	bufs      [64]*frame.Buf
	pending   []*frame.Buf
}

var _ frame.Port = (*DgramPort)(nil)

// Counters returns the port's traffic counters.
func (p *DgramPort) Counters() *frame.Counters { return &p.counters }

// Drops implements frame.DropReporter.
func (p *DgramPort) Drops() map[string]uint64 { return p.counters.Drops() }

// Info describes the port.
func (p *DgramPort) Info() frame.Info {
	return frame.Info{Name: p.name, MTU: p.d.l.opts.MTU, MaxFrame: frame.MaxFrameFor(p.d.l.opts.MTU, false)}
}

// ReadFrames returns queued datagrams from the peer.
func (p *DgramPort) ReadFrames(frames []frame.Frame) (int, error) {
	for len(p.pending) == 0 {
		k := len(frames)
		if k > len(p.bufs) {
			k = len(p.bufs)
		}
		n, err := p.rx.Pop(p.bufs[:k])
		if err != nil {
			return 0, net.ErrClosed
		}
		p.pending = p.bufs[:n]
	}
	n := 0
	for n < len(frames) && len(p.pending) > 0 {
		b := p.pending[0]
		p.pending[0] = nil
		p.pending = p.pending[1:]
		if !b.CopyTo(&frames[n]) {
			p.counters.DropRx(frame.DropBufferShort, 1)
			b.Release()
			continue
		}
		p.counters.RxFrames.Add(1)
		p.counters.RxBytes.Add(uint64(b.N))
		b.Release()
		n++
	}
	return n, nil
}

// WriteFrames sends one datagram per frame without waiting (MSG_DONTWAIT): a
// datagram the peer's socket cannot take now is dropped and counted. (Waiting would
// hold the listener's one socket, and every other peer's writes, behind a VM that
// does not read, and keep the switch's queue for the port full meanwhile.) A peer
// whose socket is gone (ENOENT, ECONNREFUSED) is removed at once.
func (p *DgramPort) WriteFrames(frames []frame.Frame) (int, error) {
	if p.closed.Load() {
		return 0, net.ErrClosed
	}
	var gone error
	sent, bytes := 0, 0
	err := p.d.raw.Write(func(fd uintptr) bool {
		for i := range frames {
			err := unix.Sendto(int(fd), frames[i].Bytes(), unix.MSG_DONTWAIT, p.sa)
			if err == unix.ENOENT || err == unix.ECONNREFUSED {
				gone = err
				return true
			}
			if err == nil {
				sent++
				bytes += frames[i].N
			}
		}
		return true
	})
	p.counters.TxFrames.Add(uint64(sent))
	p.counters.TxBytes.Add(uint64(bytes))
	if lost := len(frames) - sent; lost > 0 {
		p.counters.DropTx(frame.DropSendError, uint64(lost))
	}
	if gone != nil || err != nil {
		if gone != nil {
			// Nobody is bound at the peer's address any more: the VM is gone.
			p.d.l.peersGone.Add(1)
			p.d.l.log.Info("vm peer gone, removed", "port", p.name, "peer", p.addr.Name, "err", gone)
		}
		p.Close()
		return 0, net.ErrClosed
	}
	return len(frames), nil
}

// Close forgets the peer. Idempotent.
func (p *DgramPort) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		p.rx.Close()
		p.d.mu.Lock()
		if p.d.peers[p.addr.Name] == p {
			delete(p.d.peers, p.addr.Name)
		}
		p.d.mu.Unlock()
		p.d.l.atCap.Store(false)
		if p.d.l.opts.OnPortGone != nil {
			p.d.l.opts.OnPortGone(p.name)
		}
	})
	return nil
}
