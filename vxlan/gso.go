package vxlan

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/offload"
)

// Superframes and partial checksums: the port takes TCP superframes and frames with
// a partial checksum (CapTSO4, CapTSO6, CapCsum) and segments or completes them here,
// at the tunnel edge, into frames of the inner MTU. The segments of one superframe
// then go to each remote in as few sendmsg calls as UDP GSO allows (UDP_SEGMENT: the
// kernel cuts one buffer of equal datagrams, each a VXLAN header and a segment), or
// with sendmmsg where the kernel has no UDP GSO.

// maxGSOSegs is the most datagrams one UDP_SEGMENT send may carry (UDP_MAX_SEGMENTS).
const maxGSOSegs = 64

// maxGSOBytes bounds one UDP GSO send's payload (it travels as one IP packet's worth
// through the stack: under 64 KiB with the outer headers).
const maxGSOBytes = 65000

// offloadCaps are the offloads the port completes itself.
const offloadCaps = frame.CapCsum | frame.CapTSO4 | frame.CapTSO6

// sendOffloaded segments f (a superframe or a frame with a partial checksum) and sends
// the segments to each of rs from sending socket s.
func (p *Port) sendOffloaded(s int, f *frame.Frame, rs []*remote) error {
	src := frame.GetBuf(f.N)
	src.CopyFrom(f)
	defer src.Release()
	whole := frame.Frame{Buf: src.B[:src.N], N: src.N, Meta: src.Meta}
	p.segs = p.segs[:0]
	mtu := p.opts.MTU
	_, err := offload.Segment(&whole, mtu, func(b *frame.Buf) bool { p.segs = append(p.segs, b); return true })
	defer func() { frame.ReleaseBufs(p.segs); clear(p.segs); p.segs = p.segs[:0] }()
	if err != nil {
		p.stats.txMalformed.Add(1)
		p.Counters.TxDropped.Add(1)
		return nil
	}
	p.stats.txSegmented.Add(uint64(len(p.segs)))
	for _, r := range rs {
		if err := p.sendSegs(s, r); err != nil {
			return err
		}
	}
	return nil
}

// sendSegs sends p.segs to r: UDP GSO batches of equal-sized segments, the rest (and
// everything, without UDP GSO) with sendmmsg.
func (p *Port) sendSegs(s int, r *remote) error {
	segs := p.segs
	for len(segs) > 0 {
		k := 1
		if !p.noGSO.Load() && len(segs) > 1 {
			size := segs[0].N
			for k < len(segs) && k < maxGSOSegs && (k+1)*(size+HeaderLen) <= maxGSOBytes && segs[k].N <= size {
				k++
				if segs[k-1].N < size { // a shorter segment ends a GSO batch
					break
				}
			}
		}
		if k > 1 {
			if ok, err := p.sendGSO(s, segs[:k], r); err != nil {
				return err
			} else if ok {
				segs = segs[k:]
				continue
			}
		}
		// One by one through sendmmsg.
		p.one = p.one[:0]
		fs := p.oneFrames[:0]
		for _, b := range segs[:k] {
			fs = append(fs, frame.Frame{Buf: b.B[b.Off : b.Off+b.N], N: b.N})
		}
		for i := range fs {
			p.one = append(p.one, txMsg{&fs[i], r})
		}
		err := p.send(s, p.one)
		clear(p.one)
		clear(fs)
		p.oneFrames = fs[:0]
		if err != nil {
			return err
		}
		segs = segs[k:]
	}
	return nil
}

// sendGSO sends segs to r in one sendmsg with UDP_SEGMENT. It reports false, having
// sent nothing, when the kernel has no UDP GSO (the port then stops trying).
func (p *Port) sendGSO(s int, segs []*frame.Buf, r *remote) (bool, error) {
	iov := p.gsoIov[:0]
	for _, b := range segs {
		iov = append(iov, unix.Iovec{Base: &p.hdr[0]}, unix.Iovec{Base: &b.B[b.Off]})
		iov[len(iov)-2].SetLen(HeaderLen)
		iov[len(iov)-1].SetLen(b.N)
	}
	p.gsoIov = iov
	defer clear(iov)
	var ctrl [24]byte // CMSG_SPACE(2)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&ctrl[unix.CmsgLen(0)])) = uint16(segs[0].N + HeaderLen)
	m := unix.Msghdr{Iov: &iov[0], Control: &ctrl[0]}
	m.SetIovlen(len(iov))
	m.SetControllen(unix.CmsgSpace(2))
	if p.v6 {
		m.Name, m.Namelen = (*byte)(unsafe.Pointer(&r.sa6)), unix.SizeofSockaddrInet6
	} else {
		m.Name, m.Namelen = (*byte)(unsafe.Pointer(&r.sa4)), unix.SizeofSockaddrInet4
	}
	var e unix.Errno
	err := p.txRaw[s].Control(func(fd uintptr) {
		for {
			_, _, e = unix.Syscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&m)), unix.MSG_DONTWAIT)
			if e != unix.EINTR {
				return
			}
		}
	})
	if err != nil {
		return false, p.closedErr(err)
	}
	switch e {
	case 0:
		var n uint64
		for _, b := range segs {
			n += uint64(b.N)
		}
		k := uint64(len(segs))
		r.c.TxFrames.Add(k)
		r.c.TxBytes.Add(n)
		p.Counters.TxFrames.Add(k)
		p.Counters.TxBytes.Add(n)
		p.stats.txGSO.Add(1)
		return true, nil
	case unix.EAGAIN, unix.ENOBUFS:
		p.stats.txQueueFull.Add(uint64(len(segs)))
		p.Counters.TxDropped.Add(uint64(len(segs)))
		return true, nil
	case unix.EIO, unix.EINVAL, unix.ENOPROTOOPT, unix.EOPNOTSUPP:
		// No UDP GSO here (or not for this path): fall back, and stop trying.
		if p.noGSO.CompareAndSwap(false, true) {
			p.log.Info("vxlan: no UDP GSO, sending one datagram per segment", "port", p.opts.Name, "error", e)
		}
		return false, nil
	}
	p.stats.txErrors.Add(uint64(len(segs)))
	p.Counters.TxDropped.Add(uint64(len(segs)))
	r.c.TxDropped.Add(uint64(len(segs)))
	return true, nil
}
