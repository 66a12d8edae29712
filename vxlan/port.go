package vxlan

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/internal/gather"
)

// Defaults for Options.
const (
	DefaultDstPort      = 4789
	DefaultUnderlayMTU  = 1500
	DefaultMaxMACs      = 4096
	DefaultMACAging     = 5 * time.Minute
	DefaultSourcePorts  = 4
	MaxSourcePorts      = 64
	DefaultSocketBuffer = 4 << 20
	batchLen            = 64 // frames per recvmmsg / sendmmsg
)

// Options configures Open.
type Options struct {
	// Name is the port's name on its switch.
	Name string
	// Local is the address and port the receiving UDP socket binds. The address picks
	// the underlay family (IPv4 or IPv6) and may be unspecified (0.0.0.0, ::); port 0
	// means DstPort, as the kernel's vxlan listens on its dstport.
	Local netip.AddrPort
	// VNI is the VXLAN network identifier, 0-16777215.
	VNI uint32
	// DstPort is the UDP port remote VTEPs listen on; default 4789.
	DstPort uint16
	// Remotes are the static remote VTEPs: broadcast, multicast and unknown unicast go to
	// each (head-end replication). All must be of Local's family.
	Remotes []netip.Addr
	// UnderlayMTU is the MTU of the path to the remotes; default 1500.
	UnderlayMTU int
	// MTU is the inner MTU (the L3 payload of an inner frame); default UnderlayMTU
	// minus 50 (IPv4) or 70 (IPv6). It may not exceed that.
	MTU int
	// MaxMACs caps the learned MAC table; default 4096. Sources beyond it are not
	// learned (counted as learn_limited) and frames to them are flooded.
	MaxMACs int
	// MACAging is how long a learned MAC stays without being heard; default 5m.
	MACAging time.Duration
	// AgeEvery is how often the port ages its table by itself; default MACAging/10 (at
	// least 1s). Negative: never (the caller calls Age).
	AgeEvery time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// SourcePorts is how many sending sockets (so distinct outer UDP source ports, each
	// an ephemeral port the kernel picks) the inner flow hash spreads over; default 4,
	// at most 64.
	SourcePorts int
	// SocketBuffer sets SO_RCVBUF and SO_SNDBUF (forced past the sysctl limits when the
	// process may); default 4 MiB.
	SocketBuffer int
	// NoGRO turns receive coalescing off: by default the receiving socket sets UDP_GRO
	// where the kernel has it, so datagrams its GRO merged (a NIC's, a veth's with GRO
	// on) arrive several per buffer (see gro.go).
	NoGRO bool
	// NoCoalesce turns off merging received TCP segments into superframes (see
	// offload.Coalesce and gro.go); coalescing needs the GRO reader, so NoGRO turns it
	// off too.
	NoCoalesce bool
	// Logger receives lifecycle messages; nil means slog.Default().
	Logger *slog.Logger
}

// remote is one remote VTEP: a static one from Options.Remotes or SetRemotes, or one
// only learned from (dynamic).
type remote struct {
	addr   netip.Addr
	static bool
	sa4    unix.RawSockaddrInet4
	sa6    unix.RawSockaddrInet6
	c      frame.Counters // Rx: decapsulated from it; Tx: sent to it; TxDropped: send failures
}

// remoteSet is the immutable set of remotes the data path reads; replaced whole.
type remoteSet struct {
	static []*remote              // flood targets, in configuration order
	byAddr map[netip.Addr]*remote // static and dynamic
}

// Port is a VXLAN tunnel endpoint as a frame.Port.
type Port struct {
	opts    Options
	info    frame.Info
	v6      bool
	log     *slog.Logger
	rx      *net.UDPConn
	rxRaw   syscall.RawConn
	tx      []*net.UDPConn
	txRaw   []syscall.RawConn
	srcPort []uint16
	fdb     *fdb

	remotes atomic.Pointer[remoteSet]
	rmu     sync.Mutex // serialises remote set changes (SetRemotes, learning a new VTEP)

	closeOnce sync.Once
	closed    atomic.Bool
	stop      chan struct{}
	wg        sync.WaitGroup

	// Counters are the port's traffic counters: Rx frames decapsulated and handed to
	// the switch, Tx frames sent (a flooded frame counts once per remote), RxDropped
	// and TxDropped every frame dropped for any reason below.
	Counters frame.Counters
	stats    stats

	// Reader state (one reader at a time).
	rdmu   sync.Mutex
	rmsgs  []unix.Mmsghdr
	riovs  []unix.Iovec
	rhdrs  []byte
	rnames []unix.RawSockaddrInet6
	last   *remote   // the remote the previous datagram came from
	groOn  bool      // the receiving socket has UDP_GRO
	merge  bool      // the GRO reader coalesces TCP segments (groOn && !NoCoalesce)
	inMax  int       // the largest inner frame taken: the MTU's, room for a tag included
	gro    *groState // the GRO reader's buffers, made on its first read

	// Writer state (under wmu; WriteFrames may be called concurrently: CapInline).
	wmu   sync.Mutex
	hdr   [HeaderLen]byte
	wq    [MaxSourcePorts][]txMsg
	batch gather.Batch
	wmsgs []unix.Mmsghdr
	// Offload state (sendOffloaded, under wmu).
	segs      []*frame.Buf
	one       []txMsg
	oneFrames []frame.Frame
	gsoIov    []unix.Iovec
	noGSO     atomic.Bool // the kernel refused UDP_SEGMENT once
	one1      [1]*remote
}

