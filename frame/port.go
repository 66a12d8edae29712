package frame

import "errors"

// Port is anything that carries Ethernet frames: a switch port's far side, a namespace
// NIC, a host TAP, a router interface, one end of a pass-through pair.
//
// Contract:
//
//   - ReadFrames blocks until at least one frame is available, then fills frames[0:n]
//     and returns n >= 1. For each filled frame it copies the frame into frames[i].Buf
//     (caller-owned; len(frames[i].Buf) must be at least Info().MaxFrame, otherwise the
//     frame is dropped and counted by the port), sets frames[i].N to its length and
//     frames[i].Meta to its offload metadata. The port never keeps a reference to a
//     caller's buffer after returning. Once the port is closed, ReadFrames returns
//     (0, net.ErrClosed); readers treat that as a clean exit.
//   - WriteFrames sends frames[i].Bytes() with frames[i].Meta for every i, in order. It
//     never blocks for long: a port that cannot take a frame now (queue full, peer down)
//     drops it and counts it as tx_dropped. It returns the number of frames accepted and
//     a non-nil error only when the port is closed (net.ErrClosed) or broken. The port
//     does not keep the caller's buffers after returning. A frame whose Meta asks for
//     an offload the port does not advertise in Info().Caps is the caller's bug: callers
//     segment or complete checksums first (see package offload).
//   - Close is idempotent and safe to call concurrently with ReadFrames and WriteFrames,
//     which then return net.ErrClosed.
//   - Frames by reference (Frame.Pkt) exist only between a PacketReader's ReadPackets
//     and the WriteFrames of a port advertising CapPacket. Such a port does not keep
//     the reference either: it takes what it needs (a reference of its own) before
//     returning.
//   - ReadFrames may be called by one goroutine at a time; WriteFrames may be called
//     concurrently with ReadFrames, and by one goroutine at a time.
type Port interface {
	ReadFrames(frames []Frame) (n int, err error)
	WriteFrames(frames []Frame) (n int, err error)
	Info() Info
	Close() error
}

// Info describes a port to whoever attaches it.
type Info struct {
	// Name is the port's name on its switch, e.g. "alpha.eth0" or "tap:vnet0".
	Name string
	// MTU is the largest L3 payload of a plain (non-GSO) frame.
	MTU int
	// MaxFrame is the largest frame ReadFrames can return, headers included; read
	// buffers must be at least this long.
	MaxFrame int
	// Caps lists the offloads WriteFrames accepts.
	Caps Caps
	// ByRefOnly: the port is a PacketReader whose ReadPackets returns every frame by
	// reference, so its read buffers need hold only PacketHead bytes (a namespace NIC:
	// a switch then keeps small buffers for it instead of MaxFrame-sized ones).
	ByRefOnly bool
}

// Caps is a set of offloads a port accepts on write.
type Caps uint8

const (
	// CapCsum: frames may carry NeedsCsum (a partial checksum to be completed later).
	CapCsum Caps = 1 << iota
	// CapTSO4: TCP/IPv4 superframes (GSOTCPv4).
	CapTSO4
	// CapTSO6: TCP/IPv6 superframes (GSOTCPv6).
	CapTSO6
	// CapUSO: UDP segmentation superframes (GSOUDPL4).
	CapUSO
	// CapPacket: frames may come by reference (Frame.Pkt set, see Packet). Not an
	// offload: Accepts ignores it, and CapsAll does not include it.
	CapPacket
	// CapDirect: WriteFrames only hands frames to a queue of the port's own (it never
	// blocks) and is safe for concurrent use, so a switch's port readers call it
	// themselves, for frames they read by reference, instead of going through the
	// port's output queue and writer goroutine. It also takes a frame by reference
	// whose buffer holds only its head (every other port is given room for all of
	// it). Not an offload either.
	CapDirect
	// CapInline: WriteFrames never blocks (the kernel takes or drops each frame at
	// once, as a TAP does) and is safe for concurrent use, so a switch's port readers
	// write every frame to the port themselves, plain or by reference, run to
	// completion as Open vSwitch's userspace datapath does. The write's cost is the
	// kernel's either way; handing it to a writer goroutine only adds a hand-off and
	// its wake-ups (and the frame's bytes change caches). Not an offload either.
	CapInline
)

