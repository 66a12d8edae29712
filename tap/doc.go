// Package tap opens host TAP devices as frame.Ports. With Options.Offload the TAP is
// opened with a virtio-net header (IFF_VNET_HDR) and checksum/TSO/USO offloads, so the
// kernel hands vnetd TCP superframes of up to 64 KiB and takes them back whole; the
// header is translated to and from frame.Meta. Reads go through the Go runtime poller,
// so Close unblocks a blocked reader, and each ReadFrames call drains up to len(frames)
// ready frames with non-blocking reads after the first.
//
// Measured with bench/tap.sh on a shared 2-core VM (iperf3, MTU 1500, netns A - TAP -
// switch - TAP - netns B vs veth + Linux bridge): offload on, 1 stream 6.2 vs 12.1
// Gbit/s (0.51x), 4 streams 11.1 vs 19.3 (0.57x), 64-byte UDP 62k vs 120k pps (0.52x);
// offload off, 1 stream 1.4 Gbit/s (0.12x). Reads of up to 64 frames per call versus 1
// per call were within the run-to-run noise of the shared machine.
package tap