type txMsg struct {
	f *frame.Frame
	r *remote
}

type stats struct {
	rxMalformed  atomic.Uint64
	rxBadVNI     atomic.Uint64
	rxOversize   atomic.Uint64
	rxUnknown    atomic.Uint64
	txOversize   atomic.Uint64
	txNoRemote   atomic.Uint64
	txFlooded    atomic.Uint64
	txErrors     atomic.Uint64
	txQueueFull  atomic.Uint64
	dynamicLimit atomic.Uint64
	txSegmented  atomic.Uint64
	txGSO        atomic.Uint64
	txMalformed  atomic.Uint64
	rxGRO        atomic.Uint64
	rxCoalesced  atomic.Uint64
}

var _ frame.Port = (*Port)(nil)

// ErrOptions is wrapped by Open's errors about its options.
var ErrOptions = errors.New("bad vxlan options")

// DefaultMTU returns the inner MTU an underlay of underlayMTU leaves (50 or 70 bytes
// less, for an IPv4 or IPv6 underlay).
func DefaultMTU(underlayMTU int, v6 bool) int {
	if v6 {
		return underlayMTU - Overhead6
	}
	return underlayMTU - Overhead
}

func (o *Options) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrOptions, fmt.Sprintf(format, args...))
	}
	if !o.Local.Addr().IsValid() {
		return bad("no local address")
	}
	v6 := o.Local.Addr().Is6() && !o.Local.Addr().Is4In6()
	if o.VNI > MaxVNI {
		return bad("vni %d out of range 0-%d", o.VNI, MaxVNI)
	}
	if o.DstPort == 0 {
		o.DstPort = DefaultDstPort
	}
	if o.Local.Port() == 0 {
		o.Local = netip.AddrPortFrom(o.Local.Addr(), o.DstPort)
	}
	if o.UnderlayMTU == 0 {
		o.UnderlayMTU = DefaultUnderlayMTU
	}
	maxMTU := DefaultMTU(o.UnderlayMTU, v6)
	if maxMTU < 68 {
		return bad("underlay mtu %d leaves no room for an inner frame", o.UnderlayMTU)
	}
	if o.MTU == 0 {
		o.MTU = maxMTU
	}
	if o.MTU < 68 || o.MTU > maxMTU {
		return bad("mtu %d out of range 68-%d (underlay mtu %d minus %d)", o.MTU, maxMTU, o.UnderlayMTU, o.UnderlayMTU-maxMTU)
	}
	if err := checkRemotes(o.Remotes, v6); err != nil {
		return fmt.Errorf("%w: %w", ErrOptions, err)
	}
	if o.MaxMACs <= 0 {
		o.MaxMACs = DefaultMaxMACs
	}
	if o.MACAging <= 0 {
		o.MACAging = DefaultMACAging
	}
	if o.AgeEvery == 0 {
		o.AgeEvery = max(o.MACAging/10, time.Second)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SourcePorts <= 0 {
		o.SourcePorts = DefaultSourcePorts
	}
	if o.SourcePorts > MaxSourcePorts {
		return bad("source ports %d beyond %d", o.SourcePorts, MaxSourcePorts)
	}
	if o.SocketBuffer <= 0 {
		o.SocketBuffer = DefaultSocketBuffer
	}
	return nil
}

func checkRemotes(rs []netip.Addr, v6 bool) error {
	seen := map[netip.Addr]bool{}
	for _, r := range rs {
		switch {
		case !r.IsValid() || r.IsUnspecified() || r.IsMulticast():
			return fmt.Errorf("remote %s is not a unicast address", r)
		case (r.Is6() && !r.Is4In6()) != v6:
			return fmt.Errorf("remote %s is not of the local address's family", r)
		case seen[r]:
			return fmt.Errorf("duplicate remote %s", r)
		}
		seen[r] = true
	}
	return nil
}

