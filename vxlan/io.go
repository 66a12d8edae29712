package vxlan

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vnetd/vnetd/frame"
)

// recv receives datagrams into frames until at least one is kept or none is waiting,
// returning how many frames it filled.
func (p *Port) recv(fd int, frames []frame.Frame) (int, unix.Errno) {
	k := min(len(frames), batchLen)
	maxFrame := p.inMax
	for {
		for i := range k {
			iov := p.riovs[2*i : 2*i+2]
			iov[0].Base = &p.rhdrs[i*HeaderLen]
			iov[0].SetLen(HeaderLen)
			// One byte more than the largest frame: a datagram that fills it is oversize.
			b := frames[i].Buf[:min(len(frames[i].Buf), maxFrame+1)]
			iov[1].Base = &b[0]
			iov[1].SetLen(len(b))
			m := &p.rmsgs[i].Hdr
			*m = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&p.rnames[i])), Namelen: unix.SizeofSockaddrInet6, Iov: &iov[0]}
			m.SetIovlen(2)
		}
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&p.rmsgs[0])), uintptr(k),
			unix.MSG_DONTWAIT, 0, 0)
		clear(p.riovs[:2*k]) // keep no reference to the caller's buffers
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
		now := p.opts.Now().UnixNano()
		n := 0
		var rxBytes uint64
		for i := range int(r) {
			m := &p.rmsgs[i]
			if !p.take(i, int(m.Len), m.Hdr.Flags, &frames[i], maxFrame, now) {
				p.Counters.RxDropped.Add(1)
				continue
			}
			if n != i { // an earlier datagram was dropped: close the gap
				if len(frames[n].Buf) < frames[i].N {
					p.Counters.RxDropped.Add(1)
					continue
				}
				frames[n].N = copy(frames[n].Buf, frames[i].Bytes())
			}
			frames[n].Meta = frame.Meta{}
			rxBytes += uint64(frames[n].N)
			n++
		}
		if n > 0 {
			p.Counters.RxFrames.Add(uint64(n))
			p.Counters.RxBytes.Add(rxBytes)
			return n, 0
		}
	}
}

// take checks datagram i of the last recvmmsg, of length l (VXLAN header included),
// its inner frame in f.Buf, learns its source MAC and sets f.N. It counts why it
// drops a datagram.
func (p *Port) take(i, l int, flags int32, f *frame.Frame, maxFrame int, now int64) bool {
	inner := l - HeaderLen
	if !p.check(p.rhdrs[i*HeaderLen:(i+1)*HeaderLen], l, flags&unix.MSG_TRUNC != 0, maxFrame) {
		return false
	}
	if !p.learn(srcAddr(p.v6, &p.rnames[i]), f.Buf[:inner], now) {
		return false
	}
	f.N = inner
	return true
}

// check checks a datagram of length l (VXLAN header included) whose first bytes are
// hdr: a VXLAN header with the port's VNI in front of an inner frame of at most
// maxFrame bytes. trunc: the datagram did not fit the buffer. It counts why it drops.
func (p *Port) check(hdr []byte, l int, trunc bool, maxFrame int) bool {
	inner := l - HeaderLen
	switch vni, err := ParseHeader(hdr[:min(l, HeaderLen)]); {
	case err != nil || inner < frame.EthHeaderLen:
		p.stats.rxMalformed.Add(1)
		return false
	case vni != p.opts.VNI:
		p.stats.rxBadVNI.Add(1)
		return false
	case trunc || inner > maxFrame:
		p.stats.rxOversize.Add(1)
		return false
	}
	return true
}

// learn learns inner frame b's source MAC behind the VTEP src and counts it on that
// remote; it refuses (and counts) a frame from an unknown VTEP when the table of
// learned ones is full, or with a multicast or zero source MAC.
func (p *Port) learn(src netip.Addr, b []byte, now int64) bool {
	r := p.last
	if r == nil || r.addr != src {
		if r = p.remoteFor(src); r == nil {
			p.stats.rxUnknown.Add(1)
			return false
		}
		p.last = r
	}
	var mac frame.MAC
	copy(mac[:], b[6:12])
	if mac.IsMulticast() || mac.IsZero() {
		p.stats.rxMalformed.Add(1)
		return false
	}
	p.fdb.learn(mac, r, now)
	r.c.RxFrames.Add(1)
	r.c.RxBytes.Add(uint64(len(b)))
	return true
}

// srcAddr is the address in a received datagram's source sockaddr.
func srcAddr(v6 bool, sa *unix.RawSockaddrInet6) netip.Addr {
	if v6 {
		return netip.AddrFrom16(sa.Addr)
	}
	return netip.AddrFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(sa)).Addr)
}

