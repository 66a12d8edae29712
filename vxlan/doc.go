// Package vxlan provides VXLAN tunnel ports (RFC 7348) that stretch a vnetd switch
// across hosts, interoperable with the Linux kernel's vxlan devices and Open vSwitch
// vxlan ports: the same 8-byte header over UDP (port 4789 by default; the kernel's
// legacy 8472 and containerlab's 14789 are just other ports), IPv4 or IPv6 underlay.
//
// A Port is a frame.Port. What the switch writes to it is encapsulated and sent to the
// remote VTEP that owns the inner destination MAC, or, for broadcast, multicast and
// unknown unicast, to every configured remote (head-end replication, as the kernel
// does with several all-zeros FDB entries). What arrives on its UDP socket with the
// port's VNI is decapsulated and read by the switch; the inner source MAC is learned
// against the outer source address (capped by Options.MaxMACs, aged with the time the
// caller passes to Age, every event counted).
//
// Sockets: one UDP socket bound to the local address and port receives (recvmmsg,
// straight into the caller's buffers behind an 8-byte header slot). Frames are sent
// with sendmmsg from a few UDP sockets bound to the local address and an ephemeral
// port each (the kernel's ip_local_port_range, 32768-60999 by default): the inner
// flow's hash picks the socket, so the outer UDP source port follows the inner flow as
// the kernel's does, within Options.SourcePorts distinct values (a userspace UDP socket
// cannot choose its source port per datagram). Frames by reference are sent straight
// from the sending namespace's buffers (gather writes).
//
// MTU: the inner MTU (Info().MTU, the L3 payload of an inner frame) defaults to the
// underlay MTU minus 50 (IPv4: outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14) or 70
// (IPv6 outer header); a frame beyond it is dropped and counted (TxOversize), never
// fragmented: sockets set IP_PMTUDISC_PROBE / IPV6_DONTFRAG semantics so the kernel
// does not fragment either. The port takes TCP superframes and partial checksums
// (CapTSO4, CapTSO6, CapCsum) and segments or completes them here, at the tunnel edge;
// the segments of a superframe go out with UDP GSO (UDP_SEGMENT: one sendmsg for up to
// 64 datagrams) where the kernel has it, else with sendmmsg.
//
// The header is encoded and decoded by a small codec in this package (header.go)
// rather than gopacket's layers.VXLAN: the format is eight bytes with one flag bit and
// a 24-bit VNI, the data path must not allocate, and decoding must not copy the inner
// frame, which gopacket's layer parsing does not promise. FuzzDecap fuzzes it.
package vxlan
