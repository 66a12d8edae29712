package nsstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strconv"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// resolve parses "host:port" for network ("tcp", "tcp4", "tcp6", "udp"...). An empty
// host means any address; the network's digit, or the host's family, picks IPv4 or
// IPv6 (plain "tcp" with no host listens on IPv6 and IPv4 both).
func resolve(network, addr string) (tcpip.FullAddress, tcpip.NetworkProtocolNumber, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return tcpip.FullAddress{}, 0, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return tcpip.FullAddress{}, 0, fmt.Errorf("bad port %q", portStr)
	}
	fa := tcpip.FullAddress{Port: uint16(port)}
	proto := tcpip.NetworkProtocolNumber(ipv6.ProtocolNumber)
	if network[len(network)-1] == '4' {
		proto = ipv4.ProtocolNumber
	}
	if host != "" {
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return tcpip.FullAddress{}, 0, fmt.Errorf("bad address %q (names are not resolved)", host)
		}
		ip = ip.Unmap()
		proto = protoOf(ip)
		// 0.0.0.0 and :: mean any address, as in the kernel: gVisor wants them
		// empty, or it would bind to the literal zero address and match nothing.
		if !ip.IsUnspecified() {
			fa.Addr = toTCPIP(ip)
		}
	}
	return fa, proto, nil
}

// Listen listens for TCP connections on addr ("10.0.0.10:80", ":80", "[::]:80"). The
// listener has SO_REUSEADDR, as Go's net.Listen sets on the host: a server that closed
// connections first (their ends wait in TIME_WAIT) can listen on its port again at
// once, which a daemon reload restarting a service needs. Two listeners on one address
// and port are still refused; unlike Linux, gVisor lets a wildcard listener join one on
// a specific address of the same port under SO_REUSEADDR.
func (ns *Namespace) Listen(network, addr string) (net.Listener, error) {
	fa, proto, err := resolve(network, addr)
	if err != nil {
		return nil, fmt.Errorf("namespace %q: listen %s %s: %w", ns.name, network, addr, err)
	}
	var wq waiter.Queue
	ep, e := ns.st.NewEndpoint(tcp.ProtocolNumber, proto, &wq)
	if e != nil {
		return nil, fmt.Errorf("namespace %q: listen %s %s: %s", ns.name, network, addr, e)
	}
	ep.SocketOptions().SetReuseAddress(true)
	if e := ep.Bind(fa); e != nil {
		ep.Close()
		return nil, fmt.Errorf("namespace %q: listen %s %s: bind: %s", ns.name, network, addr, e)
	}
	if e := ep.Listen(listenBacklog); e != nil {
		ep.Close()
		return nil, fmt.Errorf("namespace %q: listen %s %s: %s", ns.name, network, addr, e)
	}
	return gonet.NewTCPListener(ns.st, &wq, ep), nil
}

// listenBacklog is a listener's accept backlog, gonet.ListenTCP's.
const listenBacklog = 4096

// Dial opens a TCP connection from the namespace.
func (ns *Namespace) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	fa, proto, err := resolve(network, addr)
	if err != nil || fa.Addr.Len() == 0 {
		return nil, fmt.Errorf("namespace %q: dial %s %s: needs an address: %v", ns.name, network, addr, err)
	}
	c, err := gonet.DialContextTCP(ctx, ns.st, fa, proto)
	if err != nil {
		return nil, fmt.Errorf("namespace %q: dial %s %s: %w", ns.name, network, addr, err)
	}
	return c, nil
}

// ListenPacket opens a UDP socket bound to addr.
func (ns *Namespace) ListenPacket(network, addr string) (net.PacketConn, error) {
	fa, proto, err := resolve(network, addr)
	if err != nil {
		return nil, fmt.Errorf("namespace %q: listen %s %s: %w", ns.name, network, addr, err)
	}
	c, err := gonet.DialUDP(ns.st, &fa, nil, proto)
	if err != nil {
		return nil, fmt.Errorf("namespace %q: listen %s %s: %w", ns.name, network, addr, err)
	}
	return c, nil
}

