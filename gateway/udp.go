package gateway

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vnetd/vnetd/nsstack"
)

const udpBufSize = 64 << 10

var udpBufs = sync.Pool{New: func() any { b := make([]byte, udpBufSize); return &b }}

// handleUDP runs on the gateway NIC's delivery goroutine for a new flow's first
// datagram; it only opens the host socket (which does not block) and starts the
// relay.
func (g *Gateway) handleUDP(r *nsstack.UDPRequest) bool {
	dst, ok := g.destination(r.Local)
	if !ok {
		return false
	}
	if !g.reserve() {
		return true // dropped, counted
	}
	hc, err := g.o.Dial(g.ctx, "udp", dst.String())
	if err != nil {
		g.refused.Add(1)
		g.active.Add(-1)
		return false
	}
	gc, err := r.Accept()
	if err != nil {
		hc.Close()
		g.active.Add(-1)
		return true
	}
	f := &flow{guest: gc, host: hc}
	if !g.track(f) {
		f.close()
		g.active.Add(-1)
		return true
	}
	g.udpFlows.Add(1)
	u := &udpFlow{flow: f, idle: g.o.UDPIdleTimeout}
	u.touch()
	go func() {
		defer g.finish(f)
		done := make(chan struct{})
		go func() {
			defer close(done)
			u.copy(hc, gc, &g.bytesToHost)
		}()
		u.copy(gc, hc, &g.bytesFromHost)
		<-done
	}()
	return true
}

// udpFlow is a relayed UDP flow with its last activity, for the idle timeout.
type udpFlow struct {
	*flow
	idle time.Duration
	last atomic.Int64 // unix nanoseconds of the last datagram either way
}

func (u *udpFlow) touch() { u.last.Store(time.Now().UnixNano()) }

// copy relays datagrams from src to dst until the flow has been idle for u.idle (or
// fails), then closes the flow, which ends the other direction too.
func (u *udpFlow) copy(dst, src net.Conn, ctr *atomic.Uint64) {
	bp := udpBufs.Get().(*[]byte)
	defer udpBufs.Put(bp)
	buf := *bp
	defer u.close()
	for {
		src.SetReadDeadline(time.Unix(0, u.last.Load()).Add(u.idle))
		n, err := src.Read(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() && time.Since(time.Unix(0, u.last.Load())) < u.idle {
				continue // the other direction was busy: not idle yet
			}
			return
		}
		u.touch()
		if _, err := dst.Write(buf[:n]); err == nil {
			ctr.Add(uint64(n))
		}
	}
}
