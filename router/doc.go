// Package router provides vnetd's L3 router: a set of interfaces, each a frame.Port that
// the daemon attaches to a switch, joined by a connected+static routing table (longest
// prefix match for IPv4 and IPv6). The router answers ARP and IPv6 neighbour
// solicitations for its own addresses (and, optionally, proxy ARP), keeps a bounded
// neighbour cache, forwards IP frames itself (TTL/hop-limit decrement with an
// incremental checksum update, MAC rewrite, GSO metadata passed through), sends
// rate-limited ICMP/ICMPv6 errors and answers pings to its own addresses.
//
// Frames written to an interface by its switch are handled inline and the results are
// queued on the egress interface, whose switch reads them with ReadFrames or
// ReadPackets. A TCP or UDP frame that comes by reference (frame.Packet, from a
// namespace NIC) is forwarded so: the router rewrites its head (MACs, TTL, checksum)
// in its own buffer and shares the rest with the sender. With
// Options.Shortcut, a frame whose next hop is an in-process NIC is written straight to
// that NIC instead, with the same bytes the full path would deliver.
package router
