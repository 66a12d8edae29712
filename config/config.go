package config

import (
	"net/netip"
	"time"

	"github.com/vnetd/vnetd/frame"
)

// Config is a whole vnetd configuration after defaults and validation.
type Config struct {
	// Daemon holds process-wide settings.
	Daemon Daemon
	// Switches are the L2 switches, in file order.
	Switches []Switch
	// Namespaces are the network stacks, in file order.
	Namespaces []Namespace
	// Routers forward IP between switches.
	Routers []Router
	// TAPs are host TAP devices attached to switches.
	TAPs []TAP
	// HostInterfaces are existing host interfaces attached through packet sockets.
	HostInterfaces []HostInterface
	// Sockets are VM socket listeners (QEMU -netdev stream/dgram).
	Sockets []Socket
	// VXLANs are VXLAN tunnel ports on switches.
	VXLANs []VXLAN
	// Forwards are host ports forwarded into namespaces.
	Forwards []Forward
	// Gateways relay guests' flows through host sockets (egress).
	Gateways []Gateway
	// Impairs are link impairments on switch ports and pair ends.
	Impairs []Impair
	// Expects are the reachability checks of `vnetd check`.
	Expects []Expect

	src *source // the tables as written, for export and import (spec.go); nil if not parsed
}

// Daemon is the [daemon] table.
type Daemon struct {
	// Control is the control API socket path; "" means the default (see DefaultControl).
	Control string
	// Metrics is the Prometheus listen address; "" means off.
	Metrics string
	// Web is where the topology page and the read-only API listen; "" means off (the
	// page is also served on the Metrics listener when that is set).
	Web string
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// CaptureRingBytes is every switch port's capture ring size, 0 (the default) for
	// none; a [[switch]] may set its own.
	CaptureRingBytes int
	// CaptureRingSeconds is how long a ring keeps a frame; default 60.
	CaptureRingSeconds int
}

// Switch is one [[switch]].
type Switch struct {
	// Name is unique among switches.
	Name string
	// MACAging is how long an idle MAC stays learned; default 5m.
	MACAging time.Duration
	// MaxMACs caps the FDB; default 8192.
	MaxMACs int
	// PortMaxMACs caps MACs per port; 0 means none (TAPs, host interfaces and VM
	// sockets take EdgeMaxMACs then).
	PortMaxMACs int
	// PortMaxMACsLearnOnly: port_max_macs_violation = "learn-only", frames from
	// sources beyond the cap are forwarded unlearned; default "drop" drops them.
	PortMaxMACsLearnOnly bool
	// CaptureRingBytes and CaptureRingSeconds size each port's capture ring (0 bytes:
	// none); default the [daemon] values.
	CaptureRingBytes   int
	CaptureRingSeconds int
}

// Capture ring bounds: a ring holds at least a superframe, at most 1 GiB per port.
const (
	MinCaptureRingBytes = 128 << 10
	MaxCaptureRingBytes = 1 << 30
)

// Namespace is one [[namespace]].
type Namespace struct {
	// Name is unique among namespaces.
	Name string
	// NICs are the namespace's interfaces.
	NICs []NIC
	// Routes are its static routes.
	Routes []Route
	// Services are built-in servers running inside it.
	Services []Service
}

// NIC is one [[namespace.nic]]. Exactly one of Switch and Peer is set.
type NIC struct {
	// Name is unique within the namespace.
	Name string
	// Switch is the switch the NIC plugs into.
	Switch string
	// PeerNamespace and PeerNIC name the other end of a pass-through pair.
	PeerNamespace, PeerNIC string
	// MAC is explicit or derived from "NS.NIC" with frame.LocalMAC.
	MAC frame.MAC
	// Addresses are the NIC's addresses with their subnets.
	Addresses []netip.Prefix
	// MTU defaults to 1500.
	MTU int
	// VLAN is the access VLAN on the switch port; 0 = untagged.
	VLAN uint16
	// Security is the NIC's port security: on by default, its own MAC and addresses
	// plus those listed.
	Security PortSecurity
	// Kind is NICKindL2 (the default) or NICKindL3, an L3-only NIC: no Ethernet, ARP
	// or NDP, only on a pass-through pair with another L3 NIC.
	Kind string
	// PeerRoutes are, for an L3 NIC, its peer's addresses as host prefixes that none
	// of its own subnets holds: the namespace routes them out of this NIC. On a
	// router leg they also hold a default route (0.0.0.0/0, ::/0) for each family
	// the NIC has an address in, unless the namespace routes that default itself.
	PeerRoutes []netip.Prefix
	// PeerRouter and PeerIface name, for an L3 NIC on a router leg, the router
	// interface at the other end (peer = "ROUTER:INTERFACE"); PeerNamespace is then "".
	PeerRouter, PeerIface string
	// PeerMAC is, for an L3 NIC on a router leg, the leg's MAC: the destination of
	// the NIC's fixed framing.
	PeerMAC frame.MAC
}

// NIC kinds (NIC.Kind).
const (
	NICKindL2 = "l2"
	NICKindL3 = "l3"
)

