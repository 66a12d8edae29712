// Package frame defines the port contract every part of vnetd speaks: a Port reads and
// writes batches of Ethernet frames into caller-owned buffers, each frame carrying the
// offload metadata of a virtio-net header (GSO type and size, header length, checksum
// start and offset, checksum-needed) so that a 64 KiB TCP superframe can cross a switch
// without being segmented. Between in-process stacks a frame may also travel by
// reference (Packet): its head in the caller's buffer, the rest shared with its sender,
// so that no byte is copied from one namespace to another.
//
// It also provides the small vocabulary shared by every port kind: MAC addresses,
// pooled frame buffers and typed port counters. It imports only the standard library.
package frame
