// Package tap opens host TAP devices as frame.Ports. With Options.Offload the TAP is
// opened with a virtio-net header (IFF_VNET_HDR) and checksum/TSO/USO offloads, so the
// kernel hands vnetd TCP superframes of up to 64 KiB and takes them back whole; the
// header is translated to and from frame.Meta. Reads go through the Go runtime poller,
// so Close unblocks a blocked reader, and each ReadFrames call drains up to len(frames)
// ready frames with non-blocking reads after the first.
package tap