// Route is a static route of a namespace or a router.
type Route struct {
	// To is the destination prefix.
	To netip.Prefix
	// Via is the next hop; zero for an on-link route.
	Via netip.Addr
	// NIC is the outgoing interface; "" picks the one whose subnet holds Via.
	NIC string
}

// Service kinds.
const (
	KindEcho    = "echo"
	KindDiscard = "discard"
	KindHTTP    = "http"
	KindDHCP    = "dhcp"
	KindDNS     = "dns"
	KindIperf3  = "iperf3"
)

// Service is one [[namespace.service]].
type Service struct {
	// Kind is echo, discard, http, dhcp, dns or iperf3.
	Kind string
	// Listen is the address inside the namespace, e.g. ":80"; defaults per kind
	// (echo :7, discard :9, http :80, dns :53, iperf3 :5201).
	Listen netip.AddrPort
	// NIC is the interface a DHCP server serves.
	NIC string
	// RangeStart and RangeEnd bound a DHCP pool.
	RangeStart, RangeEnd netip.Addr
	// Router is the default gateway a DHCP server hands out.
	Router netip.Addr
	// DNS are the resolvers a DHCP server hands out.
	DNS []netip.Addr
	// Lease is the DHCP lease time; default 1h.
	Lease time.Duration
	// MaxLeases caps the DHCP lease table; default 4096 (dhcpserver.DefaultMaxLeases).
	MaxLeases int
	// Static are fixed DHCP bindings.
	Static []StaticLease
	// Zone is the DNS zone, default "lab.".
	Zone string
	// Records are static DNS records.
	Records []Record
	// Forward makes a dns service resolve names outside Zone through the host's
	// resolvers (those of ResolvConf) instead of answering NXDOMAIN; default off.
	Forward bool
	// ResolvConf names the resolvers Forward uses; default "/etc/resolv.conf".
	ResolvConf string
	// ForwardMaxInFlight caps the forwarded queries waiting for an answer at once;
	// default 256.
	ForwardMaxInFlight int
	// MaxTests caps an iperf3 service's tests running at once; default 4.
	MaxTests int
	// MaxStreams caps the parallel streams of one iperf3 test; default 16.
	MaxStreams int
}

// Defaults of DNS forwarding.
const (
	DefaultResolvConf         = "/etc/resolv.conf"
	DefaultForwardMaxInFlight = 256
)

// StaticLease binds a MAC to an address.
type StaticLease struct {
	// MAC is the client's hardware address.
	MAC frame.MAC
	// Address is the address it always gets.
	Address netip.Addr
}

// Record is a static DNS A or AAAA record.
type Record struct {
	// Name is the fully qualified name.
	Name string
	// Addr is the record's address (A for IPv4, AAAA for IPv6).
	Addr netip.Addr
}

// Router is one [[router]].
type Router struct {
	// Name is unique among routers.
	Name string
	// Interfaces are its legs, one per switch.
	Interfaces []RouterInterface
	// Routes are its static routes.
	Routes []Route
}

// RouterInterface is one [[router.interface]].
type RouterInterface struct {
	// Name is unique within the router; default the switch name.
	Name string
	// Switch is the switch the interface plugs into.
	Switch string
	// MAC is explicit or derived from "ROUTER.NAME".
	MAC frame.MAC
	// Addresses are the interface's addresses.
	Addresses []netip.Prefix
	// MTU defaults to 1500.
	MTU int
	// VLAN is the access VLAN; 0 = untagged.
	VLAN uint16
	// RA sends IPv6 router advertisements (SLAAC for the /64 prefixes, this router
	// as default gateway); default true when the interface has an IPv6 /64.
	RA bool
	// ProxyARP answers ARP requests for addresses routed out of another interface
	// with this interface's MAC; its port security then leaves ARP sender
	// addresses unchecked.
	ProxyARP bool
	// PeerNamespace and PeerNIC name, for a point-to-point L3 leg (peer = "NS:NIC"
	// instead of switch), the kind = "l3" NIC at the other end; Switch is then "".
	PeerNamespace, PeerNIC string
	// PeerMAC and PeerAddresses are that NIC's MAC and addresses: the leg frames
	// every packet to PeerMAC and routes each address as a connected host route.
	PeerMAC       frame.MAC
	PeerAddresses []netip.Addr
}

// L3Leg reports whether the interface is a point-to-point L3 leg.
func (i RouterInterface) L3Leg() bool { return i.PeerNamespace != "" }

// L3Leg reports whether the NIC is an L3 NIC on a router leg.
func (n NIC) L3Leg() bool { return n.PeerRouter != "" }

