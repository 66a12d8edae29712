package hostif

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/internal/gather"
	"github.com/vnetd/vnetd/offload"
	"github.com/vnetd/vnetd/vnethdr"
)

// Options configures Open.
type Options struct {
	// Name is the host interface to attach, at most 15 bytes. It must exist in the
	// network namespace of the thread calling Open; the port stays bound to that
	// namespace whatever thread uses it later.
	Name string
	// Logger receives lifecycle and fault messages; nil means slog.Default().
	Logger *slog.Logger
	// Offload lets offload metadata cross the port (callers normally set it): TCP/UDP
	// superframes and partial checksums the interface hands over are returned whole with
	// their frame.Meta, and WriteFrames accepts them (Info().Caps has every offload).
	// Without it, the port segments superframes and completes checksums in software on
	// receive and accepts only plain frames. The socket uses PACKET_VNET_HDR either way:
	// without it the kernel would hand over superframes with no way to tell their MSS.
	Offload bool
	// SetUp brings the interface up when it is down, as `ip link set NAME up` would;
	// without it Open fails on an interface that is down.
	SetUp bool
	// BlockSize is the size of one receive ring block (Ring only), a power of two of at least
	// 128 KiB (a 64 KiB superframe must fit); default 256 KiB.
	BlockSize int
	// Blocks is the number of receive ring blocks (Ring only); default 32.
	Blocks int
	// BlockTimeout (Ring only) is how long the kernel waits before handing over a
	// partly filled block, rounded up to whole milliseconds; default 1 ms.
	BlockTimeout time.Duration
	// SocketBuffer sets SO_SNDBUF and SO_RCVBUF (forced past the sysctl limits when
	// the process has CAP_NET_ADMIN); default 4 MiB.
	SocketBuffer int
	// Ring receives through a memory-mapped TPACKET_V3 ring (BlockSize, Blocks,
	// BlockTimeout) instead of recvmmsg straight into the caller's buffers. The ring
	// saves system calls but hands frames over a block at a time (up to BlockTimeout
	// late) and copies each twice; on the machines measured (see the package doc) it
	// lost to recvmmsg in throughput and latency, so it is off by default.
	Ring bool
	// QdiscBypass sends straight to the driver (PACKET_QDISC_BYPASS), skipping the
	// interface's queueing discipline; frames the driver cannot take are dropped.
	QdiscBypass bool
}

// Errors Open wraps, for callers that tell them apart.
var (
	// ErrNoInterface: no interface of that name in the caller's network namespace.
	ErrNoInterface = errors.New("no such interface")
	// ErrPermission: the process lacks CAP_NET_RAW (packet sockets) or CAP_NET_ADMIN
	// (promiscuous mode, SetUp).
	ErrPermission = errors.New("permission denied")
	// ErrInterfaceDown: the interface is administratively down and Options.SetUp is false.
	ErrInterfaceDown = errors.New("interface is down")
	// ErrNotEthernet: the interface does not carry Ethernet frames (loopback, tun, ...).
	ErrNotEthernet = errors.New("not an Ethernet interface")
	// ErrDown is wrapped by ReadFrames and WriteFrames errors once the interface is gone
	// (deleted, or moved to another namespace); the switch treats it as the port going
	// down. An interface that is merely set down is waited for instead.
	ErrDown = errors.New("host interface gone")
)

const (
	defaultBlockSize    = 256 << 10
	minBlockSize        = 128 << 10
	defaultBlocks       = 32
	defaultSocketBuffer = 4 << 20
	ringFrameSize       = 2048 // tp_frame_size: only a hint for TPACKET_V3
	txBatch             = 64   // frames per sendmmsg
	downPoll            = 100 * time.Millisecond
	vnetHdrLen          = vnethdr.Len
)