// PacketOptions refine a UDP socket opened with ListenPacketWith.
type PacketOptions struct {
	// NIC binds the socket to one NIC (SO_BINDTODEVICE): it receives only what
	// arrives there and sends only through it; "" means any NIC.
	NIC string
	// Broadcast allows sends to broadcast addresses (SO_BROADCAST), which a
	// DHCP server needs for clients that have no address yet.
	Broadcast bool
}

// ListenPacketWith opens a UDP socket bound to addr with the given options.
func (ns *Namespace) ListenPacketWith(network, addr string, o PacketOptions) (net.PacketConn, error) {
	fail := func(err error) (net.PacketConn, error) {
		return nil, fmt.Errorf("namespace %q: listen %s %s: %w", ns.name, network, addr, err)
	}
	fa, proto, err := resolve(network, addr)
	if err != nil {
		return fail(err)
	}
	if o.NIC != "" {
		n, ok := ns.NIC(o.NIC)
		if !ok {
			return fail(fmt.Errorf("no NIC %q", o.NIC))
		}
		fa.NIC = n.id
	}
	var wq waiter.Queue
	ep, terr := ns.st.NewEndpoint(udp.ProtocolNumber, proto, &wq)
	if terr != nil {
		return fail(errors.New(terr.String()))
	}
	ep.SocketOptions().SetBroadcast(o.Broadcast)
	if fa.NIC != 0 {
		if terr := ep.SocketOptions().SetBindToDevice(int32(fa.NIC)); terr != nil {
			ep.Close()
			return fail(errors.New(terr.String()))
		}
	}
	if terr := ep.Bind(fa); terr != nil {
		ep.Close()
		return fail(errors.New(terr.String()))
	}
	return gonet.NewUDPConn(&wq, ep), nil
}

type writerBuf []byte

func (w *writerBuf) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }

type byteReader struct {
	b []byte
}

func bytesReader(b []byte) *byteReader { return &byteReader{b} }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func (r *byteReader) Len() int { return len(r.b) }

// Socket is one open transport endpoint, like a line of `ss`.
type Socket struct {
	Proto  string `json:"proto"`
	State  string `json:"state"`
	Local  string `json:"local"`
	Remote string `json:"remote,omitempty"`
}

// Sockets lists the namespace's TCP and UDP endpoints.
func (ns *Namespace) Sockets() []Socket {
	var out []Socket
	// A dual-stack endpoint is registered once per network protocol; list it once.
	seen := map[stack.TransportEndpoint]bool{}
	for _, ep := range ns.st.RegisteredEndpoints() {
		if seen[ep] {
			continue
		}
		seen[ep] = true
		info, ok := ep.(interface{ Info() tcpip.EndpointInfo })
		if !ok {
			continue
		}
		ti, ok := info.Info().(*stack.TransportEndpointInfo)
		if !ok {
			continue
		}
		s := Socket{Local: addrPort(ti.ID.LocalAddress, ti.ID.LocalPort)}
		if ti.ID.RemotePort != 0 {
			s.Remote = addrPort(ti.ID.RemoteAddress, ti.ID.RemotePort)
		}
		switch ti.TransProto {
		case tcp.ProtocolNumber:
			s.Proto = "tcp"
			if st, ok := ep.(interface{ State() uint32 }); ok {
				s.State = tcp.EndpointState(st.State()).String()
			}
		case udp.ProtocolNumber:
			s.Proto = "udp"
			s.State = "UNCONN"
		default:
			continue
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Proto != out[j].Proto {
			return out[i].Proto < out[j].Proto
		}
		return out[i].Local < out[j].Local
	})
	return out
}

func addrPort(a tcpip.Address, port uint16) string {
	if a.Len() == 0 {
		return "*:" + strconv.Itoa(int(port))
	}
	return netip.AddrPortFrom(fromTCPIP(a), port).String()
}
