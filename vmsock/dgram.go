package vmsock

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vnetd/vnetd/frame"
)

// dgramListener serves QEMU "-netdev dgram": one datagram per frame, one port per
// peer address.
type dgramListener struct {
	l     *Listener
	conn  *net.UnixConn
	mu    sync.Mutex
	peers map[string]*DgramPort // guarded by mu
}

func listenDgram(l *Listener) error {
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: l.opts.Path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("listen %q: %w", l.opts.Path, err)
	}
	c.SetReadBuffer(4 << 20)
	d := &dgramListener{l: l, conn: c, peers: map[string]*DgramPort{}}
	l.dgram = d
	l.wg.Add(1)
	go d.read()
	return nil
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
			d.l.malformed.Add(1)
			if n < frame.EthHeaderLen {
				d.l.drops.DropRx(frame.DropTooShort, 1)
			} else {
				d.l.drops.DropRx(frame.DropRefusedPeer, 1)
			}
			continue
		}
		b.Off, b.N, b.Meta = 0, n, frame.Meta{}
		d.mu.Lock()
		p := d.peers[addr.Name]
		isNew := p == nil
		if isNew {
			name := fmt.Sprintf("sock:%s#%d", d.l.opts.Path, d.l.seq.Add(1))
			p = &DgramPort{d: d, addr: addr, name: name, rx: frame.NewQueue(d.l.opts.QueueLen)}
			d.peers[addr.Name] = p
		}
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
	name      string
	rx        *frame.Queue
	counters  frame.Counters
	closed    atomic.Bool
	closeOnce sync.Once
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

// WriteFrames sends one datagram per frame; a datagram the kernel cannot take now is
// dropped and counted (the socket is written without waiting).
func (p *DgramPort) WriteFrames(frames []frame.Frame) (int, error) {
	if p.closed.Load() {
		return 0, net.ErrClosed
	}
	p.d.conn.SetWriteDeadline(time.Now().Add(time.Millisecond))
	for i := range frames {
		if _, err := p.d.conn.WriteToUnix(frames[i].Bytes(), p.addr); err != nil {
			p.counters.DropTx(frame.DropSendError, 1)
			continue
		}
		p.counters.TxFrames.Add(1)
		p.counters.TxBytes.Add(uint64(frames[i].N))
	}
	return len(frames), nil
}

// Close forgets the peer. Idempotent.
func (p *DgramPort) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		p.rx.Close()
		p.d.mu.Lock()
		delete(p.d.peers, p.addr.Name)
		p.d.mu.Unlock()
		if p.d.l.opts.OnPortGone != nil {
			p.d.l.opts.OnPortGone(p.name)
		}
	})
	return nil
}
