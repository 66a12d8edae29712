package tap

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/internal/gather"
	"github.com/vnetd/vnetd/vnethdr"
)

// Options configures Open.
type Options struct {
	// Name is the TAP's interface name, at most 15 bytes.
	Name string
	// Create makes a new TAP that disappears at Close; false attaches to an existing
	// persistent TAP and leaves it in place at Close.
	Create bool
	// MTU is set on the link when > 0; 0 keeps the link's MTU (1500 for a new TAP).
	MTU int
	// Offload enables the virtio-net header with checksum, TSO4/6 and (when the kernel
	// has them) USO4/6 offloads.
	Offload bool
	// WritevOnly writes every frame with its own writev. By default a WriteFrames call
	// of several frames is one io_uring submission (falling back to writev by itself
	// where io_uring is unavailable, e.g. kernel.io_uring_disabled or seccomp); this
	// is for comparing the two.
	WritevOnly bool
	// Queues is the number of queues OpenQueues opens; 0 and 1 open a single-queue
	// TAP, more open a multi-queue one (IFF_MULTI_QUEUE), one file descriptor each.
	Queues int
	// Logger receives lifecycle and fault messages; nil means slog.Default().
	Logger *slog.Logger
}

const (
	tunSetIff       = 0x400454ca
	tunSetOffload   = 0x400454d0
	tunSetVnetHdrSz = 0x400454d8
	iffTap          = 0x0002
	iffMultiQueue   = 0x0100
	iffNoPI         = 0x1000
	iffVnetHdr      = 0x4000
	tunFCsum        = 0x01
	tunFTSO4        = 0x02
	tunFTSO6        = 0x04
	tunFUSO4        = 0x20
	tunFUSO6        = 0x40

	maxQueues = 256 // the kernel's MAX_TAP_QUEUES

	vnetHdrLen = vnethdr.Len
)

// ErrDown is wrapped by ReadFrames and WriteFrames errors once the device is gone
// (deleted under vnetd); the switch treats it as the port going down.
var ErrDown = errors.New("TAP device gone")

// TAP is a host TAP device as a frame.Port.
type TAP struct {
	name    string
	file    *os.File
	raw     syscall.RawConn
	info    frame.Info
	vnet    bool
	log     *slog.Logger
	closeMu sync.Once
	closed  atomic.Bool
	downLog sync.Once

	// Counters are the port's traffic counters.
	Counters frame.Counters
	// Faults counts read/write errors other than EAGAIN (device deleted, I/O errors).
	Faults atomic.Uint64

	// Read side: one reader at a time (the frame.Port contract).
	rhdr    []byte   // virtio-net header scratch
	riov    [][]byte // iovec scratch
	rspare  []byte   // one byte past the caller's buffer: a frame that reaches it did not fit
	readFn  func(fd uintptr) bool
	drainFn func(fd uintptr) // readReady for raw.Control (a Group's reader)
	rframes []frame.Frame    // the callback's state for one ReadFrames call
	rn      int
	rerr    error

	// Write side: everything below is guarded by wlock.
	wlock   sync.Mutex
	whdr    []byte
	wiov    [][]byte
	writeFn func(fd uintptr) bool
	wframes []frame.Frame
	wn      int
	werr    error
	ur      *uring // batches writes; nil: one writev per frame
	urDone  func(i int, res int32)
	wbase   int
}

var _ frame.Port = (*TAP)(nil)

// Open opens (and with Create, creates) the single-queue TAP device described by o,
// sets its MTU and brings it up. o.Queues must be 0 or 1: see OpenQueues.
func Open(o Options) (*TAP, error) {
	if o.Queues > 1 {
		return nil, fmt.Errorf("open TAP %q: %d queues: use OpenQueues", o.Name, o.Queues)
	}
	ts, err := OpenQueues(o)
	if err != nil {
		return nil, err
	}
	return ts[0], nil
}