// Port is a host interface attached through an AF_PACKET socket, as a frame.Port.
type Port struct {
	name    string
	ifindex int
	file    *os.File
	raw     syscall.RawConn
	info    frame.Info
	offload bool
	log     *slog.Logger

	closeOnce sync.Once
	closed    atomic.Bool
	goneLog   sync.Once
	down      atomic.Bool // the interface is known to be administratively down
	gone      atomic.Bool // the interface is gone: every read and write fails
	kicked    atomic.Bool // a writer woke the reader to look at the link

	// Counters are the port's traffic counters.
	Counters frame.Counters
	// Faults counts the interface disappearing and send errors other than a full
	// queue or a down link.
	Faults atomic.Uint64
	// Downs counts the times the interface was found administratively down.
	Downs atomic.Uint64
	// Outgoing counts frames the kernel reported as our own or the host's transmissions
	// on the interface, which are never forwarded (PACKET_IGNORE_OUTGOING normally keeps
	// them out of the ring already).
	Outgoing atomic.Uint64
	// Segmented counts frames produced by software segmentation (Offload false).
	Segmented atomic.Uint64

	// Reader state (one reader at a time). rmu is held around every use of the ring
	// and the reader's buffers; it is never contended (Close takes it only after the
	// socket is closed and no reader can be inside) but tells the race detector so.
	rmu      sync.Mutex
	rxFrames uint64 // received, not yet added to Counters (once per fill)
	rxBytes  uint64
	noRing   bool
	recv     *recvState // recvmmsg (Ring unset)
	rbufs    [][]byte   // recvmmsg: the caller's buffers of one recvmmsg
	rscratch []byte     // recvmmsg, Offload false: one received superframe
	ring     ring
	mem      []byte
	pending  []*frame.Buf // software segments not yet returned (Offload false)
	scratch  []byte       // a superframe with its VLAN tag put back (Offload false)

	// Writer state (under wmu).
	wmu      sync.Mutex
	msgs     []unix.Mmsghdr
	batch    gather.Batch
	hdrs     []byte
	rejectLg sync.Once
}

var _ frame.Port = (*Port)(nil)

// Open attaches the interface o.Name: it opens a packet socket bound to the interface
// for every protocol, with a TPACKET_V3 receive ring and virtio-net headers, and puts
// the interface in promiscuous mode for as long as the port is open.
func Open(o Options) (*Port, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := checkName(o.Name); err != nil {
		return nil, err
	}
	g := o.ringGeometry()
	fd, err := packetSocket(o.Name)
	if err != nil {
		return nil, err
	}
	ok := false
	var mem []byte
	defer func() {
		if !ok {
			if mem != nil {
				_ = unix.Munmap(mem)
			}
			unix.Close(fd)
		}
	}()
	l, err := lookUp(fd, o.Name)
	if err != nil {
		return nil, err
	}
	if err := bringUp(fd, o.Name, l.flags, o.SetUp); err != nil {
		return nil, err
	}
	ignoreOut, err := setOptions(fd, o, g)
	if err != nil {
		return nil, err
	}
	if o.Ring {
		if mem, err = mapRing(fd, o.Name, g); err != nil {
			return nil, err
		}
	}
	if err := bind(fd, o.Name, l.ifindex); err != nil {
		return nil, err
	}
	file := os.NewFile(uintptr(fd), "packet:"+o.Name)
	raw, err := file.SyscallConn()
	if err != nil {
		file.Close() // closes fd
		if mem != nil {
			_ = unix.Munmap(mem)
		}
		ok = true
		return nil, openErr(o.Name, "register with the poller", err)
	}
	ok = true
	p := newPort(o, log, l, g, file, raw, mem)
	if !ignoreOut {
		log.Warn("kernel lacks PACKET_IGNORE_OUTGOING; outgoing frames are filtered in user space", "name", o.Name)
	}
	if !o.Ring {
		log.Info("host interface attached", "name", o.Name, "ifindex", l.ifindex, "mtu", l.mtu, "offload", o.Offload, "ring", false)
	} else {
		log.Info("host interface attached", "name", o.Name, "ifindex", l.ifindex, "mtu", l.mtu, "offload", o.Offload,
			"ring_blocks", g.blocks, "block_kib", g.blockSize>>10, "block_timeout_ms", g.timeout)
	}
	return p, nil
}