// Open binds the port's sockets and starts its ager.
func Open(o Options) (*Port, error) {
	if err := o.check(); err != nil {
		return nil, fmt.Errorf("vxlan %q: %w", o.Name, err)
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	v6 := o.Local.Addr().Is6() && !o.Local.Addr().Is4In6()
	p := &Port{
		opts: o, v6: v6, log: log, fdb: newFDB(o.MaxMACs), stop: make(chan struct{}),
		info:  frame.Info{Name: o.Name, MTU: o.MTU, MaxFrame: frame.MaxFrameFor(o.MTU, false), Caps: frame.CapPacket | frame.CapInline | offloadCaps},
		inMax: frame.MaxFrameFor(o.MTU, false),
		rmsgs: make([]unix.Mmsghdr, batchLen), riovs: make([]unix.Iovec, 2*batchLen),
		rhdrs: make([]byte, HeaderLen*batchLen), rnames: make([]unix.RawSockaddrInet6, batchLen),
		wmsgs: make([]unix.Mmsghdr, batchLen),
	}
	PutHeader(p.hdr[:], o.VNI)
	p.remotes.Store(&remoteSet{byAddr: map[netip.Addr]*remote{}})
	ok := false
	defer func() {
		if !ok {
			p.closeSockets()
		}
	}()
	var err error
	if p.rx, p.rxRaw, err = p.listen(o.Local); err != nil {
		return nil, fmt.Errorf("vxlan %q: listen on %s: %w", o.Name, o.Local, err)
	}
	if !o.NoGRO {
		_ = p.rxRaw.Control(func(fd uintptr) {
			p.groOn = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1) == nil
		})
	}
	if p.merge = p.groOn && !o.NoCoalesce; p.merge {
		p.info.MaxFrame = frame.MaxSuperFrame // what ReadFrames returns may be a superframe
	}
	for range o.SourcePorts {
		c, raw, err := p.listen(netip.AddrPortFrom(o.Local.Addr(), 0))
		if err != nil {
			return nil, fmt.Errorf("vxlan %q: sending socket on %s: %w", o.Name, o.Local.Addr(), err)
		}
		p.tx = append(p.tx, c)
		p.txRaw = append(p.txRaw, raw)
		p.srcPort = append(p.srcPort, uint16(c.LocalAddr().(*net.UDPAddr).Port))
	}
	p.SetRemotes(o.Remotes)
	if o.AgeEvery > 0 {
		p.wg.Add(1)
		go p.ager()
	}
	ok = true
	log.Info("vxlan up", "port", o.Name, "local", o.Local, "vni", o.VNI, "dstport", o.DstPort, "remotes", len(o.Remotes), "mtu", o.MTU, "gro", p.groOn, "coalesce", p.merge)
	return p, nil
}

// listen binds a UDP socket on a with the port's socket options: buffers, and no
// fragmentation of what it sends (DF set, the local MTU enforced, no PMTU cache).
func (p *Port) listen(a netip.AddrPort) (*net.UDPConn, syscall.RawConn, error) {
	network := "udp4"
	if p.v6 {
		network = "udp6"
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(a))
	if err != nil {
		return nil, nil, err
	}
	raw, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		s := int(fd)
		for _, o := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
			if unix.SetsockoptInt(s, unix.SOL_SOCKET, o[0], p.opts.SocketBuffer) != nil {
				_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, o[1], p.opts.SocketBuffer)
			}
		}
		if p.v6 {
			serr = unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_PROBE)
			if serr == nil {
				serr = unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_DONTFRAG, 1)
			}
		} else {
			serr = unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_PROBE)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("socket options: %w", err)
	}
	return c, raw, nil
}

func (p *Port) closeSockets() {
	if p.rx != nil {
		p.rx.Close()
	}
	for _, c := range p.tx {
		c.Close()
	}
}

func (p *Port) ager() {
	defer p.wg.Done()
	t := time.NewTicker(p.opts.AgeEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.Age(p.opts.Now())
		case <-p.stop:
			return
		}
	}
}

// Age forgets learned MACs idle for longer than MACAging at now, and dynamic remotes
// no MAC is learned behind any more.
func (p *Port) Age(now time.Time) {
	if p.fdb.age(now, p.opts.MACAging) == 0 {
		return
	}
	p.rmu.Lock()
	defer p.rmu.Unlock()
	used := map[*remote]bool{}
	p.fdb.mu.RLock()
	for _, e := range p.fdb.entries {
		used[e.remote] = true
	}
	p.fdb.mu.RUnlock()
	cur := p.remotes.Load()
	next := &remoteSet{static: cur.static, byAddr: make(map[netip.Addr]*remote, len(cur.byAddr))}
	for a, r := range cur.byAddr {
		if r.static || used[r] {
			next.byAddr[a] = r
		}
	}
	p.remotes.Store(next)
}