// CapsAll is every offload this package knows.
const CapsAll = CapCsum | CapTSO4 | CapTSO6 | CapUSO

// Accepts reports whether a port with caps c can take a frame with metadata m as is.
func (c Caps) Accepts(m *Meta) bool {
	if m.NeedsCsum && c&CapCsum == 0 {
		return false
	}
	switch m.GSO {
	case GSONone:
		return true
	case GSOTCPv4:
		return c&CapTSO4 != 0
	case GSOTCPv6:
		return c&CapTSO6 != 0
	case GSOUDPL4:
		return c&CapUSO != 0
	}
	return false
}

// Frame is one Ethernet frame in a caller-owned buffer.
type Frame struct {
	// Buf is the caller's storage. On read the port fills Buf[:N].
	Buf []byte
	// N is the frame's length in Buf.
	N int
	// Meta is the frame's offload metadata.
	Meta Meta
	// Pkt, when not nil, holds the frame by reference and Buf only its first bytes (see
	// Packet and PacketReader). Only ReadPackets returns such frames, and only ports
	// advertising CapPacket are given them; everywhere else Pkt is nil.
	Pkt Packet
}

// Bytes returns the frame's bytes, Buf[:N].
func (f *Frame) Bytes() []byte { return f.Buf[:f.N] }

// GSOType is the kind of a superframe, as in the virtio-net header.
type GSOType uint8

const (
	GSONone  GSOType = iota // a plain frame
	GSOTCPv4                // TCP over IPv4, segment by GSOSize
	GSOTCPv6                // TCP over IPv6
	GSOUDPL4                // UDP, each segment a datagram of GSOSize payload
)

func (g GSOType) String() string {
	switch g {
	case GSONone:
		return "none"
	case GSOTCPv4:
		return "tcpv4"
	case GSOTCPv6:
		return "tcpv6"
	case GSOUDPL4:
		return "udp"
	}
	return "unknown"
}

// Meta is a frame's offload metadata: the fields of struct virtio_net_hdr. All offsets
// count from the first byte of the Ethernet header.
type Meta struct {
	// GSO is the superframe kind; GSONone for a plain frame.
	GSO GSOType
	// NeedsCsum: the L4 checksum is partial (pseudo-header sum only); the bytes from
	// CsumStart to the end must be summed and the result stored at CsumStart+CsumOffset.
	NeedsCsum bool
	// CsumValid: the checksum was already verified (VIRTIO_NET_HDR_F_DATA_VALID).
	CsumValid bool
	// HdrLen is the length of the Ethernet, IP and L4 headers of a superframe.
	HdrLen uint16
	// GSOSize is the L4 payload size of each segment (the MSS).
	GSOSize uint16
	// CsumStart is where checksumming starts (the L4 header).
	CsumStart uint16
	// CsumOffset is where, after CsumStart, the checksum field lies.
	CsumOffset uint16
}

// Shift moves the metadata's offsets by delta bytes, as pushing (+4) or popping (-4) an
// 802.1Q tag in front of the L3 header does. Zero offsets stay zero.
func (m *Meta) Shift(delta int) {
	if m.HdrLen != 0 {
		m.HdrLen = uint16(int(m.HdrLen) + delta)
	}
	if m.NeedsCsum || m.CsumStart != 0 {
		m.CsumStart = uint16(int(m.CsumStart) + delta)
	}
}

// ErrFrameTooBig is returned or counted when a frame does not fit the buffer or MTU.
var ErrFrameTooBig = errors.New("frame too big")

// Ethernet sizes.
const (
	EthHeaderLen  = 14
	VLANTagLen    = 4
	MinFrameLen   = EthHeaderLen
	MaxSuperFrame = 65535 + EthHeaderLen + VLANTagLen // the largest GSO superframe
)

// MaxFrameFor returns the read-buffer size a port of the given MTU needs, room for one
// 802.1Q tag included, or MaxSuperFrame when the port can return superframes.
func MaxFrameFor(mtu int, gso bool) int {
	if gso {
		return MaxSuperFrame
	}
	return mtu + EthHeaderLen + VLANTagLen
}
