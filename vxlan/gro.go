package vxlan

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vnetd/vnetd/frame"
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
func (p *Port) recvGRO(fd int, frames []frame.Frame) (int, unix.Errno) {
	g := p.gro
	if g == nil {
		g = newGROState()
		p.gro = g
	}
	maxFrame := p.info.MaxFrame
	for {
		if g.i < g.n {
			if n := p.split(g, frames, maxFrame); n > 0 {
				return n, 0
			}
			continue
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
		switch e {
		case 0:
		case unix.EINTR:
			continue
		default:
			return 0, e
		}
		if r == 0 {
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

// split hands out the segments of the received messages from g.i on into frames,
// checking and learning each as a datagram of its own, and returns how many it kept.
func (p *Port) split(g *groState, frames []frame.Frame, maxFrame int) int {
	now := p.opts.Now().UnixNano()
	n, dropped := 0, 0
	var rxBytes uint64
	for g.i < g.n && n < len(frames) {
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
		if g.off += seg; g.off >= l {
			g.i, g.off = g.i+1, 0
		}
		f := &frames[n]
		if !p.check(d, seg, false, min(maxFrame, len(f.Buf))) {
			dropped++
			continue
		}
		inner := d[HeaderLen:]
		if !p.learn(srcAddr(p.v6, &g.names[i]), inner, now) {
			dropped++
			continue
		}
		f.N = copy(f.Buf, inner)
		f.Meta = frame.Meta{}
		rxBytes += uint64(f.N)
		n++
	}
	if dropped > 0 {
		p.Counters.RxDropped.Add(uint64(dropped))
	}
	if n > 0 {
		p.Counters.RxFrames.Add(uint64(n))
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