// OpenQueues opens (and with Create, creates) the TAP device described by o with
// o.Queues queues (IFF_MULTI_QUEUE when more than 1), sets its MTU and brings it up. It
// returns one TAP per queue, each a frame.Port over its own file descriptor, named
// "tap:NAME" for a single queue and "tap:NAME.qI" otherwise. The kernel spreads the
// host's outgoing flows over the queues, steering each flow to the queue that last
// wrote one of its frames; frames written to any queue reach the host. A created TAP
// disappears once every queue is closed.
func OpenQueues(o Options) ([]*TAP, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if o.Name == "" || len(o.Name) > unix.IFNAMSIZ-1 {
		return nil, fmt.Errorf("open TAP %q: invalid name: must be 1-%d bytes", o.Name, unix.IFNAMSIZ-1)
	}
	for _, c := range o.Name {
		if c == '/' || c == ':' || c <= ' ' || c == 0x7f {
			return nil, fmt.Errorf("open TAP %q: invalid name: contains %q", o.Name, c)
		}
	}
	queues := max(o.Queues, 1)
	if queues > maxQueues {
		return nil, fmt.Errorf("open TAP %q: %d queues: at most %d", o.Name, queues, maxQueues)
	}
	if !o.Create {
		link, err := netlink.LinkByName(o.Name)
		if err != nil {
			return nil, fmt.Errorf("open TAP %q: attach to existing TAP: %w", o.Name, err)
		}
		if err := checkQueues(link, queues); err != nil {
			return nil, fmt.Errorf("open TAP %q: %w", o.Name, err)
		}
	} else if _, err := netlink.LinkByName(o.Name); err == nil {
		return nil, fmt.Errorf("open TAP %q: create: an interface with this name already exists", o.Name)
	}
	flags := uint16(iffTap | iffNoPI)
	if o.Offload {
		flags |= iffVnetHdr
	}
	if queues > 1 {
		flags |= iffMultiQueue
	}
	fds := make([]int, 0, queues)
	ok := false
	defer func() {
		if !ok {
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}()
	var caps frame.Caps
	for range queues {
		fd, c, err := openQueue(o.Name, flags)
		if err != nil {
			return nil, err
		}
		fds = append(fds, fd)
		caps = c
	}
	link, err := netlink.LinkByName(o.Name)
	if err != nil {
		return nil, fmt.Errorf("open TAP %q: find link: %w", o.Name, err)
	}
	if o.MTU > 0 && link.Attrs().MTU != o.MTU {
		if err := netlink.LinkSetMTU(link, o.MTU); err != nil {
			return nil, fmt.Errorf("open TAP %q: set MTU %d: %w", o.Name, o.MTU, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("open TAP %q: set up: %w", o.Name, err)
	}
	mtu := o.MTU
	if mtu <= 0 {
		mtu = link.Attrs().MTU
	}
	ts := make([]*TAP, 0, queues)
	for i, fd := range fds {
		file := os.NewFile(uintptr(fd), "/dev/net/tun:"+o.Name)
		raw, err := file.SyscallConn()
		if err != nil {
			// The files own their descriptors from here on.
			for _, t := range ts {
				t.file.Close()
			}
			for _, fd := range fds[i:] {
				unix.Close(fd)
			}
			ok = true
			return nil, fmt.Errorf("open TAP %q: %w", o.Name, err)
		}
		portName := "tap:" + o.Name
		if queues > 1 {
			portName = fmt.Sprintf("tap:%s.q%d", o.Name, i)
		}
		// CapPacket: a namespace's frames are written from its gVisor buffers.
		info := frame.Info{Name: portName, MTU: mtu, MaxFrame: frame.MaxFrameFor(mtu, o.Offload), Caps: caps | frame.CapPacket | frame.CapInline}
		t := newTAP(o.Name, file, raw, info, o.Offload, log)
		if !o.WritevOnly {
			if u, err := newURing(); err == nil {
				t.ur = u
			} else {
				log.Debug("TAP writes one frame per syscall", "name", o.Name, "err", err)
			}
		}
		ts = append(ts, t)
	}
	ok = true
	log.Info("TAP open", "name", o.Name, "create", o.Create, "mtu", mtu, "offload", o.Offload, "caps", caps, "queues", queues, "batched_writes", ts[0].ur != nil)
	return ts, nil
}

// checkQueues tells why an existing TAP cannot be opened with the given number of
// queues (the kernel only says EINVAL): a multi-queue TAP takes IFF_MULTI_QUEUE and a
// single-queue one refuses it.
func checkQueues(link netlink.Link, queues int) error {
	tt, ok := link.(*netlink.Tuntap)
	if !ok {
		return nil // not a tun device at all: TUNSETIFF says so
	}
	mq := tt.Flags&netlink.TUNTAP_MULTI_QUEUE != 0
	switch {
	case queues > 1 && !mq:
		return fmt.Errorf("%d queues need a multi-queue TAP, and this one is single-queue (create it with ip tuntap add dev %s mode tap multi_queue, or use 1 queue)", queues, tt.Name)
	case queues == 1 && mq:
		return fmt.Errorf("a multi-queue TAP (created multi_queue): open it with Queues > 1")
	}
	return nil
}

// newTAP returns the port over one queue's open file, writing one frame per syscall.
func newTAP(name string, file *os.File, raw syscall.RawConn, info frame.Info, vnet bool, log *slog.Logger) *TAP {
	t := &TAP{
		name: name, file: file, raw: raw, vnet: vnet, log: log, info: info,
		rhdr: make([]byte, vnetHdrLen), riov: make([][]byte, 3), rspare: make([]byte, 1),
		whdr: make([]byte, vnetHdrLen), wiov: make([][]byte, 2),
	}
	t.readFn, t.writeFn, t.urDone = t.readReady, t.writeAll, t.uringDone
	t.drainFn = func(fd uintptr) { t.readReady(fd) }
	return t
}

// openQueue opens /dev/net/tun as one queue of TAP name with flags, and sets up the
// virtio-net header and offloads when flags ask for it. It returns the descriptor and
// the offloads the TAP accepts.
func openQueue(name string, flags uint16) (int, frame.Caps, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		switch {
		case errors.Is(err, unix.ENOENT):
			return -1, 0, fmt.Errorf("open TAP %q: /dev/net/tun is missing (load the tun module or create the device node): %w", name, err)
		case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
			return -1, 0, fmt.Errorf("open TAP %q: no permission to open /dev/net/tun (needs CAP_NET_ADMIN): %w", name, err)
		}
		return -1, 0, fmt.Errorf("open TAP %q: open /dev/net/tun: %w", name, err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return -1, 0, fmt.Errorf("open TAP %q: %w", name, err)
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, tunSetIff, ifr); err != nil {
		switch {
		case errors.Is(err, unix.EPERM):
			return -1, 0, fmt.Errorf("open TAP %q: no permission (needs CAP_NET_ADMIN): %w", name, err)
		case errors.Is(err, unix.EBUSY):
			return -1, 0, fmt.Errorf("open TAP %q: TAP busy (another process has it open, or its flags differ): %w", name, err)
		case errors.Is(err, unix.EINVAL):
			return -1, 0, fmt.Errorf("open TAP %q: not a TAP, or flags rejected (a multi-queue TAP needs Queues > 1, and only such a TAP takes it): %w", name, err)
		}
		return -1, 0, fmt.Errorf("open TAP %q: TUNSETIFF: %w", name, err)
	}
	var caps frame.Caps
	if flags&iffVnetHdr != 0 {
		sz := vnetHdrLen
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), tunSetVnetHdrSz, uintptr(unsafe.Pointer(&sz))); e != 0 {
			return -1, 0, fmt.Errorf("open TAP %q: TUNSETVNETHDRSZ: %w", name, e)
		}
		caps = frame.CapCsum | frame.CapTSO4 | frame.CapTSO6
		if err := unix.IoctlSetInt(fd, tunSetOffload, tunFCsum|tunFTSO4|tunFTSO6|tunFUSO4|tunFUSO6); err == nil {
			caps |= frame.CapUSO
		} else if err := unix.IoctlSetInt(fd, tunSetOffload, tunFCsum|tunFTSO4|tunFTSO6); err != nil {
			return -1, 0, fmt.Errorf("open TAP %q: TUNSETOFFLOAD: %w", name, err)
		}
	}
	ok = true
	return fd, caps, nil
}

// Name returns the TAP's interface name.
func (t *TAP) Name() string { return t.name }

// Info implements frame.Port.
func (t *TAP) Info() frame.Info { return t.info }

// Drops implements frame.DropReporter.
func (t *TAP) Drops() map[string]uint64 { return t.Counters.Drops() }

// fault turns a device error into ErrDown, logging once and counting.
func (t *TAP) fault(op string, err error) error {
	if t.closed.Load() {
		return net.ErrClosed
	}
	t.Faults.Add(1)
	t.downLog.Do(func() {
		t.log.Warn("TAP device gone or broken; port down", "name", t.name, "op", op, "err", err)
	})
	return fmt.Errorf("%s TAP %q: %w: %w", op, t.name, ErrDown, err)
}

// ReadFrames implements frame.Port: it blocks for the first frame, then takes whatever
// else is ready, up to len(frames), without blocking.
func (t *TAP) ReadFrames(frames []frame.Frame) (int, error) {
	for {
		// readOnce returns 0, nil when only dropped frames were ready: block again.
		if n, err := t.readOnce(frames); n > 0 || err != nil || len(frames) == 0 {
			return n, err
		}
	}
}

func (t *TAP) readOnce(frames []frame.Frame) (int, error) {
	if len(frames) == 0 {
		return 0, nil
	}
	if t.closed.Load() {
		return 0, net.ErrClosed
	}
	// The callback's state lives in t (one reader at a time), so a read allocates nothing.
	t.rframes, t.rn, t.rerr = frames, 0, nil
	err := t.raw.Read(t.readFn)
	n, rerr := t.rn, t.rerr
	t.rframes, t.rerr = nil, nil
	if n > 0 {
		return n, nil
	}
	if err != nil {
		if t.closed.Load() || errors.Is(err, os.ErrClosed) {
			return 0, net.ErrClosed
		}
		return 0, t.fault("read", err)
	}
	if rerr != nil {
		return 0, t.fault("read", rerr)
	}
	if t.closed.Load() {
		return 0, net.ErrClosed
	}
	return 0, nil
}

// readReady reads frames into t.rframes until none is ready; it is the raw.Read
// callback and reports whether the poller should stop waiting.
func (t *TAP) readReady(fd uintptr) bool {
	frames := t.rframes
	for t.rn < len(frames) {
		f := &frames[t.rn]
		var m int
		var err error
		// The kernel cuts a frame longer than the buffers it is read into and returns
		// what it copied; the spare byte after f.Buf tells such a frame apart.
		if t.vnet {
			t.riov[0], t.riov[1], t.riov[2] = t.rhdr, f.Buf, t.rspare
			m, err = readv(int(fd), t.riov)
		} else {
			t.riov[0], t.riov[1] = f.Buf, t.rspare
			m, err = readv(int(fd), t.riov[:2])
		}
		t.riov[1], t.riov[0] = nil, nil // keep no reference to the caller's buffer
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return t.rn > 0
		}
		if err != nil {
			t.rerr = err
			return true
		}
		if m == 0 {
			t.rerr = io.EOF
			return true
		}
		if t.vnet {
			m -= vnetHdrLen
			if m < 0 || !vnethdr.Decode(t.rhdr, &f.Meta) {
				t.Counters.DropRx(frame.DropBadHeader, 1)
				continue
			}
		} else {
			f.Meta = frame.Meta{}
		}
		if m > len(f.Buf) {
			t.Counters.DropRx(frame.DropBufferShort, 1)
			continue
		}
		f.N = m
		t.Counters.RxFrames.Add(1)
		t.Counters.RxBytes.Add(uint64(m))
		t.rn++
	}
	return true
}