// openErr is an Open failure at step what.
func openErr(name, what string, err error) error {
	return fmt.Errorf("attach host interface %q: %s: %w", name, what, err)
}

// checkName refuses a name the kernel cannot hold (IFNAMSIZ with its NUL).
func checkName(name string) error {
	if name == "" || len(name) > unix.IFNAMSIZ-1 {
		return fmt.Errorf("attach host interface %q: invalid name: must be 1-%d bytes", name, unix.IFNAMSIZ-1)
	}
	return nil
}

// geometry is the socket's buffer and receive ring sizes, defaults filled in.
type geometry struct {
	blockSize int    // bytes, a power of two of at least minBlockSize
	blocks    int    // ring blocks
	timeout   uint32 // block retire timeout, ms (at least 1)
	sockBuf   int    // SO_SNDBUF and SO_RCVBUF
}

// ringGeometry fills in o's defaults and rounds the block size up to a power of two.
func (o Options) ringGeometry() geometry {
	g := geometry{blockSize: o.BlockSize, blocks: o.Blocks, sockBuf: o.SocketBuffer}
	if g.blockSize <= 0 {
		g.blockSize = defaultBlockSize
	}
	g.blockSize = max(minBlockSize, 1<<bits.Len(uint(g.blockSize-1))) // a power of two
	if g.blocks <= 0 {
		g.blocks = defaultBlocks
	}
	g.timeout = uint32((o.BlockTimeout + time.Millisecond - 1) / time.Millisecond)
	if g.timeout == 0 {
		g.timeout = 1
	}
	if g.sockBuf <= 0 {
		g.sockBuf = defaultSocketBuffer
	}
	return g
}

// packetSocket opens a non-blocking AF_PACKET socket. Protocol 0: no frames arrive
// until bind names the interface.
func packetSocket(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		switch {
		case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
			return -1, fmt.Errorf("attach host interface %q: %w: packet sockets need CAP_NET_RAW: %w", name, ErrPermission, err)
		case errors.Is(err, unix.EAFNOSUPPORT):
			return -1, openErr(name, "this kernel has no AF_PACKET support", err)
		}
		return -1, openErr(name, "packet socket", err)
	}
	return fd, nil
}

// link is what Open learns of the interface.
type link struct {
	ifindex int
	mtu     int
	flags   uint16
}

// lookUp reads the interface's index, link type, MTU and flags through the socket,
// so its namespace is the socket's, and refuses an interface that is not Ethernet.
func lookUp(fd int, name string) (link, error) {
	var l link
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return l, openErr(name, "invalid name", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return l, fmt.Errorf("attach host interface %q: %w in this network namespace", name, ErrNoInterface)
		}
		return l, openErr(name, "look up", err)
	}
	l.ifindex = int(ifr.Uint32())
	ifr, _ = unix.NewIfreq(name)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err != nil {
		return l, openErr(name, "read link type", err)
	}
	// struct sockaddr hwaddr starts the union: its sa_family is the ARPHRD type.
	if t := ifr.Uint16(); t != unix.ARPHRD_ETHER {
		return l, fmt.Errorf("attach host interface %q: %w (link type %d)", name, ErrNotEthernet, t)
	}
	ifr, _ = unix.NewIfreq(name)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFMTU, ifr); err != nil {
		return l, openErr(name, "read MTU", err)
	}
	l.mtu = int(ifr.Uint32())
	ifr, _ = unix.NewIfreq(name)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return l, openErr(name, "read flags", err)
	}
	l.flags = ifr.Uint16()
	return l, nil
}

