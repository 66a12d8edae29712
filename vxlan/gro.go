package vxlan

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/offload"
)

// Receive coalescing (UDP GRO). With the UDP_GRO socket option the kernel hands a
// socket several same-size datagrams of one flow as one buffer, with a UDP_GRO control
// message giving the segment size, where its GRO merged them on the way in (a NIC, or
// a veth with GRO on). A TCP stream through a tunnel is one outer UDP flow of
// MTU-sized datagrams, so one receive brings up to 64 of them and the kernel passes
// one packet, not 64, through IP and UDP. The port splits them again, copying each
// inner frame into the caller's buffer, and checks each as it would a datagram of its
// own. A buffer must hold the largest coalesced datagram (64 KiB), so the reader
// receives into groMsgs slabs of its own (1 MiB per port, made on the first read)
// instead of straight into the caller's frames; segments the caller has no room for
// wait for its next ReadFrames.

const (
	groMsgs   = 16      // datagrams per recvmmsg with GRO
	groBufLen = 1 << 16 // the largest UDP payload
	groOOBLen = 64      // room for the UDP_GRO control message
	groRecvs  = 8       // receives per ReadFrames while coalescing
)

// groState is the GRO reader's buffers and what of the last recvmmsg is not yet
// handed out (under rdmu).
type groState struct {
	bufs  []byte // groMsgs slabs of groBufLen
	oob   []byte
	msgs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	lens  [groMsgs]int // payload length of each received message
	segs  [groMsgs]int // its segment size (its length when not coalesced)
	n     int          // messages received by the last recvmmsg
	i     int          // the next message to split
	off   int          // the next segment's offset in message i
}

func newGROState() *groState {
	return &groState{
		bufs: make([]byte, groMsgs*groBufLen), oob: make([]byte, groMsgs*groOOBLen),
		msgs: make([]unix.Mmsghdr, groMsgs), iovs: make([]unix.Iovec, groMsgs),
		names: make([]unix.RawSockaddrInet6, groMsgs),
	}
}

// recvGRO is recv for a socket with UDP_GRO: it hands out segments left from the last
// receive, or receives more, until at least one frame is filled or none is waiting.
// When it coalesces and the last receive filled every slot (more is likely waiting),
// it receives again before it returns, up to groRecvs receives, so a superframe can
// grow across receives; it never waits for more.
func (p *Port) recvGRO(fd int, frames []frame.Frame) (int, unix.Errno) {
	g := p.gro
	if g == nil {
		g = newGROState()
		p.gro = g
	}
	n, recvs := 0, 0
	for {
		if g.i < g.n {
			n = p.split(g, frames, n)
			if n == len(frames) || n > 0 && (!p.merge || g.n < groMsgs || recvs >= groRecvs) {
				return n, 0
			}
			if g.i < g.n {
				continue
			}
		}
		for i := range groMsgs {
			g.iovs[i].Base = &g.bufs[i*groBufLen]
			g.iovs[i].SetLen(groBufLen)
			m := &g.msgs[i].Hdr
			*m = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&g.names[i])), Namelen: unix.SizeofSockaddrInet6, Iov: &g.iovs[i],
				Control: &g.oob[i*groOOBLen]}
			m.SetIovlen(1)
			m.SetControllen(groOOBLen)
		}
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&g.msgs[0])), groMsgs,
			unix.MSG_DONTWAIT, 0, 0)
		recvs++
		switch e {
		case 0:
		case unix.EINTR:
			continue
		default:
			if n > 0 {
				return n, 0 // EAGAIN after a full receive: hand out what there is
			}
			return 0, e
		}
		if r == 0 {
			if n > 0 {
				return n, 0
			}
			return 0, unix.EAGAIN
		}
		g.n, g.i, g.off = int(r), 0, 0
		for i := range g.n {
			m := &g.msgs[i]
			g.lens[i] = int(m.Len)
			g.segs[i] = int(m.Len)
			if m.Hdr.Flags&unix.MSG_TRUNC != 0 {
				g.lens[i] = -1 // cannot happen with 64 KiB buffers; dropped whole if it does
			}
			if s := groSegSize(g.oob[i*groOOBLen : i*groOOBLen+int(m.Hdr.Controllen)]); s > 0 && s < g.segs[i] {
				g.segs[i] = s
				p.stats.rxGRO.Add(1)
			}
		}
	}
}

// split hands out the segments of the received messages from g.i on into frames[n:],
// checking and learning each as a datagram of its own, and returns how many frames
// are filled in all. When the port coalesces, a TCP segment that continues the
// stream of the frame before it is appended to that frame (offload.Coalesce) instead
// of filling one of its own; frames[n-1], filled by an earlier call, can grow too.
// Once every frame is filled the rest waits for the next call.
func (p *Port) split(g *groState, frames []frame.Frame, n int) int {
	now := p.opts.Now().UnixNano()
	dropped, merged, segs := 0, 0, 0
	var rxBytes uint64
	for g.i < g.n {
		i := g.i
		l := g.lens[i]
		if l < 0 {
			p.stats.rxOversize.Add(1)
			dropped++
			g.i, g.off = g.i+1, 0
			continue
		}
		seg := min(g.segs[i], l-g.off)
		d := g.bufs[i*groBufLen+g.off : i*groBufLen+g.off+seg]
		if n == len(frames) {
			break // the rest waits for the next call
		}
		if g.off += seg; g.off >= l {
			g.i, g.off = g.i+1, 0
		}
		if !p.check(d, seg, false, p.inMax) {
			dropped++
			continue
		}
		inner := d[HeaderLen:]
		if !p.learn(srcAddr(p.v6, &g.names[i]), inner, now) {
			dropped++
			continue
		}
		segs++
		rxBytes += uint64(len(inner))
		if p.merge && n > 0 && offload.Coalesce(&frames[n-1], inner) {
			merged++
			continue
		}
		f := &frames[n]
		if len(inner) > len(f.Buf) {
			p.stats.rxOversize.Add(1)
			dropped++
			continue
		}
		f.N = copy(f.Buf, inner)
		f.Meta = frame.Meta{}
		n++
	}
	if dropped > 0 {
		p.Counters.RxDropped.Add(uint64(dropped))
	}
	if merged > 0 {
		p.stats.rxCoalesced.Add(uint64(merged))
	}
	if segs > 0 {
		p.Counters.RxFrames.Add(uint64(segs))
		p.Counters.RxBytes.Add(rxBytes)
	}
	return n
}

// groSegSize returns the segment size of a UDP_GRO control message in oob, or 0.
func groSegSize(oob []byte) int {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && l >= unix.CmsgLen(4) {
			return int(int32(binary.NativeEndian.Uint32(oob[unix.CmsgLen(0):])))
		}
		oob = oob[min(unix.CmsgSpace(l-unix.SizeofCmsghdr), len(oob)):]
	}
	return 0
}
