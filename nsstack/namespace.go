package nsstack

import (
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/link/loopback"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// Options configure a namespace.
type Options struct {
	// Name names the namespace in logs, port names and listings.
	Name string
	// Logger receives lifecycle events; default slog.Default().
	Logger *slog.Logger
	// TCPProcessors is how many TCP processor goroutines the stack runs. gVisor's
	// default is one per GOMAXPROCS, which makes a namespace cost 64 goroutines on a
	// 64-core host; vnetd's namespaces are many and mostly idle, so the default here is
	// 1, the same on every host. Raise it for a namespace that carries many busy flows.
	TCPProcessors int
	// Terminating builds the namespace for Terminate: traffic between its own
	// addresses is not short-circuited inside the stack (gVisor's HandleLocal is off),
	// since a promiscuous NIC would otherwise take every destination, the guests'
	// included, for one of its own.
	Terminating bool
}

const loopbackNIC tcpip.NICID = 1

// Namespace is one isolated network stack. Its methods are safe for concurrent use.
type Namespace struct {
	name string
	log  *slog.Logger
	st   *stack.Stack

	mu     sync.Mutex
	nics   map[string]*NIC // guarded by mu
	nextID tcpip.NICID     // guarded by mu
	routes []Route         // guarded by mu: the configured routes, in order
	closed bool            // guarded by mu

	terminating bool // Options.Terminating
}

// newStack builds a gVisor stack whose TCP protocol runs procs processor goroutines
// (see withProcs for how).
func newStack(procs int, handleLocal bool) *stack.Stack {
	opts := stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4Protocol(), ipv6.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		HandleLocal:        handleLocal,
		RandSource:         newPCGSource(),
		DefaultIPTables:    noIPTables,
	}
	var st *stack.Stack
	withProcs(procs, func() { st = stack.New(opts) })
	return st
}

// noIPTables gives a stack an empty, never-configured IPTables. gVisor's default
// (stack.DefaultTables) builds the four built-in tables with their accept rules for
// both families, 8.5 KB per stack, although an IPTables that was never replaced is
// skipped on every hook (IPTables.modified is false) and its connection tracking is
// only set up by ReplaceTable. vnetd never configures netfilter in a namespace (no
// gVisor type leaves this package); a feature that does must switch back to
// stack.DefaultTables, since ReplaceTable on this one would lack conntrack's clock.
func noIPTables(tcpip.Clock, *mrand.Rand) *stack.IPTables { return new(stack.IPTables) }

// New creates a namespace holding only its loopback interface.
func New(o Options) (*Namespace, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.TCPProcessors <= 0 {
		o.TCPProcessors = 1
	}
	st := newStack(o.TCPProcessors, !o.Terminating)
	ns := &Namespace{name: o.Name, log: o.Logger.With("namespace", o.Name), st: st,
		nics: make(map[string]*NIC), nextID: loopbackNIC + 1, terminating: o.Terminating}
	if err := ns.init(); err != nil {
		st.Close()
		st.Wait()
		return nil, fmt.Errorf("namespace %q: %w", o.Name, err)
	}
	return ns, nil
}

func (ns *Namespace) init() error {
	if err := tuneTCP(ns.st); err != nil {
		return err
	}
	if e := ns.st.CreateNICWithOptions(loopbackNIC, loopback.New(), stack.NICOptions{Name: "lo"}); e != nil {
		return fmt.Errorf("create loopback: %s", e)
	}
	for _, p := range []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("::1/128")} {
		if err := ns.addAddress(loopbackNIC, p); err != nil {
			return err
		}
	}
	return nil
}

// tuneTCP sets the namespace's TCP options.
func tuneTCP(st *stack.Stack) error {
	opts := []tcpip.SettableTransportProtocolOption{
		// SACK recovers from several losses per window without a timeout; the
		// kernel has it on by default and peers expect it.
		new(tcpip.TCPSACKEnabled),
		// Buffers: start small (most namespaces are idle, and gVisor allocates lazily
		// anyway), let auto-tuning (moderate receive buffer) grow a busy flow to 8 MiB,
		// enough for 10+ Gbit/s at in-process RTTs. The same ranges Tailscale uses.
		&tcpip.TCPReceiveBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcp.DefaultReceiveBufferSize, Max: 8 << 20},
		&tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcp.DefaultSendBufferSize, Max: 6 << 20},
		new(tcpip.TCPModerateReceiveBufferOption),
		// No RACK loss detection (TCPRecovery 0), so no tail loss probes: gVisor times
		// a probe at 2 x SRTT with no floor (Linux: at least 10 ms), and in-host RTTs
		// are ~100 us, so any scheduling hiccup of a fraction of a millisecond fired
		// probes and spurious retransmissions. Measured namespace -> kernel over a TAP,
		// 3 interleaved rounds on a loaded 2-core VM: 8.3/4.0/5.2 Gbit/s without RACK
		// against 4.0/3.7/1.6 with it (the kernel answering every round with DSACKs
		// for data it already had). Loss is recovered by SACK and duplicate ACKs, then
		// the retransmission timeout, as before RACK existed.
		new(tcpip.TCPRecovery),
	}
	*opts[0].(*tcpip.TCPSACKEnabled) = true
	*opts[3].(*tcpip.TCPModerateReceiveBufferOption) = true
	*opts[4].(*tcpip.TCPRecovery) = 0
	for _, o := range opts {
		if e := st.SetTransportProtocolOption(tcp.ProtocolNumber, o); e != nil {
			return fmt.Errorf("set TCP option %T: %s", o, e)
		}
	}
	return nil
}

// Name returns the namespace's name.
func (ns *Namespace) Name() string { return ns.name }

// ErrClosed is returned by a closed namespace's methods.
var ErrClosed = errors.New("namespace closed")

// Close removes every NIC, closes every socket and frees the stack. It is idempotent.
func (ns *Namespace) Close() error {
	ns.mu.Lock()
	if ns.closed {
		ns.mu.Unlock()
		return nil
	}
	ns.closed = true
	nics := ns.nics
	ns.nics = nil
	ns.mu.Unlock()
	for _, n := range nics {
		n.Close()
	}
	ns.st.Close()
	ns.st.Wait()
	ns.st.Destroy()
	for _, n := range nics {
		n.wait()
	}
	return nil
}

func toTCPIP(a netip.Addr) tcpip.Address { return tcpip.AddrFromSlice(a.AsSlice()) }

func fromTCPIP(a tcpip.Address) netip.Addr {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return ip
}

func protoOf(a netip.Addr) tcpip.NetworkProtocolNumber {
	if a.Is4() {
		return ipv4.ProtocolNumber
	}
	return ipv6.ProtocolNumber
}
