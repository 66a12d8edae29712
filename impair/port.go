package impair

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/vnetd/vnetd/frame"
)

// Direction selects which way a Port's parameters apply.
type Direction uint8

// Directions, seen from the wrapped port.
const (
	In   Direction = 1 << iota // frames read from the port (into the switch)
	Out                        // frames written to the port (out of the switch)
	Both = In | Out
)

// ParseDirection parses "in", "out" or "both" ("" is both).
func ParseDirection(s string) (Direction, error) {
	switch s {
	case "in":
		return In, nil
	case "out":
		return Out, nil
	case "", "both":
		return Both, nil
	}
	return 0, fmt.Errorf("direction %q: want in, out or both", s)
}

// Options configure a Port.
type Options struct {
	// Clock is the time source; default SystemClock.
	Clock Clock
	// OnClose, when set, runs once after the Port has closed.
	OnClose func()
}

// Port is a frame.Port that impairs the frames crossing it. Attach Port.Attach(),
// not the Port itself: it keeps the wrapped port's frame.PacketReader.
//
// Port advertises the wrapped port's Info unchanged, and honours it: WriteFrames
// never blocks (a frame that must wait is queued), is safe for concurrent use when
// the wrapped port's is (CapDirect, CapInline), and a frame by reference waits with a
// reference of its own (CapPacket).
type Port struct {
	inner      frame.Port
	pr         frame.PacketReader // inner as one, or nil
	concurrent bool               // inner.WriteFrames is safe for concurrent use
	wmu        sync.Mutex         // serialises writes to inner when it is not

	out, in *line

	// In: once an In impairment is set, a goroutine of ours (pump) reads inner and
	// the frames it lets through wait in ready for ReadFrames.
	pumping  atomic.Bool
	pumpDone chan struct{}
	rmu      sync.Mutex
	ready    []*frame.Buf // guarded by rmu
	readErr  error        // guarded by rmu: why pump stopped
	readyc   chan struct{}

	closed    chan struct{}
	closeOnce sync.Once
	onClose   func()

	scratch sync.Pool // *[]frame.Frame for writes to inner
}

var _ frame.Port = (*Port)(nil)

// Wrap returns p wrapped with no impairment: frames pass straight through until Set.
func Wrap(p frame.Port, o Options) *Port {
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	w := &Port{inner: p, readyc: make(chan struct{}, 1), closed: make(chan struct{}), pumpDone: make(chan struct{}), onClose: o.OnClose}
	w.pr, _ = p.(frame.PacketReader)
	w.concurrent = p.Info().Caps&(frame.CapDirect|frame.CapInline) != 0
	w.out = newLine(o.Clock, w.writeBufs)
	w.in = newLine(o.Clock, w.pushReady)
	w.scratch.New = func() any { s := make([]frame.Frame, 0, releaseBatch); return &s }
	return w
}

// packetPort is a Port whose wrapped port is a frame.PacketReader.
type packetPort struct{ *Port }

// ReadPackets implements frame.PacketReader.
func (p packetPort) ReadPackets(frames []frame.Frame) (int, error) { return p.read(frames, true) }

// Attach returns the port to attach in place of the wrapped one: p, or p with
// ReadPackets when the wrapped port has it.
func (p *Port) Attach() frame.Port {
	if p.pr != nil {
		return packetPort{p}
	}
	return p
}

// Inner returns the wrapped port.
func (p *Port) Inner() frame.Port { return p.inner }

// Set replaces the parameters of the directions in dir. The zero Params clears them.
func (p *Port) Set(dir Direction, prm Params) error {
	if err := prm.Validate(); err != nil {
		return err
	}
	if dir&In != 0 {
		p.in.set(prm)
	}
	if dir&Out != 0 {
		p.out.set(prm)
	}
	return nil
}

