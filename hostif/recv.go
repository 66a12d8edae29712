package hostif

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/vnethdr"
)

// Reading without a ring (the default; Options.Ring unset): recvmmsg straight into the caller's buffers,
// one copy per frame and a wake-up per packet instead of per ring block. PACKET_AUXDATA
// brings each frame's VLAN tag (which the kernel always takes out of received frames)
// and receive status.

var auxSpace = unix.CmsgSpace(int(unsafe.Sizeof(unix.TpacketAuxdata{})))

// recvState is the reader's scratch for recvmmsg (one reader at a time).
type recvState struct {
	msgs  []unix.Mmsghdr
	iovs  []unix.Iovec
	hdrs  []byte
	names []unix.RawSockaddrLinklayer
	ctrl  []byte
}

func newRecvState() *recvState {
	return &recvState{
		msgs: make([]unix.Mmsghdr, txBatch), iovs: make([]unix.Iovec, 2*txBatch),
		hdrs: make([]byte, vnetHdrLen*txBatch), names: make([]unix.RawSockaddrLinklayer, txBatch),
		ctrl: make([]byte, auxSpace*txBatch),
	}
}

// recvmmsg receives up to len(bufs) packets, each into its vnet header slot and
// bufs[i], returning how many arrived (0 when none is waiting).
func (s *recvState) recvmmsg(fd int, bufs [][]byte) (int, unix.Errno) {
	k := min(len(bufs), txBatch)
	for i := range k {
		iov := s.iovs[2*i : 2*i+2]
		iov[0].Base = &s.hdrs[i*vnetHdrLen]
		iov[0].SetLen(vnetHdrLen)
		iov[1].Base = &bufs[i][0]
		iov[1].SetLen(len(bufs[i]))
		m := &s.msgs[i].Hdr
		*m = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&s.names[i])), Namelen: unix.SizeofSockaddrLinklayer,
			Iov: &iov[0], Control: &s.ctrl[i*auxSpace]}
		m.SetIovlen(2)
		m.SetControllen(auxSpace)
	}
	defer clear(s.iovs[:2*k]) // keep no reference to the caller's buffers
	for {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&s.msgs[0])), uintptr(k),
			unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			return int(r), 0
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, 0
		}
		return 0, e
	}
}

// packet describes message i of the last recvmmsg as an rxPacket over buf.
func (s *recvState) packet(i int, buf []byte, p *rxPacket) {
	m := &s.msgs[i]
	n := max(int(m.Len)-vnetHdrLen, 0)
	*p = rxPacket{vnet: s.hdrs[i*vnetHdrLen : (i+1)*vnetHdrLen], pkttype: s.names[i].Pkttype}
	p.data = buf[:min(n, len(buf))]
	p.wireLen = len(p.data)
	if m.Hdr.Flags&unix.MSG_TRUNC != 0 {
		p.wireLen = len(buf) + 1
	}
	ctrl := s.ctrl[i*auxSpace : i*auxSpace+int(m.Hdr.Controllen)]
	if len(ctrl) >= unix.CmsgSpace(0) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
		if h.Level == unix.SOL_PACKET && h.Type == unix.PACKET_AUXDATA && int(h.Len) >= unix.CmsgLen(int(unsafe.Sizeof(unix.TpacketAuxdata{}))) {
			aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&ctrl[unix.CmsgLen(0)]))
			p.status = aux.Status
			p.vlanTCI, p.vlanTPID = aux.Vlan_tci, aux.Vlan_tpid
			if int(aux.Len) > p.wireLen {
				p.wireLen = int(aux.Len)
			}
		}
	}
}

// recvFill reads ready packets with recvmmsg into frames.
func (p *Port) recvFill(fd int, frames []frame.Frame) (int, unix.Errno) {
	if !p.offload {
		return p.recvScratch(fd, frames)
	}
	k := min(len(frames), txBatch)
	bufs := p.rbufs[:k]
	for i := range k {
		bufs[i] = frames[i].Buf
	}
	defer clear(bufs)
	r, e := p.recv.recvmmsg(fd, bufs)
	n := 0
	var pk rxPacket
	for i := range r {
		p.recv.packet(i, frames[i].Buf, &pk)
		if ok := p.takeInPlace(&pk, &frames[i]); !ok {
			continue
		}
		if n != i { // an earlier frame was dropped: close the gap
			if len(frames[n].Buf) < frames[i].N {
				p.Counters.DropRx(frame.DropBufferShort, 1)
				continue
			}
			copy(frames[n].Buf, frames[i].Bytes())
			frames[n].N, frames[n].Meta = frames[i].N, frames[i].Meta
		}
		n++
	}
	return n, e
}

// takeInPlace finishes a frame received straight into f.Buf.
func (p *Port) takeInPlace(pk *rxPacket, f *frame.Frame) bool {
	if pk.pkttype == unix.PACKET_OUTGOING {
		p.Outgoing.Add(1)
		return false
	}
	if len(pk.data) < pk.wireLen || len(pk.data) < frame.EthHeaderLen {
		p.Counters.DropRx(frame.DropTruncated, 1)
		return false
	}
	var m frame.Meta
	if !vnethdr.Decode(pk.vnet, &m) {
		p.Counters.DropRx(frame.DropBadHeader, 1)
		return false
	}
	size := len(pk.data)
	if pk.status&unix.TP_STATUS_VLAN_VALID != 0 {
		if size+frame.VLANTagLen > len(f.Buf) {
			p.Counters.DropRx(frame.DropBufferShort, 1)
			return false
		}
		copy(f.Buf[16:size+frame.VLANTagLen], f.Buf[12:size])
		tpid := uint16(unix.ETH_P_8021Q)
		if pk.status&unix.TP_STATUS_VLAN_TPID_VALID != 0 && pk.vlanTPID != 0 {
			tpid = pk.vlanTPID
		}
		f.Buf[12], f.Buf[13] = byte(tpid>>8), byte(tpid)
		f.Buf[14], f.Buf[15] = byte(pk.vlanTCI>>8), byte(pk.vlanTCI)
		size += frame.VLANTagLen
		m.Shift(frame.VLANTagLen)
	}
	f.N, f.Meta = size, m
	p.countRx(size)
	return true
}

// recvScratch (Offload false) receives one packet at a time into the port's superframe
// buffer, then copies or segments it into frames.
func (p *Port) recvScratch(fd int, frames []frame.Frame) (int, unix.Errno) {
	n := p.drainPending(frames)
	bufs := [][]byte{p.rscratch}
	var pk rxPacket
	for n < len(frames) {
		r, e := p.recv.recvmmsg(fd, bufs)
		if r == 0 {
			return n, e
		}
		p.recv.packet(0, p.rscratch, &pk)
		n += p.take(&pk, frames[n:])
	}
	return n, 0
}
