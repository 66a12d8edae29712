package frame

// Packet is a frame held by reference: its bytes stay in the storage of the in-process
// stack that sent it (a namespace NIC's gVisor packet) and cross a switch or a router
// without being copied. Only ports that advertise CapPacket are given such frames; the
// switch turns one into plain bytes (Materialize) before it goes anywhere else, is
// captured, flooded or has its VLAN tag changed.
//
// A frame by reference is its head, the first min(N, PacketHead) bytes, held in its
// buffer (Frame.Buf, Buf.B[Off:]), followed by the packet's bytes from PacketHead on.
// The head in the buffer is the authoritative one: whoever holds the frame may rewrite
// it there (a router rewrites MAC addresses and the TTL) without touching the packet,
// which other holders share.
//
// A Packet is one reference: whoever holds it calls Release exactly once.
type Packet interface {
	// CopyTo copies the packet's bytes, as its sender made them, into b, which must
	// hold them, and returns their length. It does not give up the reference.
	CopyTo(b []byte) int
	// Clone returns a new reference to the same packet.
	Clone() Packet
	// Release gives up the reference.
	Release()
}

// SlicedPacket is a Packet whose bytes a port can read in place: a TAP writes them to
// the kernel with one gather write instead of copying them into a buffer first.
type SlicedPacket interface {
	Packet
	// Slices appends the packet's bytes to dst, in order, as slices of its own storage.
	// They stay valid until Release and must not be written to.
	Slices(dst [][]byte) [][]byte
}

// PacketReader is a Port that can return frames by reference (see Packet).
type PacketReader interface {
	Port
	// ReadPackets is ReadFrames, except that a frame may come back with Pkt set. Such a
	// frame's N is its full length, but only Buf[:min(N, PacketHead)] holds its bytes
	// (its head): enough for the Ethernet and 802.1Q headers a switch reads and the IP
	// header a router rewrites. The caller owns each returned Pkt and releases it
	// (Frame.Materialize or Pkt.Release).
	ReadPackets(frames []Frame) (n int, err error)
}

// PacketHead is how many of a by-reference frame's first bytes live in its buffer: the
// Ethernet header, an 802.1Q tag and an IPv6 or option-less IPv4 header with room to
// spare.
const PacketHead = 64

// headLen is the length of the head of a frame by reference of n bytes.
func headLen(n int) int { return min(n, PacketHead) }

// copyWhole copies the frame by reference p with head head into dst, which must hold
// n bytes and may itself begin with head (then it is kept), and returns n.
func copyWhole(dst []byte, p Packet, head []byte) int {
	var saved [PacketHead]byte
	h := copy(saved[:], head)
	n := p.CopyTo(dst)
	copy(dst, saved[:h])
	return n
}

// Fill copies a frame by reference's bytes into f.Buf behind its head, keeping the
// reference: afterwards f.Bytes() is the whole frame. When f.Buf cannot hold f.N bytes
// (a frame read from a port whose buffers hold only heads, Info.ByRefOnly), Fill
// points f.Buf at a new buffer first: slices of the old f.Buf are then stale. It does
// nothing to a plain frame.
func (f *Frame) Fill() {
	if f.Pkt == nil {
		return
	}
	if len(f.Buf) < f.N { // off the hot path: errors, ICMP, odd frames
		b := make([]byte, f.N)
		copy(b, f.Buf[:headLen(f.N)])
		f.Buf = b
	}
	f.N = copyWhole(f.Buf, f.Pkt, f.Buf[:headLen(f.N)])
}

// Materialize turns a frame by reference into a plain one: it fills f.Buf (Fill) and
// releases f.Pkt. It does nothing to a plain frame.
func (f *Frame) Materialize() {
	if f.Pkt == nil {
		return
	}
	f.Fill()
	f.Pkt.Release()
	f.Pkt = nil
}

// Materialize turns a buffer holding a frame by reference into one holding its bytes,
// at B[Off:], and releases the reference. When B[Off:] cannot hold N bytes (a buffer
// sized for heads only, Info.ByRefOnly), b first takes the storage of a pooled buffer
// that can: slices of the old B are then stale.
func (b *Buf) Materialize() {
	if b.Pkt == nil {
		return
	}
	b.Grow()
	dst := b.B[b.Off:]
	b.N = copyWhole(dst, b.Pkt, dst[:headLen(b.N)])
	b.Pkt.Release()
	b.Pkt = nil
}

// Grow makes sure B[Off:] can hold the N bytes of the frame b holds: a buffer sized for
// a head only (Info.ByRefOnly) takes the storage of a pooled buffer that can, head
// copied along. Slices of the old B are then stale.
func (b *Buf) Grow() {
	if len(b.B)-b.Off >= b.N {
		return
	}
	big := GetBuf(b.Off + b.N)
	copy(big.B[b.Off:], b.B[b.Off:b.Off+headLen(b.N)])
	b.B, big.B = big.B, b.B
	b.class, big.class = big.class, b.class
	big.Release()
}

// Slices appends f's bytes to dst as slices: f.Bytes() for a plain frame; for a frame
// by reference, its head then the packet's own storage behind it when the packet is a
// SlicedPacket, else f.Buf after filling it (Fill). It takes no reference: the slices
// are valid while f's are.
func (f *Frame) Slices(dst [][]byte) [][]byte {
	if f.Pkt == nil {
		return append(dst, f.Bytes())
	}
	sp, ok := f.Pkt.(SlicedPacket)
	if !ok {
		f.Fill()
		return append(dst, f.Bytes())
	}
	h := headLen(f.N)
	dst = append(dst, f.Buf[:h])
	start := len(dst)
	dst = sp.Slices(dst)
	// Drop the packet's own first h bytes: the head above replaces them.
	skip, k := h, start
	for ; k < len(dst) && skip >= len(dst[k]); k++ {
		skip -= len(dst[k])
	}
	if k < len(dst) {
		dst[k] = dst[k][skip:]
	}
	n := copy(dst[start:], dst[k:])
	clear(dst[start+n:])
	return dst[:start+n]
}

// SlicesAtMost is Slices, except that a frame in more than max pieces (a TCP stream of
// tiny writes) is filled into f.Buf and given as one: a gather write keeps far below
// the kernel's 1,024 iovecs.
func (f *Frame) SlicesAtMost(dst [][]byte, max int) [][]byte {
	start := len(dst)
	dst = f.Slices(dst)
	if len(dst)-start > max {
		clear(dst[start:])
		f.Fill()
		dst = append(dst[:start], f.Bytes())
	}
	return dst
}
