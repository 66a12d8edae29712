package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/vnetd/vnetd/nsstack"
)

// relayBufSize is each direction's copy buffer: large, so one Read drains what a
// GSO superframe or the host's socket buffer holds in one go.
const relayBufSize = 256 << 10

var relayBufs = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

// handleTCP runs on a goroutine of its own per connection attempt: it dials the host
// first and answers the guest's SYN only when that worked.
func (g *Gateway) handleTCP(r *nsstack.TCPRequest) {
	dst, ok := g.destination(r.Local)
	if !ok {
		r.Reset()
		return
	}
	if !g.reserve() {
		r.Reset()
		return
	}
	ctx, cancel := context.WithTimeout(g.ctx, g.o.DialTimeout)
	hc, err := g.o.Dial(ctx, "tcp", dst.String())
	cancel()
	if err != nil {
		g.refused.Add(1)
		g.active.Add(-1)
		r.Reset()
		g.log.Debug("tcp dial failed", "from", r.Remote, "to", r.Local, "err", err)
		return
	}
	gc, err := r.Accept()
	if err != nil {
		hc.Close()
		g.active.Add(-1)
		return
	}
	f := &flow{guest: gc, host: hc}
	if !g.track(f) {
		f.close()
		g.active.Add(-1)
		return
	}
	g.tcpFlows.Add(1)
	defer g.finish(f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.bytesToHost.Add(pipe(hc, gc, f))
	}()
	g.bytesFromHost.Add(pipe(gc, hc, f))
	<-done
}

// pipe copies src to dst until src ends, then half-closes dst (the FIN travels on);
// on an error either way it closes the whole flow, which ends the other direction
// too. It returns the bytes copied.
func pipe(dst, src net.Conn, f *flow) uint64 {
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	buf := *bp
	var total uint64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				f.close()
				return total
			}
			total += uint64(n)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
					return total
				}
			}
			f.close()
			return total
		}
	}
}