// bringUp sets the interface up when flags say it is down and setUp allows it;
// otherwise a down interface is ErrInterfaceDown.
func bringUp(fd int, name string, flags uint16, setUp bool) error {
	if flags&unix.IFF_UP != 0 {
		return nil
	}
	if !setUp {
		return fmt.Errorf("attach host interface %q: %w (ip link set %s up, or set SetUp)", name, ErrInterfaceDown, name)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return openErr(name, "invalid name", err)
	}
	ifr.SetUint16(flags | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("attach host interface %q: set up: %w: needs CAP_NET_ADMIN: %w", name, ErrPermission, err)
		}
		return openErr(name, "set up", err)
	}
	return nil
}

// setOptions sets the socket options, in the order the kernel needs them (the
// packet version and virtio-net headers before any ring); it reports whether the
// kernel filters our own outgoing frames (PACKET_IGNORE_OUTGOING).
func setOptions(fd int, o Options, g geometry) (ignoreOut bool, err error) {
	if o.Ring {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
			return false, openErr(o.Name, "this kernel has no TPACKET_V3 rings", err)
		}
	} else if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return false, openErr(o.Name, "PACKET_AUXDATA", err)
	}
	// Before the ring: the kernel refuses PACKET_VNET_HDR on a socket with a ring.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return false, openErr(o.Name, "PACKET_VNET_HDR (virtio-net headers need Linux 5.8 or later with a ring)", err)
	}
	ignoreOut = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1) == nil
	if o.QdiscBypass {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return false, openErr(o.Name, "PACKET_QDISC_BYPASS", err)
		}
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, g.sockBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, g.sockBuf)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, g.sockBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, g.sockBuf)
	}
	return ignoreOut, nil
}

// mapRing sets up the TPACKET_V3 receive ring of g and maps it.
func mapRing(fd int, name string, g geometry) ([]byte, error) {
	req := unix.TpacketReq3{
		Block_size:     uint32(g.blockSize),
		Block_nr:       uint32(g.blocks),
		Frame_size:     ringFrameSize,
		Frame_nr:       uint32(g.blockSize / ringFrameSize * g.blocks),
		Retire_blk_tov: g.timeout,
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, openErr(name, fmt.Sprintf("receive ring of %d x %d KiB", g.blocks, g.blockSize>>10), err)
	}
	mem, err := unix.Mmap(fd, 0, g.blockSize*g.blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, openErr(name, "map the receive ring", err)
	}
	return mem, nil
}

// bind puts the interface in promiscuous mode for as long as the socket is open and
// binds the socket to it for every protocol.
func bind(fd int, name string, ifindex int) error {
	mreq := unix.PacketMreq{Ifindex: int32(ifindex), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("attach host interface %q: promiscuous mode: %w: needs CAP_NET_ADMIN: %w", name, ErrPermission, err)
		}
		return openErr(name, "promiscuous mode", err)
	}
	sa := unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
	if err := unix.Bind(fd, &sa); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("attach host interface %q: bind: %w (it went away)", name, ErrNoInterface)
		}
		return openErr(name, "bind", err)
	}
	return nil
}

