// Package hostif attaches an existing host network interface that something else owns
// (a QEMU or libvirt TAP, one end of a veth pair, a NIC) as a frame.Port, the way
// `ip link set X master br0` attaches it to a kernel bridge. It backs the daemon's
// [[host_interface]] ports.
//
// # How
//
// Open creates an AF_PACKET socket in the calling thread's network namespace (the
// interface is looked up through that socket, so the port keeps working from any
// thread later), binds it to the interface for every protocol (ETH_P_ALL), and puts the
// interface in promiscuous mode with PACKET_ADD_MEMBERSHIP for as long as the port is
// open. PACKET_IGNORE_OUTGOING keeps the frames the host itself sends out of the
// interface, including the port's own transmissions, from being read back; frames the
// kernel still marks PACKET_OUTGOING are dropped and counted (Port.Outgoing), so nothing
// loops. SO_RCVBUF and SO_SNDBUF are raised to 4 MiB.
//
// Every frame carries a virtio-net header (PACKET_VNET_HDR), translated to and from
// frame.Meta: the TCP and UDP superframes of up to 64 KiB that a TAP's or veth's kernel
// side hands over keep their GSO type and size and partial-checksum offsets and cross
// the switch whole. With Options.Offload false the port completes checksums and segments
// superframes in software (package offload) before handing them on, and advertises no
// offloads for writing. VLAN tags, which the kernel always takes out of received frames
// into metadata, are put back in front of the frame (802.1Q, or 802.1ad when the kernel
// says so) and the offsets moved accordingly.
//
// Receiving is recvmmsg straight into the caller's buffers, up to len(frames) frames
// per call (PACKET_AUXDATA brings the VLAN tag): one copy, and a frame is readable as
// soon as the kernel queues it. Options.Ring receives through a memory-mapped
// TPACKET_V3 ring instead (32 blocks of 256 KiB): the kernel fills a block with as many
// frames as fit and hands it over when it is full or BlockTimeout (1 ms, the kernel's
// smallest) after it was opened; ReadFrames waits for a block through the Go runtime
// poller, copies up to len(frames) frames out and gives each drained block back. The
// ring was meant as the fast path; measured, it is not (below), so it is opt-in.
// Sending is sendmmsg, up to 64 frames per call, each a two-element iovec (the header,
// then the caller's frame); a frame the kernel cannot take now is dropped and counted.
// So a write never blocks, and the port advertises frame.CapInline: the switch's
// readers write to it themselves instead of handing frames to a writer goroutine.
//
// # Measured
//
// bench/hostif.sh: netns A - veth - hostif - switch - hostif - veth - netns B against
// veth + Linux bridge, iperf3, MTU 1500, offload on, medians of 3 interleaved rounds.
// On an otherwise idle 2-core VM (2026-12-01):
//
//	                        recvmmsg   ring    bridge
//	TCP 1 stream, Gbit/s    13.71      11.39   25.11   (0.55x / 0.45x the bridge)
//	TCP 4 streams, Gbit/s   13.25      11.82   26.72   (0.50x / 0.44x)
//	ping RTT, ms            0.31       0.83    0.07
//
// and in three earlier runs on the same VM shared with other work (load average 6-9,
// the bridge itself swinging between 2.2 and 6.8 Gbit/s) recvmmsg beat the ring on one
// stream in every run (0.98x, 1.46x, 0.88x the bridge against 0.79x, 1.15x, 0.60x), and
// on latency by the block timeout the ring adds per hop. That is why recvmmsg is the
// default. Both cost 1.2-1.6 CPU-seconds per GB forwarded, most of it the kernel
// delivering into the receiving namespace inside sendmmsg: on two cores shared with
// both iperf3 ends that, not the read path, is the limit. With OFFLOAD=false (software
// segmentation in the port) one stream ran at 0.17x. BenchmarkRingRead puts the
// ring's user-space receive cost at 30-50 ns per 64-byte frame and 1-2 us per 64 KB
// superframe (the copy, about 27 GB/s), 0 allocations.
//
// Written by the switch's readers (CapInline) rather than each port's writer goroutine,
// two runs of 3 rounds alternated with the writer on a shared host (2026-12-02), Gbit/s
// per round: recvmmsg 1 stream 8.3/9.8/11.8/10.7/13.0/9.5 vs 9.9/5.4/10.1/8.9/9.1/9.1,
// 4 streams 8.8/10.2/11.3/10.5/9.7/11.0 vs 10.6/5.9/9.9/9.4/9.0/9.8; the ring 1 stream
// 10.0/8.2/10.5/11.3/11.1/6.7 vs 9.2/2.5/8.3/7.9/8.4/3.5 (the bridge 16-21 throughout).
//
// # Faults
//
// When the interface is deleted or moved to another namespace (ip link del, or QEMU
// exiting and taking its TAP along), the kernel unbinds the socket: ReadFrames and
// WriteFrames return errors wrapping ErrDown from then on, which the switch treats as
// the port going down; it is logged once and counted in Port.Faults, and nothing else is
// affected. An interface that is merely set down is waited for (logged, counted in
// Port.Downs, frames written meanwhile dropped) and the port carries traffic again once
// it is up. Open reports a missing interface (ErrNoInterface), a missing CAP_NET_RAW or
// CAP_NET_ADMIN (ErrPermission), an interface that is down (ErrInterfaceDown, unless
// Options.SetUp) and non-Ethernet interfaces (ErrNotEthernet) with the interface's name.
// Close leaves the interface as it found it, promiscuity included.
//
// Unlike a bridge port, an attached interface stays an ordinary interface of its
// namespace: that namespace's own stack also sees the frames arriving on it (and its
// own transmissions, such as IPv6 neighbour discovery from a link-local address, go out
// of it unseen by the port). Give it no addresses; disable IPv6 on it
// (net.ipv6.conf.NAME.disable_ipv6=1) to keep the host quiet on the segment.
package hostif