// WriteFrames implements frame.Port: each frame goes, behind the port's VXLAN header,
// to the remote its destination MAC was learned behind, or to every static remote
// (broadcast, multicast, unknown unicast). Frames longer than the inner MTU are
// dropped and counted. Sending never waits: what a socket cannot take now is dropped
// and counted.
func (p *Port) WriteFrames(frames []frame.Frame) (int, error) {
	if p.closed.Load() {
		return 0, net.ErrClosed
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	set := p.remotes.Load()
	nsock := len(p.tx)
	for i := range frames {
		f := &frames[i]
		if f.N < frame.EthHeaderLen {
			p.Counters.TxDropped.Add(1)
			continue
		}
		head := f.Buf[:min(f.N, len(f.Buf))]
		limit := p.opts.MTU + frame.EthHeaderLen
		if len(head) >= 14 && head[12] == 0x81 && head[13] == 0x00 {
			limit += frame.VLANTagLen
		}
		offloaded := f.Meta.GSO != frame.GSONone || f.Meta.NeedsCsum
		if (f.N > limit && f.Meta.GSO == frame.GSONone) || (offloaded && !offloadCaps.Accepts(&f.Meta)) {
			p.stats.txOversize.Add(1)
			p.Counters.TxDropped.Add(1)
			continue
		}
		var dst frame.MAC
		copy(dst[:], head[0:6])
		s := 0
		if nsock > 1 {
			s = int(flowHash(head) % uint32(nsock))
		}
		var rs []*remote
		if !dst.IsMulticast() {
			if r := p.fdb.lookup(dst); r != nil {
				p.one1[0] = r
				rs = p.one1[:]
			}
		}
		if rs == nil {
			if len(set.static) == 0 {
				p.stats.txNoRemote.Add(1)
				p.Counters.TxDropped.Add(1)
				continue
			}
			p.stats.txFlooded.Add(1)
			rs = set.static
		}
		if offloaded {
			// In order: what is queued for this socket goes first.
			if err := p.flush(s); err != nil {
				return i, err
			}
			if err := p.sendOffloaded(s, f, rs); err != nil {
				return i, err
			}
			continue
		}
		for _, r := range rs {
			p.wq[s] = append(p.wq[s], txMsg{f, r})
		}
	}
	p.one1[0] = nil
	var err error
	for s := range nsock {
		if e := p.flush(s); e != nil && err == nil {
			err = e
		}
	}
	return len(frames), err
}

// flush sends what is queued for sending socket s.
func (p *Port) flush(s int) error {
	var err error
	q := p.wq[s]
	for len(q) > 0 && err == nil {
		k := min(len(q), batchLen)
		err = p.send(s, q[:k])
		q = q[k:]
	}
	clear(p.wq[s])
	p.wq[s] = p.wq[s][:0]
	return err
}

// send writes msgs with one sendmmsg (or a few, when the kernel takes part of them)
// on sending socket s.
func (p *Port) send(s int, msgs []txMsg) error {
	p.batch.Reset()
	for i := range msgs {
		p.batch.Add(p.hdr[:], msgs[i].f)
	}
	p.batch.Finish()
	defer p.batch.Release()
	for i := range msgs {
		iov := p.batch.Iov(i)
		m := &p.wmsgs[i].Hdr
		*m = unix.Msghdr{Iov: &iov[0]}
		m.SetIovlen(len(iov))
		r := msgs[i].r
		if p.v6 {
			m.Name, m.Namelen = (*byte)(unsafe.Pointer(&r.sa6)), unix.SizeofSockaddrInet6
		} else {
			m.Name, m.Namelen = (*byte)(unsafe.Pointer(&r.sa4)), unix.SizeofSockaddrInet4
		}
	}
	defer clear(p.wmsgs[:len(msgs)])
	done := 0
	err := p.txRaw[s].Control(func(fd uintptr) {
		for done < len(msgs) {
			r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&p.wmsgs[done])), uintptr(len(msgs)-done),
				unix.MSG_DONTWAIT, 0, 0)
			switch e {
			case 0:
				for i := done; i < done+int(r); i++ {
					n := uint64(msgs[i].f.N)
					msgs[i].r.c.TxFrames.Add(1)
					msgs[i].r.c.TxBytes.Add(n)
					p.Counters.TxFrames.Add(1)
					p.Counters.TxBytes.Add(n)
				}
				done += int(r)
				continue
			case unix.EINTR:
				continue
			case unix.EAGAIN, unix.ENOBUFS:
				// The socket buffer is full: drop the rest of the batch.
				p.stats.txQueueFull.Add(uint64(len(msgs) - done))
				p.Counters.TxDropped.Add(uint64(len(msgs) - done))
				done = len(msgs)
				continue
			}
			// This message failed (EMSGSIZE past the underlay MTU, no route, a
			// refused destination): count it and go on with the next.
			p.stats.txErrors.Add(1)
			p.Counters.TxDropped.Add(1)
			msgs[done].r.c.TxDropped.Add(1)
			done++
		}
	})
	if err != nil {
		return p.closedErr(err)
	}
	return nil
}

// closedErr turns a socket error after Close into net.ErrClosed.
func (p *Port) closedErr(err error) error {
	if p.closed.Load() || errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed) {
		return net.ErrClosed
	}
	return err
}

// flowHash hashes the inner frame's flow, as the kernel's skb_get_hash picks a vxlan
// source port: IP addresses, protocol and the first four L4 bytes (the ports) of an
// IPv4 or IPv6 packet, else the Ethernet addresses and type. FNV-1a; head holds at
// least the frame's first frame.PacketHead bytes.
func flowHash(head []byte) uint32 {
	h := uint32(2166136261)
	mix := func(b []byte) {
		for _, c := range b {
			h ^= uint32(c)
			h *= 16777619
		}
	}
	l3 := frame.EthHeaderLen
	et := uint16(head[12])<<8 | uint16(head[13])
	if et == 0x8100 && len(head) >= 18 {
		et = uint16(head[16])<<8 | uint16(head[17])
		l3 += frame.VLANTagLen
	}
	switch {
	case et == 0x0800 && len(head) >= l3+20:
		ihl := int(head[l3]&0x0f) * 4
		mix(head[l3+12 : l3+20])
		mix(head[l3+9 : l3+10])
		if l4 := l3 + ihl; ihl >= 20 && len(head) >= l4+4 && head[l3+6]&0x1f == 0 && head[l3+7] == 0 {
			mix(head[l4 : l4+4])
		}
	case et == 0x86dd && len(head) >= l3+40:
		mix(head[l3+8 : l3+40])
		mix(head[l3+6 : l3+7])
		if l4 := l3 + 40; len(head) >= l4+4 {
			mix(head[l4 : l4+4])
		}
	default:
		mix(head[0:12])
		mix(head[12:14])
	}
	return h
}