// newPort builds the Port around the bound socket and its ring (mem, Ring only).
func newPort(o Options, log *slog.Logger, l link, g geometry, file *os.File, raw syscall.RawConn, mem []byte) *Port {
	var caps frame.Caps
	if o.Offload {
		caps = frame.CapCsum | frame.CapTSO4 | frame.CapTSO6 | frame.CapUSO
	}
	p := &Port{
		name: o.Name, ifindex: l.ifindex, file: file, raw: raw, offload: o.Offload, log: log,
		// CapPacket: a namespace's frames are sent from its gVisor buffers. CapInline:
		// WriteFrames never blocks (MSG_DONTWAIT; what the socket cannot take now is
		// dropped) and is safe for concurrent use, so the switch's readers write to it.
		info: frame.Info{Name: "hostif:" + o.Name, MTU: l.mtu, MaxFrame: frame.MaxFrameFor(l.mtu, o.Offload), Caps: caps | frame.CapPacket | frame.CapInline},
		ring: ring{mem: mem, blockSize: g.blockSize, blocks: g.blocks, vnet: true},
		mem:  mem,
		msgs: make([]unix.Mmsghdr, txBatch), hdrs: make([]byte, vnetHdrLen*txBatch),
	}
	if !o.Offload {
		p.scratch = make([]byte, frame.MaxSuperFrame)
	}
	if !o.Ring {
		p.noRing, p.recv, p.rbufs = true, newRecvState(), make([][]byte, txBatch)
		if !o.Offload {
			p.rscratch = make([]byte, frame.MaxSuperFrame)
		}
	}
	return p
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Name returns the host interface's name.
func (p *Port) Name() string { return p.name }

// Info implements frame.Port.
func (p *Port) Info() frame.Info { return p.info }

// Drops implements frame.DropReporter.
func (p *Port) Drops() map[string]uint64 { return p.Counters.Drops() }

// ReadFrames implements frame.Port. It blocks until a ring block is ready (a full one,
// or a partly filled one the kernel hands over after BlockTimeout), then copies up to
// len(frames) frames out of the ring; without Ring it blocks until a frame is queued on
// the socket and receives up to len(frames) with one recvmmsg. Frames the kernel
// reports as outgoing, truncated frames and frames with offload metadata frame.Meta
// cannot carry are dropped and counted.
func (p *Port) ReadFrames(frames []frame.Frame) (int, error) {
	if len(frames) == 0 {
		return 0, nil
	}
	for {
		if p.closed.Load() {
			return 0, net.ErrClosed
		}
		if p.gone.Load() {
			return 0, p.goneErr("read")
		}
		n := 0
		var sockErr bool
		err := p.raw.Read(func(fd uintptr) bool {
			var e unix.Errno
			n, e = p.fill(int(fd), frames)
			if n > 0 {
				return true
			}
			if e != 0 {
				sockErr = true
				return true
			}
			if p.noRing {
				return false // recvmmsg reports socket errors itself
			}
			// Nothing ready: before waiting, look for an error the socket reported
			// (the interface going down wakes the reader with one).
			if e, _ := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR); e != 0 {
				sockErr = true
				return true
			}
			return false
		})
		if n > 0 {
			return n, nil
		}
		if p.closed.Load() || errors.Is(err, os.ErrClosed) {
			return 0, net.ErrClosed
		}
		if err == nil && !sockErr {
			continue
		}
		// A socket error, a wake-up from a writer that saw the link fail, or the poller
		// refusing to wait (it does while its last event was an error alone): look at
		// the link, then wait with plain poll(2) for a while.
		if errors.Is(err, os.ErrDeadlineExceeded) || p.kicked.Load() {
			p.kicked.Store(false)
			_ = p.file.SetReadDeadline(time.Time{})
		}
		if ferr := p.checkLink(); ferr != nil {
			return 0, ferr
		}
		cerr := p.raw.Control(func(fd uintptr) {
			if n, _ = p.fill(int(fd), frames); n > 0 {
				return
			}
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			_, _ = unix.Poll(pfd, int(downPoll/time.Millisecond))
			n, _ = p.fill(int(fd), frames)
		})
		if n > 0 {
			return n, nil
		}
		if cerr != nil && (p.closed.Load() || errors.Is(cerr, os.ErrClosed)) {
			return 0, net.ErrClosed
		}
	}
}

// fill copies ready frames into frames, returning how many, or an error the socket
// reported instead of frames.
func (p *Port) fill(fd int, frames []frame.Frame) (int, unix.Errno) {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	defer p.flushRx()
	if p.noRing {
		n, e := p.recvFill(fd, frames)
		if n > 0 && p.down.Swap(false) {
			p.log.Info("host interface up again", "name", p.name)
		}
		return n, e
	}
	n := p.drainPending(frames)
	var pk rxPacket
	for n < len(frames) {
		switch p.ring.next(&pk) {
		case ringEmpty:
			p.ring.settle()
			p.noteLosing(fd)
			if n > 0 && p.down.Swap(false) {
				p.log.Info("host interface up again", "name", p.name)
			}
			return n, 0
		case ringCorrupt:
			p.Counters.DropRx(frame.DropRingCorrupt, 1)
			continue
		}
		n += p.take(&pk, frames[n:])
	}
	p.ring.settle()
	p.noteLosing(fd)
	if n > 0 && p.down.Swap(false) {
		p.log.Info("host interface up again", "name", p.name)
	}
	return n, 0
}

