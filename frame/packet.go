package frame

// Packet is a frame held by reference: its bytes stay in the storage of the in-process
// stack that sent it (a namespace NIC's gVisor packet) and cross a switch without being
// copied. Only ports that advertise CapPacket are given such frames; the switch turns
// one into plain bytes (Materialize) before it goes anywhere else, is captured, flooded
// or has its VLAN tag changed.
//
// A Packet is one reference: whoever holds it calls Release exactly once.
type Packet interface {
	// CopyTo copies the whole frame into b, which must hold it, and returns its length.
	// It does not give up the reference.
	CopyTo(b []byte) int
	// Release gives up the reference.
	Release()
}

// SlicedPacket is a Packet whose bytes a port can read in place: a TAP writes them to
// the kernel with one gather write instead of copying them into a buffer first.
type SlicedPacket interface {
	Packet
	// Slices appends the frame's bytes to dst, in order, as slices of the packet's own
	// storage. They stay valid until Release and must not be written to.
	Slices(dst [][]byte) [][]byte
}

// Slices appends f's bytes to dst as slices: f.Bytes() for a plain frame; for a frame
// by reference, the packet's own storage when it is a SlicedPacket, else f.Buf after
// copying the frame into it (a frame by reference always comes with room for all of
// it). It takes no reference: the slices are valid while f's are.
func (f *Frame) Slices(dst [][]byte) [][]byte {
	if f.Pkt == nil {
		return append(dst, f.Bytes())
	}
	if sp, ok := f.Pkt.(SlicedPacket); ok {
		return sp.Slices(dst)
	}
	return append(dst, f.Buf[:f.Pkt.CopyTo(f.Buf)])
}

// PacketReader is a Port that can return frames by reference (see Packet).
type PacketReader interface {
	Port
	// ReadPackets is ReadFrames, except that a frame may come back with Pkt set. Such a
	// frame's N is its full length, but only Buf[:min(N, PacketHead)] holds its bytes:
	// enough for the Ethernet and 802.1Q headers a switch reads. The caller owns each
	// returned Pkt and releases it (Frame.Materialize or Pkt.Release).
	ReadPackets(frames []Frame) (n int, err error)
}

// PacketHead is how many of a by-reference frame's first bytes ReadPackets copies into
// Buf: the Ethernet header, an 802.1Q tag and the start of the L3 header.
const PacketHead = 64

// Materialize turns a by-reference frame into a plain one: it copies the frame's bytes
// into f.Buf and releases f.Pkt. f.Buf must hold f.N bytes. It does nothing to a plain
// frame.
func (f *Frame) Materialize() {
	if f.Pkt == nil {
		return
	}
	f.N = f.Pkt.CopyTo(f.Buf)
	f.Pkt.Release()
	f.Pkt = nil
}

// Materialize turns a buffer holding a by-reference frame into one holding its bytes,
// at B[Off:], and releases the reference. B[Off:] must hold N bytes, as a buffer sized
// for the ingress port's MaxFrame does.
func (b *Buf) Materialize() {
	if b.Pkt == nil {
		return
	}
	b.N = b.Pkt.CopyTo(b.B[b.Off:])
	b.Pkt.Release()
	b.Pkt = nil
}
