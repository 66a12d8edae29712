package reopen

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vnetd/vnetd/frame"
)

// Defaults for Options.
const (
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
)

// Options configure a Port.
type Options struct {
	// Name names the device in logs.
	Name string
	// Open opens the device again. It is called from a background goroutine.
	Open func() (frame.Port, error)
	// Gone reports whether an error of the inner port means the device is gone (and
	// reopening may help); other errors are returned to the caller as they are.
	Gone func(error) bool
	// Logger receives the down and up events; default slog.Default().
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between open attempts; defaults
	// DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
}

// Port is a reopening port. It implements frame.Port.
type Port struct {
	o    Options
	info frame.Info

	mu     sync.Mutex
	cur    frame.Port    // guarded by mu; nil while down
	up     chan struct{} // guarded by mu; closed when cur is set again
	closed bool          // guarded by mu
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup

	// Reopens counts the times the device came back.
	Reopens atomic.Uint64
	// DownDrops counts frames written while the device was gone.
	DownDrops atomic.Uint64
}

var _ frame.Port = (*Port)(nil)

// New wraps p, an open device port.
func New(p frame.Port, o Options) *Port {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(DefaultMaxBackoff, o.MinBackoff)
	}
	up := make(chan struct{})
	close(up)
	return &Port{o: o, info: p.Info(), cur: p, up: up, done: make(chan struct{})}
}

// Info implements frame.Port: the info of the device as first opened.
func (p *Port) Info() frame.Info { return p.info }

// Up reports whether the device is open (not gone and waiting to come back).
func (p *Port) Up() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur != nil
}

// Inner returns the current device port, nil while it is gone.
func (p *Port) Inner() frame.Port {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// current returns the device and, while it is gone, a channel closed when it is back.
func (p *Port) current() (frame.Port, <-chan struct{}, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur, p.up, p.closed
}

// ReadFrames implements frame.Port: while the device is gone it waits for it to come
// back (or for Close).
func (p *Port) ReadFrames(frames []frame.Frame) (int, error) {
	for {
		cur, up, closed := p.current()
		if closed {
			return 0, net.ErrClosed
		}
		if cur == nil {
			select {
			case <-up:
			case <-p.done:
			}
			continue
		}
		n, err := cur.ReadFrames(frames)
		if err == nil || n > 0 {
			return n, err
		}
		if p.failed(cur, err) {
			continue
		}
		return n, err
	}
}

// WriteFrames implements frame.Port: while the device is gone frames are dropped and
// counted (DownDrops).
func (p *Port) WriteFrames(frames []frame.Frame) (int, error) {
	cur, _, closed := p.current()
	if closed {
		return 0, net.ErrClosed
	}
	if cur == nil {
		p.DownDrops.Add(uint64(len(frames)))
		return 0, nil
	}
	n, err := cur.WriteFrames(frames)
	if err != nil && p.failed(cur, err) {
		p.DownDrops.Add(uint64(len(frames) - n))
		return n, nil
	}
	return n, err
}

// failed handles an error of device cur: it reports whether the caller should carry
// on (the device is gone and being reopened, or was replaced meanwhile) rather than
// return err.
func (p *Port) failed(cur frame.Port, err error) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	if p.cur != cur {
		p.mu.Unlock()
		return true // another caller took it down already (and closed it under us)
	}
	if !p.o.Gone(err) {
		p.mu.Unlock()
		return false
	}
	p.cur = nil
	p.up = make(chan struct{})
	p.wg.Add(1)
	p.mu.Unlock()
	cur.Close()
	p.o.Logger.Warn("device gone: port down, reopening it in the background", "name", p.o.Name, "err", err)
	go p.revive()
	return true
}

// revive opens the device until it succeeds or the port is closed.
func (p *Port) revive() {
	defer p.wg.Done()
	wait := p.o.MinBackoff
	t := time.NewTimer(wait)
	defer t.Stop()
	for attempts := 1; ; attempts++ {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		np, err := p.o.Open()
		if err != nil {
			wait = min(2*wait, p.o.MaxBackoff)
			t.Reset(wait)
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			np.Close()
			return
		}
		p.Reopens.Add(1)
		p.o.Logger.Info("device back: port up", "name", p.o.Name, "attempts", attempts)
		p.cur = np
		close(p.up)
		p.mu.Unlock()
		return
	}
}

// Close closes the device and stops reopening it. Idempotent.
func (p *Port) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	cur := p.cur
	p.cur = nil
	close(p.done)
	p.mu.Unlock()
	p.wg.Wait()
	if cur != nil {
		if err := cur.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
	}
	return nil
}