// Name returns the port's name.
func (p *Port) Name() string { return p.opts.Name }

// Info implements frame.Port.
func (p *Port) Info() frame.Info { return p.info }

// VNI returns the port's VNI.
func (p *Port) VNI() uint32 { return p.opts.VNI }

// LocalAddr returns the address the receiving socket is bound to.
func (p *Port) LocalAddr() netip.AddrPort { return p.rx.LocalAddr().(*net.UDPAddr).AddrPort() }

// SourcePorts returns the outer UDP source ports the port sends from.
func (p *Port) SourcePorts() []uint16 { return append([]uint16(nil), p.srcPort...) }

func (p *Port) newRemote(a netip.Addr, static bool) *remote {
	r := &remote{addr: a, static: static}
	port := p.opts.DstPort
	if p.v6 {
		r.sa6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
		r.sa6.Port = port>>8 | port<<8 // network byte order
	} else {
		r.sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.Unmap().As4()}
		r.sa4.Port = port>>8 | port<<8
	}
	return r
}

// SetRemotes replaces the static remote VTEPs while the port runs: remotes kept keep
// their counters; MACs learned behind a remote no longer listed are forgotten.
func (p *Port) SetRemotes(addrs []netip.Addr) error {
	if err := checkRemotes(addrs, p.v6); err != nil {
		return fmt.Errorf("vxlan %q: %w", p.opts.Name, err)
	}
	p.rmu.Lock()
	defer p.rmu.Unlock()
	cur := p.remotes.Load()
	next := &remoteSet{byAddr: make(map[netip.Addr]*remote, len(addrs))}
	for _, a := range addrs {
		r := cur.byAddr[a]
		if r == nil || !r.static {
			r = p.newRemote(a, true)
		}
		next.static = append(next.static, r)
		next.byAddr[a] = r
	}
	p.remotes.Store(next)
	p.fdb.forget(func(r *remote) bool { return next.byAddr[r.addr] == r })
	return nil
}

// remoteFor returns the remote for a datagram's source address, adding a dynamic one
// when none is known (bounded: each holds at least one learned MAC, and there are at
// most MaxMACs of those). It returns nil when the table is full.
func (p *Port) remoteFor(a netip.Addr) *remote {
	if r := p.remotes.Load().byAddr[a]; r != nil {
		return r
	}
	p.rmu.Lock()
	defer p.rmu.Unlock()
	cur := p.remotes.Load()
	if r := cur.byAddr[a]; r != nil {
		return r
	}
	if len(cur.byAddr)-len(cur.static) >= p.opts.MaxMACs {
		p.stats.dynamicLimit.Add(1)
		return nil
	}
	next := &remoteSet{static: cur.static, byAddr: make(map[netip.Addr]*remote, len(cur.byAddr)+1)}
	for k, v := range cur.byAddr {
		next.byAddr[k] = v
	}
	r := p.newRemote(a, false)
	next.byAddr[a] = r
	p.remotes.Store(next)
	return r
}

// Close closes the sockets and stops the ager. Idempotent.
func (p *Port) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		close(p.stop)
		p.closeSockets()
		p.wg.Wait()
	})
	return nil
}

// ReadFrames implements frame.Port: it receives datagrams with recvmmsg, the VXLAN
// header into a slot of the port's and the inner frame straight into frames[i].Buf,
// and keeps those that carry the port's VNI and a whole inner frame.
func (p *Port) ReadFrames(frames []frame.Frame) (int, error) {
	if len(frames) == 0 {
		return 0, nil
	}
	p.rdmu.Lock()
	defer p.rdmu.Unlock()
	for {
		if p.closed.Load() {
			return 0, net.ErrClosed
		}
		var n int
		var errno unix.Errno
		err := p.rxRaw.Read(func(fd uintptr) bool {
			if p.groOn {
				n, errno = p.recvGRO(int(fd), frames)
			} else {
				n, errno = p.recv(int(fd), frames)
			}
			return n > 0 || (errno != 0 && errno != unix.EAGAIN)
		})
		if err != nil {
			if p.closed.Load() || errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed) {
				return 0, net.ErrClosed
			}
			return 0, fmt.Errorf("vxlan %q: read: %w", p.opts.Name, err)
		}
		if n > 0 {
			return n, nil
		}
		// A socket error (an ICMP error queued for the socket, say) is not fatal to a
		// tunnel: the next read goes on.
	}
}