// countRx counts a received frame of n bytes.
func (p *Port) countRx(n int) {
	p.rxFrames++
	p.rxBytes += uint64(n)
}

// flushRx adds the frames counted during one fill to Counters.
func (p *Port) flushRx() {
	if p.rxFrames != 0 {
		p.Counters.RxFrames.Add(p.rxFrames)
		p.Counters.RxBytes.Add(p.rxBytes)
		p.rxFrames, p.rxBytes = 0, 0
	}
}

// noteLosing adds the kernel's ring drops to RxDropped once a block reported some.
func (p *Port) noteLosing(fd int) {
	if !p.ring.losing {
		return
	}
	p.ring.losing = false
	if st, err := unix.GetsockoptTpacketStatsV3(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
		p.Counters.DropRx(frame.DropKernel, uint64(st.Drops))
	}
}

// take turns one ring packet into frames at the start of out (more than one only when
// software segmentation runs), returning how many it filled.
func (p *Port) take(pk *rxPacket, out []frame.Frame) int {
	if pk.pkttype == unix.PACKET_OUTGOING {
		p.Outgoing.Add(1)
		return 0
	}
	if len(pk.data) < pk.wireLen || len(pk.data) < frame.EthHeaderLen {
		p.Counters.DropRx(frame.DropTruncated, 1) // larger than a ring block can hold
		return 0
	}
	var m frame.Meta
	if !vnethdr.Decode(pk.vnet, &m) {
		p.Counters.DropRx(frame.DropBadHeader, 1)
		return 0
	}
	tagged := pk.status&unix.TP_STATUS_VLAN_VALID != 0
	size := len(pk.data)
	if tagged {
		size += frame.VLANTagLen
	}
	if !p.offload && m.GSO != frame.GSONone {
		return p.segment(pk, &m, tagged, out)
	}
	f := &out[0]
	if size > len(f.Buf) {
		p.Counters.DropRx(frame.DropBufferShort, 1)
		return 0
	}
	copyFrame(f.Buf, pk, tagged)
	if tagged {
		m.Shift(frame.VLANTagLen)
	}
	if !p.offload && m.NeedsCsum {
		if err := offload.CompleteChecksum(f.Buf[:size], &m); err != nil {
			p.Counters.DropRx(frame.DropChecksum, 1)
			return 0
		}
	}
	f.N, f.Meta = size, m
	p.countRx(size)
	return 1
}

// copyFrame copies pk's frame into dst, putting back the 802.1Q tag the kernel took
// out of it into the packet header.
func copyFrame(dst []byte, pk *rxPacket, tagged bool) {
	if !tagged {
		copy(dst, pk.data)
		return
	}
	copy(dst[:12], pk.data[:12])
	tpid := uint16(unix.ETH_P_8021Q)
	if pk.status&unix.TP_STATUS_VLAN_TPID_VALID != 0 && pk.vlanTPID != 0 {
		tpid = pk.vlanTPID
	}
	dst[12], dst[13] = byte(tpid>>8), byte(tpid)
	dst[14], dst[15] = byte(pk.vlanTCI>>8), byte(pk.vlanTCI)
	copy(dst[16:], pk.data[12:])
}