// Status is a Port's parameters and counters per direction.
type Status struct {
	In       Params `json:"in"`
	Out      Params `json:"out"`
	InStats  Stats  `json:"in_stats"`
	OutStats Stats  `json:"out_stats"`
}

// Status returns p's parameters and counters.
func (p *Port) Status() Status {
	return Status{In: *p.in.params.Load(), Out: *p.out.params.Load(), InStats: p.in.stats.snapshot(), OutStats: p.out.stats.snapshot()}
}

// Info implements frame.Port: the wrapped port's.
func (p *Port) Info() frame.Info { return p.inner.Info() }

// WriteFrames implements frame.Port.
func (p *Port) WriteFrames(frames []frame.Frame) (int, error) {
	if p.out.passThrough() {
		return p.writeInner(frames)
	}
	select {
	case <-p.closed:
		return 0, net.ErrClosed
	default:
	}
	direct := p.inner.Info().Caps&frame.CapDirect != 0
	var arr [8]*frame.Buf
	now := arr[:0]
	for i := range frames {
		now = p.out.admit(copyBuf(&frames[i], direct), now)
	}
	if len(now) > 0 {
		p.writeBufs(now)
	}
	return len(frames), nil
}

// copyBuf copies f into a pooled buffer; a frame by reference keeps a reference of
// its own and its head (all of it when the port is not CapDirect: such a port is
// given room for the whole frame).
func copyBuf(f *frame.Frame, headOnly bool) *frame.Buf {
	size := f.N
	if f.Pkt != nil && headOnly {
		size = min(f.N, frame.PacketHead)
	}
	b := frame.GetBuf(max(size, 64))
	b.N, b.Meta = f.N, f.Meta
	if f.Pkt != nil {
		copy(b.B, f.Buf[:min(f.N, frame.PacketHead, len(f.Buf))])
		b.Pkt = f.Pkt.Clone()
	} else {
		copy(b.B, f.Bytes())
	}
	return b
}

func (p *Port) writeInner(frames []frame.Frame) (int, error) {
	if !p.concurrent {
		p.wmu.Lock()
		defer p.wmu.Unlock()
	}
	return p.inner.WriteFrames(frames)
}

// writeBufs writes bufs to the wrapped port and releases them: Out's sink.
func (p *Port) writeBufs(bufs []*frame.Buf) {
	sp := p.scratch.Get().(*[]frame.Frame)
	for off := 0; off < len(bufs); off += releaseBatch {
		fs := (*sp)[:0]
		for _, b := range bufs[off:min(off+releaseBatch, len(bufs))] {
			fs = append(fs, frame.Frame{Buf: b.B[b.Off:], N: b.N, Meta: b.Meta, Pkt: b.Pkt})
		}
		p.writeInner(fs) // what it refuses it counts as its own drops
		clear(fs)
	}
	p.scratch.Put(sp)
	frame.ReleaseBufs(bufs)
}

// ReadFrames implements frame.Port.
func (p *Port) ReadFrames(frames []frame.Frame) (int, error) { return p.read(frames, false) }

func (p *Port) readInner(frames []frame.Frame, byRef bool) (int, error) {
	if byRef && p.pr != nil {
		return p.pr.ReadPackets(frames)
	}
	return p.inner.ReadFrames(frames)
}

func (p *Port) read(frames []frame.Frame, byRef bool) (int, error) {
	if !p.pumping.Load() {
		if p.in.params.Load().IsZero() {
			n, err := p.readInner(frames, byRef)
			if err != nil || p.in.params.Load().IsZero() {
				return n, err
			}
			// Set while this read waited: these frames are the first impaired, and
			// from now on pump reads the wrapped port.
			var now []*frame.Buf
			for i := range frames[:n] {
				f := &frames[i]
				b := copyBuf(f, false)
				if f.Pkt != nil {
					f.Pkt.Release()
					f.Pkt = nil
				}
				now = p.in.admit(b, now)
			}
			p.pushReady(now)
		}
		if p.pumping.CompareAndSwap(false, true) {
			go p.pump()
		}
	}
	return p.takeReady(frames, byRef)
}