// TAP is one [[tap]].
type TAP struct {
	// Name is the host interface name.
	Name string
	// Switch is the switch it plugs into.
	Switch string
	// Create makes vnetd create (and remove) the device; default true.
	Create bool
	// MTU defaults to 1500.
	MTU int
	// VLAN is the access VLAN.
	VLAN uint16
	// Trunk, when set, makes the port a trunk carrying these VLANs.
	Trunk []uint16
	// Native is a trunk's untagged VLAN; 0: untagged frames are dropped.
	Native uint16
	// Offload enables vnet_hdr offloads; default true.
	Offload bool
	// Security is the port's source checks; off unless a key sets them.
	Security PortSecurity
	// MaxMACs caps the MACs the switch learns on this port; see EdgeMaxMACs.
	MaxMACs int
	// Queues is the TAP's queue count, 1-MaxTAPQueues (default 1); more than one
	// opens it multi-queue (IFF_MULTI_QUEUE), still as one switch port.
	Queues int
}

// MaxTAPQueues is the most queues a [[tap]] may ask for: each queue holds a
// descriptor and an io_uring ring, and more queues than cores buys nothing (the
// kernel allows 256).
const MaxTAPQueues = 16

// HostInterface is one [[host_interface]].
type HostInterface struct {
	// Name is the host interface name.
	Name string
	// Switch is the switch it plugs into.
	Switch string
	// VLAN is the access VLAN.
	VLAN uint16
	// Trunk, when set, makes the port a trunk carrying these VLANs tagged.
	Trunk []uint16
	// Native is a trunk's untagged VLAN; 0: untagged frames are dropped.
	Native uint16
	// Ring receives through a TPACKET_V3 ring instead of recvmmsg (see package
	// hostif: slower on the hosts measured, so off by default).
	Ring bool
	// Security is the port's source checks; off unless a key sets them.
	Security PortSecurity
	// MaxMACs caps the MACs the switch learns on this port; see EdgeMaxMACs.
	MaxMACs int
}

// Socket is one [[socket]].
type Socket struct {
	// Path is the unix socket path vnetd listens on.
	Path string
	// Switch is the switch every connection plugs into.
	Switch string
	// Protocol is "stream" or "dgram"; default stream.
	Protocol string
	// Security is the source checks of every VM port of the socket; off unless a key
	// sets them.
	Security PortSecurity
	// MaxConns caps a stream socket's VM connections at once (max_conns); 0 means
	// DefaultSocketMaxConns.
	MaxConns int
	// FrameTimeout is how long a stream connection may take to finish a frame it
	// has started (frame_timeout); 0 means DefaultSocketFrameTimeout.
	FrameTimeout time.Duration
	// MaxPeers caps a dgram socket's peers (source addresses) at once (max_peers);
	// 0 means DefaultSocketMaxPeers.
	MaxPeers int
	// PeerIdle removes a dgram peer that sent nothing this long (peer_idle); 0
	// means DefaultSocketPeerIdle.
	PeerIdle time.Duration
	// MaxMACs caps the MACs the switch learns on each VM's port; see EdgeMaxMACs.
	MaxMACs int
	// VLAN is every VM port's access VLAN.
	VLAN uint16
	// Trunk, when set, makes every VM port a trunk carrying these VLANs tagged (a
	// guest with 802.1Q subinterfaces).
	Trunk []uint16
	// Native is a trunk's untagged VLAN; 0: untagged frames are dropped.
	Native uint16
}

// Defaults of the [[socket]] limits (the same as package vmsock's).
const (
	DefaultSocketMaxConns     = 64
	DefaultSocketFrameTimeout = 10 * time.Second
	DefaultSocketMaxPeers     = 64
	DefaultSocketPeerIdle     = 5 * time.Minute
)

// Forward is one [[forward]].
type Forward struct {
	// Listen is the host address.
	Listen netip.AddrPort
	// Namespace is where Target lives.
	Namespace string
	// Target is the address dialled inside the namespace.
	Target netip.AddrPort
	// Protocol is "tcp" or "udp"; default tcp.
	Protocol string
	// MaxConns caps a tcp forward's relayed connections; default 1024 (0 for udp).
	MaxConns int
	// MaxFlows caps a udp forward's flows (client addresses); default 1024 (0 for tcp).
	MaxFlows int
	// UDPIdle ends a udp flow idle this long; default 60s (0 for tcp).
	UDPIdle time.Duration
}

// ForwardSpec is one [[forward]] as written: in the file, or in a control API
// request adding a forward at run time. CheckForward turns it into a Forward.
type ForwardSpec struct {
	Listen    string `toml:"listen" json:"listen"`
	Namespace string `toml:"namespace" json:"namespace"`
	Target    string `toml:"target" json:"target"`
	Protocol  string `toml:"protocol" json:"protocol,omitempty"`
	MaxConns  *int   `toml:"max_conns" json:"max_conns,omitempty"`
	MaxFlows  *int   `toml:"max_flows" json:"max_flows,omitempty"`
	UDPIdle   string `toml:"udp_idle" json:"udp_idle,omitempty"`
}

// Defaults of the [[forward]] limits.
const (
	DefaultForwardMaxConns = 1024
	DefaultForwardMaxFlows = 1024
	DefaultForwardUDPIdle  = 60 * time.Second
	maxForwardLimit        = 1 << 20
)

// Name is a forward's stable identity, e.g. "tcp/127.0.0.1:8080".
func (f Forward) Name() string { return f.Protocol + "/" + f.Listen.String() }