func readv(fd int, iov [][]byte) (int, error) { return unix.Readv(fd, iov) }

// WriteFrames implements frame.Port. A frame the kernel cannot take right now is dropped
// and counted.
func (t *TAP) WriteFrames(frames []frame.Frame) (int, error) {
	if t.closed.Load() {
		return 0, net.ErrClosed
	}
	t.wlock.Lock()
	defer t.wlock.Unlock()
	t.wframes, t.wn, t.werr = frames, 0, nil
	err := t.raw.Write(t.writeFn)
	n, werr := t.wn, t.werr
	t.wframes, t.werr = nil, nil
	if err != nil {
		if t.closed.Load() || errors.Is(err, os.ErrClosed) {
			return n, net.ErrClosed
		}
		return n, t.fault("write", err)
	}
	if werr != nil {
		return n, t.fault("write", werr)
	}
	return n, nil
}

// writeAll writes t.wframes: through the ring in batches when the TAP has one, else
// one syscall per frame. It is the raw.Write callback.
func (t *TAP) writeAll(fd uintptr) bool {
	frames := t.wframes
	if t.ur != nil && len(frames) > 1 { // for one frame, writev is cheaper
		for t.wn < len(frames) && t.werr == nil {
			chunk := frames[t.wn:min(len(frames), t.wn+int(t.ur.entries))]
			t.wbase = t.wn
			if err := t.ur.writeBatch(int(fd), chunk, t.vnet, t.urDone); err != nil {
				// Never seen; the chunk's fate is unknown: count it dropped and
				// write one frame per syscall from now on.
				t.Counters.DropTx(frame.DropSendError, uint64(len(chunk)))
				t.log.Warn("TAP io_uring write failed; using writev", "name", t.name, "err", err)
				t.ur.close()
				t.ur = nil
				t.wn += len(chunk)
				break
			}
			if t.werr == nil {
				t.wn += len(chunk)
			}
		}
		if t.wn == len(frames) || t.werr != nil {
			return true
		}
	}
	for t.wn < len(frames) {
		f := &frames[t.wn]
		t.wiov = t.wiov[:0]
		if t.vnet {
			vnethdr.Encode(t.whdr, &f.Meta)
			t.wiov = append(t.wiov, t.whdr)
		}
		t.wiov = appendFrame(t.wiov, f)
		var err error
		if len(t.wiov) == 1 {
			_, err = unix.Write(int(fd), t.wiov[0])
		} else {
			_, err = unix.Writev(int(fd), t.wiov)
		}
		clear(t.wiov) // keep no reference to the caller's buffers
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN || err == unix.ENOBUFS:
			t.Counters.DropTx(frame.DropQueueFull, 1)
		case err == unix.EBADFD || err == unix.ENXIO:
			// The device was deleted. (EIO only means the link is down, e.g.
			// while its host side moves to another netns: dropped below.)
			t.werr = err
			return true
		case err != nil:
			t.Counters.DropTx(frame.DropSendError, 1)
		default:
			t.Counters.TxFrames.Add(1)
			t.Counters.TxBytes.Add(uint64(f.N))
		}
		t.wn++
	}
	return true
}

