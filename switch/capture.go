package l2switch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vnetd/vnetd/frame"
)

// Capture receives copies of frames crossing a switch, for live packet capture
// (`vnetd capture`). Copies go through a bounded queue: when the reader falls behind,
// frames are dropped from the capture (counted), never from the switch. With no
// capture open, the data path pays one atomic load per batch.
type Capture struct {
	s       *Switch
	port    string  // "" = every frame entering the switch, once
	filter  Matcher // nil = every frame
	ch      chan CapturedFrame
	dropped atomic.Uint64
	once    sync.Once
	done    chan struct{}
	mu      sync.RWMutex // held by senders; Close takes it to stop them before closing ch
	closed  bool
}

// CapturedFrame is one captured frame. Release its Buf when done with it.
type CapturedFrame struct {
	Time time.Time
	// Port is the port the frame entered (Ingress) or left through.
	Port    string
	Ingress bool
	// Buf holds the frame as it crossed the port (with its 802.1Q tag on a trunk);
	// Buf.Meta says whether it was a GSO superframe.
	Buf *frame.Buf
}

// ErrCaptureClosed is returned by Next after Close.
var ErrCaptureClosed = errors.New("capture closed")

// A Matcher picks the frames a capture takes; *pcapfilter.Filter is one. Match sees
// a frame's bytes from its Ethernet header on, as it crossed the port, and must be safe
// for concurrent use: every port's reader and writer call it.
type Matcher interface {
	Match(frame []byte) bool
}

// CaptureOptions say what a capture takes.
type CaptureOptions struct {
	// Port is the port captured; "" means every frame entering the switch, once.
	Port string
	// QueueLen bounds the frames waiting for Next; 0 means 4096.
	QueueLen int
	// Filter, when not nil, runs on each frame before it is copied: a frame it
	// rejects costs the filter and nothing more.
	Filter Matcher
}

// Capture starts capturing. With port "", every frame entering the switch is
// captured once (as it arrived); with a port name, the frames that port sends into
// the switch and the frames the switch sends out of it. queueLen bounds the frames
// waiting for Next; 0 means 4096.
func (s *Switch) Capture(port string, queueLen int) (*Capture, error) {
	return s.CaptureWith(CaptureOptions{Port: port, QueueLen: queueLen})
}

// CaptureWith starts a capture described by o (see Capture).
func (s *Switch) CaptureWith(o CaptureOptions) (*Capture, error) {
	port, queueLen := o.Port, o.QueueLen
	if queueLen <= 0 {
		queueLen = 4096
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("switch %q: capture: switch closed", s.cfg.Name)
	}
	if port != "" {
		found := false
		for _, sp := range *s.ports.Load() {
			found = found || sp.name == port
		}
		if !found {
			return nil, fmt.Errorf("switch %q: capture: no port %q", s.cfg.Name, port)
		}
	}
	c := &Capture{s: s, port: port, filter: o.Filter, ch: make(chan CapturedFrame, queueLen), done: make(chan struct{})}
	var next []*Capture
	if cur := s.captures.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, c)
	s.captures.Store(&next)
	return c, nil
}

// Next returns the next captured frame, waiting until one comes, ctx ends or the
// capture is closed.
func (c *Capture) Next(ctx context.Context) (CapturedFrame, error) {
	select {
	case f, ok := <-c.ch:
		if !ok {
			return CapturedFrame{}, ErrCaptureClosed
		}
		return f, nil
	case <-ctx.Done():
		return CapturedFrame{}, ctx.Err()
	case <-c.done:
		return CapturedFrame{}, ErrCaptureClosed
	}
}

// Dropped is the number of frames the capture missed because its queue was full.
func (c *Capture) Dropped() uint64 { return c.dropped.Load() }

// Close stops the capture and frees the frames still queued. It is idempotent.
func (c *Capture) Close() error {
	c.once.Do(func() {
		s := c.s
		s.mu.Lock()
		if cur := s.captures.Load(); cur != nil {
			var next []*Capture
			for _, x := range *cur {
				if x != c {
					next = append(next, x)
				}
			}
			if len(next) == 0 {
				s.captures.Store(nil)
			} else {
				s.captures.Store(&next)
			}
		}
		s.mu.Unlock()
		close(c.done)
		c.mu.Lock() // wait out senders that loaded the old set
		c.closed = true
		close(c.ch)
		c.mu.Unlock()
		s.capDropped.Add(c.dropped.Load()) // no sender drops any more
		for f := range c.ch {
			f.Buf.Release()
		}
	})
	return nil
}

// capture copies frames crossing sp to the captures that want them.
func (s *Switch) capture(cs []*Capture, sp *swPort, frames []frame.Frame, ingress bool) {
	var now time.Time
	for _, c := range cs {
		if c.port == "" && !ingress || c.port != "" && c.port != sp.name {
			continue
		}
		if now.IsZero() {
			now = time.Now()
		}
		c.mu.RLock()
		if c.closed {
			c.mu.RUnlock()
			continue
		}
		for i := range frames {
			f := &frames[i]
			var b *frame.Buf
			switch {
			case c.filter == nil:
			case f.Pkt == nil || f.N <= frame.PacketHead: // the buffer holds the whole frame
				if !c.filter.Match(f.Buf[:f.N]) {
					continue
				}
			default: // only the head is here: filter a whole copy
				b = frame.GetBuf(f.N)
				b.CopyFrom(f)
				if !c.filter.Match(b.Bytes()) {
					b.Release()
					continue
				}
			}
			if b == nil {
				b = frame.GetBuf(f.N)
				b.CopyFrom(f)
			}
			select {
			case c.ch <- CapturedFrame{Time: now, Port: sp.name, Ingress: ingress, Buf: b}:
			default:
				b.Release()
				c.dropped.Add(1)
			}
		}
		c.mu.RUnlock()
	}
}
