// Package vnethdr encodes and decodes the virtio-net header (struct virtio_net_hdr,
// 10 bytes, little-endian) that the kernel puts in front of every frame of a TAP opened
// with IFF_VNET_HDR and of a packet socket with PACKET_VNET_HDR, translating it to and
// from a frame.Meta. Package tap and package hostif share it.
package vnethdr