// appendFrame appends f's bytes to dst: a frame by reference as its head and the
// slices of the packet's own storage, so that the kernel copies it straight from the
// sending stack's buffers (one copy fewer than materializing it first).
func appendFrame(dst [][]byte, f *frame.Frame) [][]byte {
	return f.SlicesAtMost(dst, gather.MaxFrameSlices)
}

// uringDone accounts for the write of t.wframes[t.wbase+i] that returned res.
func (t *TAP) uringDone(i int, res int32) {
	f := &t.wframes[t.wbase+i]
	switch e := unix.Errno(-res); {
	case res >= 0:
		t.Counters.TxFrames.Add(1)
		t.Counters.TxBytes.Add(uint64(f.N))
	case e == unix.EBADFD || e == unix.ENXIO:
		if t.werr == nil {
			t.werr = e
			t.wn = t.wbase + i
		}
	default:
		t.Counters.DropTx(frame.DropSendError, 1)
	}
}

// Close closes the device file; a TAP created by Open disappears with it. Idempotent.
func (t *TAP) Close() error {
	var err error
	t.closeMu.Do(func() {
		t.closed.Store(true)
		err = t.file.Close()
		t.wlock.Lock() // a writer may be using the ring
		if t.ur != nil {
			t.ur.close()
			t.ur = nil
		}
		t.wlock.Unlock()
		t.log.Info("TAP closed", "name", t.name)
	})
	if err != nil {
		return fmt.Errorf("close TAP %q: %w", t.name, err)
	}
	return nil
}