// segment splits a superframe in software (Offload false) into out, keeping what does
// not fit for the next read.
func (p *Port) segment(pk *rxPacket, m *frame.Meta, tagged bool, out []frame.Frame) int {
	size := len(pk.data)
	if tagged {
		size += frame.VLANTagLen
	}
	if size > len(p.scratch) {
		p.Counters.DropRx(frame.DropBufferShort, 1)
		return 0
	}
	copyFrame(p.scratch, pk, tagged)
	if tagged {
		m.Shift(frame.VLANTagLen)
	}
	sf := frame.Frame{Buf: p.scratch, N: size, Meta: *m}
	n := 0
	_, err := offload.Segment(&sf, p.info.MTU, func(b *frame.Buf) bool {
		p.Segmented.Add(1)
		if n < len(out) && b.CopyTo(&out[n]) {
			p.countRx(b.N)
			b.Release()
			n++
			return true
		}
		if n < len(out) { // the caller's buffer is too short for the segment
			p.Counters.DropRx(frame.DropBufferShort, 1)
			b.Release()
			return true
		}
		p.pending = append(p.pending, b)
		return true
	})
	if err != nil {
		p.Counters.DropRx(frame.DropSegment, 1)
	}
	return n
}

// drainPending hands out software segments left over from an earlier read.
func (p *Port) drainPending(frames []frame.Frame) int {
	n, i := 0, 0
	for ; i < len(p.pending) && n < len(frames); i++ {
		b := p.pending[i]
		if b.CopyTo(&frames[n]) {
			p.countRx(b.N)
			n++
		} else {
			p.Counters.DropRx(frame.DropBufferShort, 1)
		}
		b.Release()
		p.pending[i] = nil
	}
	if i > 0 {
		p.pending = append(p.pending[:0], p.pending[i:]...)
	}
	return n
}

// checkLink looks at the interface after the socket reported trouble: it returns an
// ErrDown error when the interface is gone, and notes (logging once per transition)
// when it is only down.
func (p *Port) checkLink() error {
	gone, down := false, false
	err := p.raw.Control(func(fd uintptr) {
		_, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR) // clear it
		sa, err := unix.Getsockname(int(fd))
		if ll, ok := sa.(*unix.SockaddrLinklayer); err == nil && ok && ll.Ifindex <= 0 {
			gone = true // the kernel unbinds a socket whose interface is unregistered
			return
		}
		ifr, _ := unix.NewIfreq("")
		ifr.SetUint32(uint32(p.ifindex))
		if err := unix.IoctlIfreq(int(fd), unix.SIOCGIFNAME, ifr); err != nil {
			gone = errors.Is(err, unix.ENODEV)
			return
		}
		if err := unix.IoctlIfreq(int(fd), unix.SIOCGIFFLAGS, ifr); err == nil {
			down = ifr.Uint16()&unix.IFF_UP == 0
		}
	})
	if err != nil {
		if p.closed.Load() || errors.Is(err, os.ErrClosed) {
			return net.ErrClosed
		}
		return p.fault("read", err)
	}
	if gone {
		return p.fault("read", errors.New("interface deleted or moved to another network namespace"))
	}
	if down && !p.down.Swap(true) {
		p.Downs.Add(1)
		p.log.Warn("host interface is down; waiting for it to come back", "name", p.name)
	}
	return nil
}

// fault turns the interface's disappearance into ErrDown, logging once and counting.
func (p *Port) fault(op string, err error) error {
	if p.closed.Load() {
		return net.ErrClosed
	}
	p.Faults.Add(1)
	p.gone.Store(true)
	p.goneLog.Do(func() {
		p.log.Warn("host interface gone; port down", "name", p.name, "op", op, "err", err)
	})
	return fmt.Errorf("%s host interface %q: %w: %w", op, p.name, ErrDown, err)
}

func (p *Port) goneErr(op string) error {
	return fmt.Errorf("%s host interface %q: %w", op, p.name, ErrDown)
}

// kick wakes a reader blocked in the poller so it looks at the link.
func (p *Port) kick() {
	if !p.kicked.Swap(true) {
		_ = p.file.SetReadDeadline(time.Unix(1, 0))
	}
}

