// Package tap opens host TAP devices as frame.Ports. With Options.Offload the TAP is
// opened with a virtio-net header (IFF_VNET_HDR) and checksum/TSO/USO offloads, so the
// kernel hands vnetd TCP superframes of up to 64 KiB and takes them back whole; the
// header is translated to and from frame.Meta. Reads go through the Go runtime poller,
// so Close unblocks a blocked reader, and each ReadFrames call drains up to len(frames)
// ready frames with non-blocking reads after the first (the first read is tried before
// waiting on the poller). A WriteFrames call of several frames is one io_uring
// submission of one writev per frame instead of one syscall per frame: the descriptor
// is non-blocking, so each write completes (or fails with EAGAIN and is counted as
// dropped) inside io_uring_enter, in order, without io_uring worker threads (none
// appeared on this kernel). A single frame, Options.WritevOnly, or a kernel that
// refuses io_uring (kernel.io_uring_disabled, seccomp) use writev. Reads and writes
// allocate nothing.
//
// OpenQueues opens a multi-queue TAP (IFF_MULTI_QUEUE): one port per queue, each with
// its own file descriptor. The kernel steers each of the host's flows to the queue that
// last wrote one of its frames. OpenGroup joins the queues into one port, Group (what
// vnetd's [[tap]] queues = N uses, so that the switch sees one port per TAP): its
// reader waits on an epoll instance holding every queue (itself on the runtime poller)
// and drains the ready ones, and its writes go to the queue their flow hashes to. Open,
// the single-queue TAP, is vnetd's default: on the 2-core machine below more queues did
// not help (see the measurements).
//
// # Why the open does not go through water
//
// github.com/songgao/water would give the plain (Offload false) open: its Linux open
// yields an *os.File on a non-blocking descriptor, so SyscallConn and the runtime
// poller would work exactly as here, and one poller path would stay. It is not used
// because of what it does around that descriptor (water v0.0.0-20200317203138, checked
// on this kernel by opening through it):
//   - the descriptor is opened without O_CLOEXEC (fdinfo flags 0104002), so every
//     process vnetd starts inherits the TAP and keeps it alive after Close, which breaks
//     "a created TAP disappears at Close";
//   - when TUNSETIFF fails (busy TAP, other flags, no permission) the descriptor is
//     neither closed nor returned: five failed opens left five more descriptors;
//   - it always issues TUNSETPERSIST, clearing the flag when Persist is false, so
//     attaching to an administrator's persistent TAP (Create false) would make it vanish
//     when vnetd closes it;
//   - it cannot set the virtio-net header or offloads, so the offload open would stay
//     separate anyway, and everything else here (netlink for MTU and link state) is
//     Linux-only, so it buys no portability.
//
// Throughput, CPU per GB and where the time goes are measured by bench/tap.sh; the
// figures and the experiments behind these choices are in docs/performance.md.
package tap
