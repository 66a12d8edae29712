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
// last wrote one of its frames. Open, the single-queue TAP, is what vnetd uses: on the
// 2-core machine below more queues did not help (see the measurements).
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
// # Measurements (issue 4)
//
// bench/tap.sh: netns A - TAP - vnetd switch - TAP - netns B versus the same netns over
// veth + a Linux bridge, iperf3, MTU 1500, offload on; and a kernel netns on a TAP to a
// vnetd namespace on the same switch, TCP both ways, timed at the receiving end. The
// machine is a shared 2-core VM whose other users kept both cores busy for most of the
// measuring (the bridge's own 1-stream figure ranged 4.8-12.1 Gbit/s), so every A/B
// below alternated the two variants with a bridge run in each round, and besides
// throughput it compares CPU per GB moved (iperf3 client and server plus the vnetd
// helper), which holds up better under shared load.
//
// Where the time goes (perf on the whole machine, go tool pprof on the helper, 1 TCP
// stream): the helper spends about 75% of its samples in readv/writev; the writev
// includes the receiving netns's whole TCP input, which the bridge path does in
// softirq. The Go scheduler (findRunnable, futex, netpoll) takes 10-15%, and context
// switches are expensive on this paravirtualised guest: 10,000-19,000 per second for
// about 10,000 superframes per second. The kernel's copies into and out of vnetd
// (_copy_to_iter, _copy_from_iter) are about 8% of all samples. Per GB moved the TAP
// path costs about twice the bridge path's CPU (1,800-2,550 vs 880-1,290 ms/GB with
// both cores busy), which is what keeps the 1-stream ratio near 0.5 whenever the
// machine is CPU-bound. With 64-byte UDP the helper's readv and writev take 80% of its
// samples but the kernel work inside them (do_readv, do_writev) only 43%: entering and
// leaving the kernel, expensive on this guest, is about 37% of the helper. In that
// test the switch hands the TAP 20-30 frames per WriteFrames call (tapswitch -stats),
// in a TCP stream about 3.
//
// Candidates, each A/B alternated 3-5 rounds (Gbit/s or pps per round, A vs B):
//   - One io_uring submission per WriteFrames call instead of one writev per frame:
//     kept. tapswitch -writecost 5 (CPU per 60-byte frame written, kernel drops it
//     at once): batches of 1, 4, 16, 64 cost 2.8, 1.1, 0.50, 0.36 us per frame vs
//     2.9, 2.6, 2.2, 2.1 with writev (a single frame goes by writev: the ring costs
//     more there). End to end, under the shared load, 6 rounds: TCP 1 stream
//     4.29/3.95/3.29/4.94/4.74/4.41 vs 3.44/3.22/2.46/4.71/4.63/3.83 Gbit/s (higher in
//     every round, median +19%), median 1,700 vs 1,860 ms/GB; 64-byte UDP
//     24.7/36.8/8.1/40.9/28.6/32.8k vs 30.8/27.4/11.9/49.2/25.5/23.7k pps, a draw in
//     the noise.
//   - No allocation per ReadFrames/WriteFrames (the poller callbacks were closures
//     escaping to the heap, 1.7% of the helper's CPU): kept.
//   - Spinning instead of parking when a read finds nothing (runtime.Gosched and retry,
//     20 times): 5.8/4.5/4.0/5.4 vs 6.7/5.0/4.3/4.2 Gbit/s, helper CPU 77-104% vs
//     56-94%: no consistent gain for more CPU; dropped.
//   - Returning right after the first frame when the read had to wait for the poller
//     (saving the read that finds the ring empty): 5.2/3.5/3.2/2.5 vs 3.5/3.0/3.2/3.5
//     Gbit/s, 1,960-2,170 vs 1,830-2,040 ms/GB: no gain; dropped.
//   - Frames per read, 1 vs 64: TCP 3.2/4.0/2.4 vs 3.6/3.7/2.8 Gbit/s (2,140-2,330 vs
//     2,400-2,550 ms/GB), 64-byte UDP 17/21/31k vs 26/18/16k pps: within the noise (a
//     TCP stream yields about one superframe per read either way). The switch's 64
//     stays.
//   - Multi-queue, 2 queues per TAP, 4 streams: with each queue a switch port
//     4.5/4.4/4.6 vs 6.5/2.0/4.9 Gbit/s (1,570-1,740 vs 1,390-1,960 ms/GB); with queue
//     i of one TAP joined straight to queue i of the other 4.8/4.4/4.0 vs 5.2/4.7/4.6.
//     No win on 2 cores, so not used by default; OpenQueues and bench/tapswitch
//     -queues stay for hosts with more cores.
//   - Host-side qdisc noqueue instead of pfifo_fast on the TAPs: TCP 5.4/4.9/4.3 vs
//     4.9/4.8/3.9 Gbit/s, UDP 48/44/23k vs 39/50/29k pps: within the noise; the host's
//     qdisc is left to the host.
//   - txqueuelen 10,000 instead of 1,000 (the size of the TAP's ring): 64-byte UDP
//     16/7/17k vs 17/14/14k pps: no gain (TCP saw no ring drops at 1,000).
//   - TUNSETSNDBUF: TUNGETSNDBUF reports INT_MAX by default, so it can only lower the
//     limit on what vnetd writes; nothing to gain. 64 KiB superframes are already read
//     whole (the switch's read buffers are MaxSuperFrame long).
//   - Outside this package, with bench/tapswitch: GOMAXPROCS=1 for the helper, 10
//     rounds: median 4.5 vs 4.4 Gbit/s, about 8% less CPU and 35% fewer context
//     switches per Gbit/s moved. No switch in between (-direct: each TAP's reader
//     writes into the other TAP): 4.9/3.6/4.1/4.7 vs 5.0/4.9/4.0/3.5 Gbit/s and 12%
//     less CPU per GB (median 1,650 vs 1,880 ms/GB), the cost of the switch's
//     reader-to-writer hand-off. Both are for the daemon and the switch to decide.
//   - Run to completion (2026-12-02): the TAP advertises frame.CapInline (its write
//     never blocks, TUNGETSNDBUF being INT_MAX, and is safe for concurrent use), so
//     the switch's readers write frames to it themselves, as -direct does, instead of
//     queueing them for its writer goroutine. TCP 1 stream, 3 rounds alternated with
//     the hand-off: 10.9/11.4/12.5 vs 9.8/8.5/9.8 Gbit/s, helper CPU 654/626/566 vs
//     791/901/786 ms/GB (the same as -direct: 671/609/608); in bench/tap.sh (2 runs
//     each) 64-byte UDP 0.74/0.69 vs 0.56/0.55 of the bridge, 4 streams 0.58/0.60 vs
//     0.49/0.46. Namespace -> kernel (the NIC's reader now writes the TAP) 4 rounds:
//     14.7/15.7/13.7/14.4 vs 14.2/9.8/14.5/13.2 Gbit/s; kernel -> namespace is
//     unchanged (a NIC is written inline only for frames by reference). Kept.
//
// Results. Before this work, at a quieter moment (10:18 UTC, the bridge at full
// speed): 1 stream 6.34 vs 11.56 Gbit/s (0.55), 4 streams 10.96 vs 17.88 (0.61),
// 64-byte UDP 62.7k vs 139.0k pps (0.45). With it (bench/tap.sh 5, three runs at
// 10:58-11:03 UTC while other tests and TCG VMs kept both cores busy; the bridge's own
// 1-stream figure fell to 2.0-2.6 Gbit/s): 1 stream 3.57/2.04/2.26 Gbit/s (ratio
// 1.80/1.01/0.88, which means little while the bridge is starved), CPU per GB 1,878/
// 2,238/2,086 vs the bridge's 1,022/1,188/1,235 ms (bridge/tap 0.54/0.53/0.59); 4
// streams 4.50/4.34/3.52 Gbit/s (1.26/1.06/1.15); 64-byte UDP 17.9/22.3/16.4k pps
// (0.59/0.78/0.72); kernel to vnetd namespace 3.39/3.83/1.66 Gbit/s and namespace to
// kernel 5.99/4.87/6.40 (the same meter kernel to kernel over the bridge: 5.84/5.27/
// 3.79 and 3.95/5.73/4.35). With GOMAXPROCS=1, two runs: 1 stream 4.06/5.78 Gbit/s
// (0.62/0.67), bridge/tap CPU 0.60/0.50, namespace to kernel 10.27/6.87 Gbit/s, kernel
// to namespace 4.32/2.67. The kernel-to-namespace direction is bound by the namespace
// side (in its profile the TAP's readv is 28% of the helper; the NIC's delivery into
// gVisor and its copies about half).
//
// Not met: TAP<->TAP at 0.8x the bridge and a namespace at 10 Gbit/s each way. The
// figure that does not move with the load, CPU per GB, puts the TAP path at 1.7-2x the
// bridge's; what is left to cut lies in the per-frame kernel work and context
// switches, the switch's hand-off and GOMAXPROCS, not in this package's reads and
// writes (one syscall per frame, none wasted beyond the read that finds the ring
// empty, no allocation).
package tap