// WriteFrames implements frame.Port: it sends the frames with sendmmsg, a virtio-net
// header in front of each. A frame the kernel cannot take now (socket buffer full,
// interface down) is dropped and counted.
func (p *Port) WriteFrames(frames []frame.Frame) (int, error) {
	if p.closed.Load() {
		return 0, net.ErrClosed
	}
	if p.gone.Load() {
		return 0, p.goneErr("write")
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	n := 0
	var werr error
	err := p.raw.Control(func(fd uintptr) {
		for n < len(frames) && werr == nil {
			k := min(len(frames)-n, txBatch)
			var done int
			done, werr = p.sendBatch(int(fd), frames[n:n+k])
			n += done
		}
	})
	if err != nil {
		if p.closed.Load() || errors.Is(err, os.ErrClosed) {
			return n, net.ErrClosed
		}
		return n, p.fault("write", err)
	}
	if werr != nil {
		p.kick()
		return n, p.fault("write", werr)
	}
	return n, nil
}

// sendBatch sends up to txBatch frames, returning how many it dealt with (sent or
// dropped) and an error only when the interface is gone.
func (p *Port) sendBatch(fd int, frames []frame.Frame) (int, error) {
	p.batch.Reset()
	for i := range frames {
		f := &frames[i]
		h := p.hdrs[i*vnetHdrLen : (i+1)*vnetHdrLen]
		m := f.Meta
		m.CsumValid = false // receive-side information: a packet socket ignores it
		vnethdr.Encode(h, &m)
		p.batch.Add(h, f) // a frame by reference: from the sending stack's buffers
	}
	p.batch.Finish()
	for i := range frames {
		iov := p.batch.Iov(i)
		p.msgs[i].Hdr = unix.Msghdr{Iov: &iov[0]}
		p.msgs[i].Hdr.SetIovlen(len(iov))
	}
	defer p.batch.Release() // keep no reference to the caller's buffers
	i := 0
	for i < len(frames) {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&p.msgs[i])),
			uintptr(len(frames)-i), unix.MSG_DONTWAIT, 0, 0)
		if e == 0 {
			for _, f := range frames[i : i+int(r)] {
				p.Counters.TxFrames.Add(1)
				p.Counters.TxBytes.Add(uint64(f.N))
			}
			i += int(r)
			continue
		}
		// frames[i] failed.
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.ENOBUFS:
			p.Counters.DropTx(frame.DropQueueFull, 1)
		case unix.ENETDOWN:
			// The interface is down (or about to go away): everything else fails too.
			p.Counters.DropTx(frame.DropLinkDown, uint64(len(frames)-i))
			p.kick()
			return len(frames), nil
		case unix.ENXIO, unix.ENODEV:
			return i, e
		default:
			// The kernel refused this frame (bad offload metadata, too big, ...).
			p.Counters.DropTx(frame.DropSendError, 1)
			p.Faults.Add(1)
			p.rejectLg.Do(func() {
				p.log.Warn("host interface refused a frame (logged once)", "name", p.name,
					"len", frames[i].N, "meta", frames[i].Meta, "err", e)
			})
		}
		i++
	}
	return len(frames), nil
}

// Close detaches the port: the socket is closed (leaving promiscuous mode) and the
// ring unmapped. The interface itself stays. Idempotent.
func (p *Port) Close() error {
	var err error
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		// Close waits until no reader or writer is inside a callback on the socket, so
		// no one touches the ring after this.
		err = p.file.Close()
		p.rmu.Lock()
		if p.mem != nil {
			if merr := unix.Munmap(p.mem); merr != nil && err == nil {
				err = merr
			}
			p.mem, p.ring.mem = nil, nil
		}
		frame.ReleaseBufs(p.pending)
		p.pending = nil
		p.rmu.Unlock()
		p.log.Info("host interface detached", "name", p.name)
	})
	if err != nil {
		return fmt.Errorf("close host interface %q: %w", p.name, err)
	}
	return nil
}