// pump reads the wrapped port through In until it closes.
func (p *Port) pump() {
	defer close(p.pumpDone)
	info := p.inner.Info()
	need := max(info.MaxFrame, frame.MaxFrameFor(info.MTU, false), 64)
	if p.pr != nil && info.ByRefOnly {
		need = frame.PacketHead
	}
	bufs := make([]*frame.Buf, releaseBatch)
	frames := make([]frame.Frame, releaseBatch)
	refill := func(bs []*frame.Buf) {
		frame.GetBufs(need, bs)
		for i, b := range bs {
			frames[i] = frame.Frame{Buf: b.B}
		}
	}
	refill(bufs)
	var now []*frame.Buf
	for {
		n, err := p.readInner(frames, p.pr != nil)
		if err != nil {
			frame.ReleaseBufs(bufs)
			p.rmu.Lock()
			p.readErr = err
			p.rmu.Unlock()
			p.signalReady()
			return
		}
		for i := range frames[:n] {
			b := bufs[i]
			b.Off, b.N, b.Meta, b.Pkt = 0, frames[i].N, frames[i].Meta, frames[i].Pkt
			frames[i].Pkt = nil
			bufs[i] = nil
			now = p.in.admit(b, now)
		}
		p.pushReady(now)
		clear(now)
		now = now[:0]
		refill(bufs[:n])
	}
}

func (p *Port) signalReady() {
	select {
	case p.readyc <- struct{}{}:
	default:
	}
}

// pushReady queues bufs for ReadFrames: In's sink. Beyond the limit they are dropped.
func (p *Port) pushReady(bufs []*frame.Buf) {
	if len(bufs) == 0 {
		return
	}
	limit := p.in.params.Load().Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	p.rmu.Lock()
	for _, b := range bufs {
		if len(p.ready) >= limit || p.readErr != nil {
			p.in.stats.overlimit.Add(1)
			b.Release()
			continue
		}
		p.ready = append(p.ready, b)
	}
	p.rmu.Unlock()
	p.signalReady()
}

// takeReady fills frames from ready, blocking until there is at least one.
func (p *Port) takeReady(frames []frame.Frame, byRef bool) (int, error) {
	for {
		p.rmu.Lock()
		n, k := 0, 0
		for ; k < len(p.ready) && n < len(frames); k++ {
			b, f := p.ready[k], &frames[n]
			p.ready[k] = nil
			if byRef && b.Pkt != nil {
				h := min(b.N, frame.PacketHead)
				if len(f.Buf) >= h {
					copy(f.Buf, b.B[b.Off:b.Off+h])
					f.N, f.Meta, f.Pkt = b.N, b.Meta, b.Pkt
					b.Pkt = nil
					n++
				}
			} else if b.CopyTo(f) {
				n++
			}
			b.Release()
		}
		p.ready = p.ready[k:]
		if len(p.ready) == 0 {
			p.ready = nil
		}
		more, err := len(p.ready) > 0, p.readErr
		p.rmu.Unlock()
		if n > 0 {
			if more {
				p.signalReady()
			}
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		select {
		case <-p.readyc:
		case <-p.closed:
			return 0, net.ErrClosed
		}
	}
}

// Close implements frame.Port: it closes the wrapped port and drops waiting frames.
func (p *Port) Close() error {
	var err error
	p.closeOnce.Do(func() {
		close(p.closed)
		err = p.inner.Close()
		p.out.close()
		p.in.close()
		if p.pumping.Load() {
			<-p.pumpDone
		}
		p.rmu.Lock()
		frame.ReleaseBufs(p.ready)
		p.ready = nil
		if p.readErr == nil {
			p.readErr = net.ErrClosed
		}
		p.rmu.Unlock()
		if p.onClose != nil {
			p.onClose()
		}
	})
	return err
}
