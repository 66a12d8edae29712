// Package offload does in software what a NIC or the kernel would do for offload
// metadata a port cannot take: it splits GSO superframes (TCP over IPv4/IPv6 and UDP L4)
// into plain frames that fit an MTU, and completes partial (NeedsCsum) checksums.
//
// Both work on Ethernet frames, optionally with one 802.1Q tag before the IP header, and
// on frame.Meta as read from a virtio-net header. Malformed frames or metadata yield an
// error, never a panic. Segments are handed out in pooled frame.Bufs, so steady-state
// segmentation allocates nothing.
package offload
