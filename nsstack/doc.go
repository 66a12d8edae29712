// Package nsstack provides vnetd's namespaces: isolated network stacks inside one
// process, each a gVisor tcpip/stack with its own loopback, NICs, addresses, routes,
// neighbour table and sockets, as a Linux network namespace gives a container.
//
// A namespace starts with only its loopback (127.0.0.1/8 and ::1). Its NICs are
// frame.Ports: attach one to a switch with l2switch's AddPort, or join two NICs
// directly with Connect (a pass-through pair with nothing in between).
//
// Data path: packets the stack sends go, by reference, into the NIC's bounded outbound
// queue, which whoever drives the port drains with ReadFrames (copying each packet
// straight into the caller's frame) or ReadPackets (handing the packet on by reference,
// frame.Packet, with only its first 64 bytes copied). WriteFrames turns each frame into
// a gVisor packet, sharing the sender's copy-on-write buffers when the frame comes by
// reference from another NIC (through a switch, a router or a pass-through pair) and
// copying it otherwise, and queues it on a bounded inbound queue that the NIC's own
// goroutine delivers into the stack (it runs only while the queue holds packets, so an
// idle NIC costs no goroutine); WriteFrames never enters the stack itself, so a stack
// that answers
// inline (an ICMP error, a RST) can never deadlock against a caller holding its locks.
// Between two namespaces a payload byte is thus never copied (only by the sockets at
// either end, as the kernel does); from or to a TAP it is copied once, into gVisor or
// by the kernel straight out of gVisor's buffers.
// Superframes cross with their GSO metadata: a NIC advertises host GSO to gVisor, so
// TCP hands it up to 64 KiB segments, and accepts such segments inbound with the
// checksum marked as validated.
//
// Cost (BenchmarkNamespaceCreate, 2 cores): a new namespace (loopback, 127.0.0.1/8 and
// ::1) holds about 27 KB and one goroutine (its TCP processor) and takes about 0.2 ms
// to create; 10,000 of them about 290 MB of RSS and 2 s. A NIC with two addresses adds about
// 115 KB, 78 KB of it gVisor's two neighbour caches (ARP and NDP), which preallocate
// maps for 512 entries each; the NIC's two queues cost a few hundred bytes while
// empty (their rings grow as packets queue, up to QueueLen); its delivery
// goroutine runs only while frames come in. Idle namespaces use no CPU: nothing in
// them ticks (no DAD, router solicitation, MLD or IGMP; see TestIdleNamespacesCostNoCPU).
//
// L3-only NICs (NICConfig.Kind = NICL3, see l3.go) carry bare IP with no address
// resolution, so gVisor gives them no neighbour cache: a namespace with one such NIC
// (IPv4 and IPv6 address) holds about 41 KB against 123 KB with an L2 NIC
// (BenchmarkNamespaceCreate "l3" and "nic", 10,000 of them in 451 MB of RSS against
// 1274 MB). At the frame.Port edge they keep a fixed Ethernet header, so two of them
// join with Connect like any NICs.
//
// gVisor types never leave this package: callers see frame.Port, net.Conn,
// net.Listener, net.PacketConn and plain listing structs.
package nsstack
