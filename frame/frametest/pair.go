package frametest

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/vnetd/vnetd/frame"
)

// PairOptions configure a pair (NewPair). The zero value is usable.
type PairOptions struct {
	// Names of the two ends, reported by Info. Default "a" and "b".
	NameA, NameB string
	// MTU of both ends. Default 1500.
	MTU int
	// QueueLen bounds the frames waiting to be read at each end. Default 1024.
	QueueLen int
	// Caps are the offloads the ends accept and pass through. Default frame.CapsAll:
	// superframes cross a pair whole.
	Caps *frame.Caps
}

// End is one end of a pass-through pair. It implements frame.Port.
type End struct {
	info  frame.Info
	peer  *End
	in    *frame.Queue // frames written by the peer, waiting for ReadFrames here
	up    atomic.Bool
	close *sync.Once // shared by both ends
	stats frame.Counters

	popBuf []*frame.Buf // ReadFrames scratch; one reader at a time
}

var _ frame.Port = (*End)(nil)

// NewPair returns two connected ends, both administratively up.
func NewPair(o PairOptions) (*End, *End) {
	if o.NameA == "" {
		o.NameA = "a"
	}
	if o.NameB == "" {
		o.NameB = "b"
	}
	if o.MTU <= 0 {
		o.MTU = 1500
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 1024
	}
	caps := frame.CapsAll
	if o.Caps != nil {
		caps = *o.Caps
	}
	gso := caps&(frame.CapTSO4|frame.CapTSO6|frame.CapUSO) != 0
	once := new(sync.Once)
	mk := func(name string) *End {
		e := &End{
			info:  frame.Info{Name: name, MTU: o.MTU, MaxFrame: frame.MaxFrameFor(o.MTU, gso), Caps: caps},
			in:    frame.NewQueue(o.QueueLen),
			close: once,
		}
		e.up.Store(true)
		return e
	}
	a, b := mk(o.NameA), mk(o.NameB)
	a.peer, b.peer = b, a
	return a, b
}

// Info implements frame.Port.
func (e *End) Info() frame.Info { return e.info }

// Peer returns the other end.
func (e *End) Peer() *End { return e.peer }

// SetUp sets the end's administrative state. Frames sent by or towards a down end are
// dropped and counted as the sender's tx_dropped.
func (e *End) SetUp(up bool) { e.up.Store(up) }

// IsUp reports the end's administrative state.
func (e *End) IsUp() bool { return e.up.Load() }

// Drops implements frame.DropReporter.
func (e *End) Drops() map[string]uint64 { return e.stats.Drops() }

// Counters returns the end's live counters. tx counts frames this end sent that the
// peer queued; rx counts frames this end's reader took.
func (e *End) Counters() *frame.Counters { return &e.stats }

// WriteFrames implements frame.Port: it queues a copy of each frame at the peer.
func (e *End) WriteFrames(frames []frame.Frame) (int, error) {
	if e.closed() {
		return 0, net.ErrClosed
	}
	if !e.up.Load() || !e.peer.up.Load() {
		e.stats.DropTx(frame.DropLinkDown, uint64(len(frames)))
		return 0, nil
	}
	sent, bytes := e.peer.in.PushCopies(frames, e.peer.info.MaxFrame)
	if dropped := len(frames) - sent; dropped > 0 {
		e.stats.DropTx(frame.DropQueueFull, uint64(dropped))
	}
	e.stats.TxFrames.Add(uint64(sent))
	e.stats.TxBytes.Add(uint64(bytes))
	return sent, nil
}

// ReadFrames implements frame.Port.
func (e *End) ReadFrames(frames []frame.Frame) (int, error) {
	if len(frames) == 0 {
		return 0, nil
	}
	if cap(e.popBuf) < len(frames) {
		e.popBuf = make([]*frame.Buf, len(frames))
	}
	bufs := e.popBuf[:len(frames)]
	for {
		k, err := e.in.Pop(bufs)
		if err != nil {
			return 0, err
		}
		n, bytes := 0, 0
		for _, b := range bufs[:k] {
			if b.CopyTo(&frames[n]) {
				bytes += b.N
				n++
			} else {
				e.stats.DropRx(frame.DropBufferShort, 1)
			}
		}
		frame.ReleaseBufs(bufs[:k])
		if n > 0 {
			e.stats.RxFrames.Add(uint64(n))
			e.stats.RxBytes.Add(uint64(bytes))
			return n, nil
		}
	}
}

func (e *End) closed() bool {
	select {
	case <-e.in.Done():
		return true
	default:
		return false
	}
}

// Close implements frame.Port. Closing one end closes both.
func (e *End) Close() error {
	e.close.Do(func() {
		e.in.Close()
		e.peer.in.Close()
	})
	return nil
}
