package nsstack

import (
	"errors"
	"net"
	"sync"

	"github.com/vnetd/vnetd/frame"
)

// Connect joins two ports back to back, a pass-through pair with nothing in between:
// every frame read from one is written to the other, metadata included. It is how two
// namespace NICs declared as peers are wired. stop closes both ports and waits for the
// two pumps to exit.
func Connect(a, b frame.Port) (stop func()) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pump(a, b) }()
	go func() { defer wg.Done(); pump(b, a) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			a.Close()
			b.Close()
			wg.Wait()
		})
	}
}

// pump copies frames from src to dst until either closes. Between two NICs the frames
// go by reference (see frame.Packet): the payload is not copied at all.
func pump(src, dst frame.Port) {
	const batch = 64
	need := max(src.Info().MaxFrame, 64)
	caps := dst.Info().Caps
	bufs := make([]*frame.Buf, batch)
	frame.GetBufs(need, bufs)
	defer frame.ReleaseBufs(bufs)
	frames := make([]frame.Frame, batch)
	for i, b := range bufs {
		frames[i].Buf = b.B
	}
	pr, byRef := src.(frame.PacketReader)
	byRef = byRef && caps&frame.CapPacket != 0
	for {
		var n int
		var err error
		if byRef {
			n, err = pr.ReadPackets(frames)
		} else {
			n, err = src.ReadFrames(frames)
		}
		if err != nil {
			dst.Close()
			return
		}
		k := 0
		for i := 0; i < n; i++ {
			// dst cannot take this offload: a NIC pair always can (both are NICs), so
			// this only guards odd pairings; the frame is dropped, counted by neither.
			if !caps.Accepts(&frames[i].Meta) {
				continue
			}
			frames[k], frames[i] = frames[i], frames[k]
			k++
		}
		_, err = dst.WriteFrames(frames[:k])
		for i := range frames[:n] { // dst took references of its own
			if p := frames[i].Pkt; p != nil {
				p.Release()
				frames[i].Pkt = nil
			}
		}
		if err != nil && errors.Is(err, net.ErrClosed) {
			src.Close()
			return
		}
	}
}
