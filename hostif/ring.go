package hostif

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Layout of a TPACKET_V3 receive ring (linux/if_packet.h). The ring is blocks of
// blockSize bytes; each starts with a struct tpacket_block_desc whose block_status the
// kernel sets to TP_STATUS_USER when it hands the block over (full, or retired by the
// block timer) and that user space sets back to TP_STATUS_KERNEL to give it back. Inside a
// block, packets follow each other: a struct tpacket3_hdr, a struct sockaddr_ll, then
// (with PACKET_VNET_HDR) a struct virtio_net_hdr right in front of the frame at tp_mac.
const (
	blkStatusOff   = 8  // tpacket_block_desc.hdr.bh1.block_status
	blkNumPktsOff  = 12 // .num_pkts
	blkFirstPktOff = 16 // .offset_to_first_pkt
	blkHdrLen      = 48 // the block descriptor, 8-byte aligned

	pktNextOff     = 0  // tpacket3_hdr.tp_next_offset
	pktSnaplenOff  = 12 // .tp_snaplen
	pktLenOff      = 16 // .tp_len
	pktStatusOff   = 20 // .tp_status
	pktMacOff      = 24 // .tp_mac (u16)
	pktVlanTCIOff  = 32 // .hv1.tp_vlan_tci
	pktVlanTPIDOff = 36 // .hv1.tp_vlan_tpid (u16)
	pktHdrLen      = 48 // TPACKET_ALIGN(sizeof(struct tpacket3_hdr))
	sllPkttypeOff  = pktHdrLen + 10
)

// ne is the byte order of the ring's headers: the host's.
var ne = binary.NativeEndian

// rxPacket is one packet in the ring. data and vnet alias the ring and stay valid only
// until the ring's next call.
type rxPacket struct {
	status   uint32
	data     []byte // the frame, from its Ethernet header (tp_snaplen bytes)
	wireLen  int    // tp_len: the frame's length before any truncation
	vnet     []byte // the virtio-net header in front of data (vnet rings only)
	vlanTCI  uint16
	vlanTPID uint16
	pkttype  uint8
}

// ringResult is what ring.next found.
type ringResult int

const (
	ringEmpty   ringResult = iota // no block is ready
	ringPacket                    // a packet
	ringCorrupt                   // a block's contents made no sense; the block was given back
)

// ring reads a mapped TPACKET_V3 receive ring. One reader at a time.
type ring struct {
	mem       []byte
	blockSize int
	blocks    int
	vnet      bool

	cur    int  // the block being read, or the next to become ready
	held   bool // cur is ours (TP_STATUS_USER) and partly read
	num    int  // packets in cur
	taken  int  // packets of cur already returned
	off    int  // offset in cur of the next packet
	losing bool // the kernel flagged drops (TP_STATUS_LOSING) on a block since the last clear
}

func (r *ring) block(i int) []byte { return r.mem[i*r.blockSize : (i+1)*r.blockSize] }

func blockStatus(b []byte) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&b[blkStatusOff]))
}

// next returns the next packet in p.
func (r *ring) next(p *rxPacket) ringResult {
	for {
		b := r.block(r.cur)
		if !r.held {
			st := blockStatus(b).Load() // acquire: the block's contents are visible
			if st&unix.TP_STATUS_USER == 0 {
				return ringEmpty
			}
			if st&unix.TP_STATUS_LOSING != 0 {
				r.losing = true
			}
			r.held = true
			r.num = int(ne.Uint32(b[blkNumPktsOff:]))
			r.taken = 0
			r.off = int(ne.Uint32(b[blkFirstPktOff:]))
		}
		if r.taken >= r.num {
			r.giveBack()
			continue
		}
		if !r.parse(b, p) {
			r.giveBack()
			return ringCorrupt
		}
		r.taken++
		return ringPacket
	}
}

// parse reads the packet at r.off of block b into p and advances r.off.
func (r *ring) parse(b []byte, p *rxPacket) bool {
	off := r.off
	if off < blkHdrLen || off > len(b)-pktHdrLen-int(unsafe.Sizeof(unix.RawSockaddrLinklayer{})) {
		return false
	}
	h := b[off:]
	snap := int(ne.Uint32(h[pktSnaplenOff:]))
	mac := int(ne.Uint16(h[pktMacOff:]))
	if mac < pktHdrLen || mac+snap > len(h) {
		return false
	}
	p.status = ne.Uint32(h[pktStatusOff:])
	p.wireLen = int(ne.Uint32(h[pktLenOff:]))
	p.data = h[mac : mac+snap : mac+snap]
	p.vnet = nil
	if r.vnet {
		if mac < pktHdrLen+vnetHdrLen {
			return false
		}
		p.vnet = h[mac-vnetHdrLen : mac]
	}
	p.vlanTCI = uint16(ne.Uint32(h[pktVlanTCIOff:]))
	p.vlanTPID = ne.Uint16(h[pktVlanTPIDOff:])
	p.pkttype = h[sllPkttypeOff]
	next := int(ne.Uint32(h[pktNextOff:]))
	r.off = off + next
	if next == 0 && r.taken+1 < r.num { // only the last packet has no successor
		return false
	}
	return true
}

// giveBack returns the current block to the kernel and moves to the next one.
func (r *ring) giveBack() {
	blockStatus(r.block(r.cur)).Store(unix.TP_STATUS_KERNEL) // release: we are done reading
	r.held = false
	r.cur++
	if r.cur == r.blocks {
		r.cur = 0
	}
}

// settle gives back the current block if every packet in it was taken, so the kernel
// has it while the reader is away.
func (r *ring) settle() {
	if r.held && r.taken >= r.num {
		r.giveBack()
	}
}
