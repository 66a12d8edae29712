package gateway

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/vnetd/vnetd/nsstack"
)

// prohibitQueue bounds the denied echo requests waiting for their ICMP error; beyond
// it the error is not sent (the request is still dropped and counted as denied).
const prohibitQueue = 64

// echoKey names an ICMP flow: one guest's echo identifier towards one destination.
type echoKey struct {
	src, dst netip.Addr
	ident    uint16
}

// echoFlow relays one guest's pings to one destination through an unprivileged ICMP
// socket of the host (SOCK_DGRAM, IPPROTO_ICMP or ICMPV6): the host kernel sets the
// identifier and matches the replies; they go back with the guest's identifier.
type echoFlow struct {
	g    *Gateway
	key  echoKey
	req  *nsstack.EchoRequest // the first request: where replies go
	conn *icmp.PacketConn
	to   net.Addr
	last atomic.Int64 // unix nanoseconds of the last echo either way
	once sync.Once
}

func (e *echoFlow) close() { e.once.Do(func() { e.conn.Close() }) }

// send forwards one echo request to the host socket.
func (e *echoFlow) send(r *nsstack.EchoRequest) {
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if r.V6() {
		typ = ipv6.ICMPTypeEchoRequest
	}
	b, err := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: int(r.Ident), Seq: int(r.Seq), Data: r.Payload}}).Marshal(nil)
	if err != nil {
		return
	}
	e.last.Store(time.Now().UnixNano())
	if _, err := e.conn.WriteTo(b, e.to); err == nil {
		e.g.bytesToHost.Add(uint64(len(r.Payload)))
	}
}

// handleEcho runs on the gateway NIC's delivery goroutine for each echo request to a
// foreign address: it checks policy, finds or opens the flow's host ping socket and
// sends. It never blocks on the guest side and never answers for the destination.
func (g *Gateway) handleEcho(r *nsstack.EchoRequest) {
	dst, ok := g.destination(netip.AddrPortFrom(r.Dst, 0))
	if !ok {
		select {
		case g.prohibit <- r:
		default:
		}
		return
	}
	key := echoKey{r.Src, r.Dst, r.Ident}
	g.echoMu.Lock()
	e := g.echoes[key]
	g.echoMu.Unlock()
	if e != nil {
		e.send(r)
		return
	}
	if !g.reserve() {
		return
	}
	network, laddr := "udp4", "0.0.0.0"
	if r.V6() {
		network, laddr = "udp6", "::"
	}
	conn, err := icmp.ListenPacket(network, laddr)
	if err != nil {
		g.active.Add(-1)
		if unsupported(err) {
			g.icmpUnsupported.Add(1)
		} else {
			g.refused.Add(1)
		}
		g.log.Debug("icmp socket", "to", dst.Addr(), "err", err)
		return
	}
	e = &echoFlow{g: g, key: key, req: r, conn: conn, to: &net.UDPAddr{IP: dst.Addr().AsSlice(), Zone: dst.Addr().Zone()}}
	if !g.track(e) {
		e.close()
		g.active.Add(-1)
		return
	}
	g.echoMu.Lock()
	g.echoes[key] = e
	g.echoMu.Unlock()
	g.icmpFlows.Add(1)
	e.send(r)
	go e.relayReplies(dst.Addr())
}

// relayReplies sends the host's echo replies from from back to the guest until the
// flow has been idle for UDPIdleTimeout, then ends it.
func (e *echoFlow) relayReplies(from netip.Addr) {
	g := e.g
	defer func() {
		g.echoMu.Lock()
		if g.echoes[e.key] == e {
			delete(g.echoes, e.key)
		}
		g.echoMu.Unlock()
		g.finish(e)
	}()
	proto, reply := 1, icmp.Type(ipv4.ICMPTypeEchoReply)
	if e.req.V6() {
		proto, reply = 58, ipv6.ICMPTypeEchoReply
	}
	bp := udpBufs.Get().(*[]byte)
	defer udpBufs.Put(bp)
	buf := *bp
	idle := g.o.UDPIdleTimeout
	for {
		e.conn.SetReadDeadline(time.Unix(0, e.last.Load()).Add(idle))
		n, peer, err := e.conn.ReadFrom(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() && time.Since(time.Unix(0, e.last.Load())) < idle {
				continue
			}
			return
		}
		if pa, ok := peer.(*net.UDPAddr); !ok || pa.AddrPort().Addr().Unmap() != from {
			continue
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != reply {
			continue
		}
		echo, ok := m.Body.(*icmp.Echo)
		if !ok {
			continue
		}
		e.last.Store(time.Now().UnixNano())
		// Counted as it comes from the host, before the guest can see the reply (a
		// guest that checks the counters after its ping returns finds it there).
		g.bytesFromHost.Add(uint64(len(echo.Data)))
		e.req.Reply(uint16(echo.Seq), echo.Data)
	}
}

// prohibitLoop answers denied echo requests with an ICMP administratively prohibited
// error, off the NIC's delivery goroutine.
func (g *Gateway) prohibitLoop() {
	defer g.wg.Done()
	for {
		select {
		case <-g.ctx.Done():
			return
		case r := <-g.prohibit:
			r.Prohibit()
		}
	}
}

// unsupported reports a ping socket the host does not allow this process
// (ping_group_range) or does not have.
func unsupported(err error) bool {
	var se *os.SyscallError
	if errors.As(err, &se) {
		err = se.Err
	}
	return errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) ||
		errors.Is(err, syscall.EPROTONOSUPPORT) || errors.Is(err, syscall.EAFNOSUPPORT)
}
