// Package l2switch provides vnetd's L2 learning switch (the directory is switch/;
// switch is a Go keyword).
//
// A Switch moves Ethernet frames between frame.Ports. Each port gets one reader
// goroutine, which reads batches of frames into pooled buffers and forwards them, and
// a writer goroutine, which drains the port's bounded output queue into WriteFrames and
// runs only while frames are queued there (internal/worker.Lazy).
// A frame's buffer changes hands exactly once on the unicast path: the reader gives it
// to the egress port's queue and takes a fresh buffer from the pool, so forwarding
// allocates nothing. Flooded frames are copied once per extra egress port.
//
// Frames by reference: a port that is a frame.PacketReader (a namespace NIC, a router
// interface) is read with ReadPackets, so its frames cross with only their head in the
// switch's buffer and the rest shared with the sender (frame.Packet). They go on so to
// ports that advertise frame.CapPacket, and are made plain (Materialize) for any other
// port, for a flood's copies, for a VLAN tag edit and while a capture is open. A port
// that also advertises frame.CapDirect (its WriteFrames only queues) is written by the
// reader itself for such batches, without its writer goroutine.
//
// Run to completion: a port that advertises frame.CapInline (a TAP, a host interface:
// the kernel takes or drops a write at once) is written by the readers themselves for every frame, plain or
// by reference, as Open vSwitch's userspace datapath transmits from the thread that
// received; its writer goroutine never runs. Between two TAPs this costs 20% less CPU
// per GB than the hand-off to a writer and its wake-ups.
//
// The FDB maps (VLAN, MAC), packed into one uint64, to a port. It is split into at
// least 64 shards (more for a large MaxMACs: about 128 entries each when full). Each
// shard's map is immutable once published behind an atomic pointer, so a lookup or a
// known-source check is one atomic load and a map read, with no lock and no shared
// write. Writers (a new MAC, aging, a port flush) serialise on the shard's mutex and
// publish a modified copy; once the FDB is full an unknown source is counted without
// taking any lock, so a MAC flood cannot contend. Entries hold their port and
// last-seen time in atomics, so a MAC move or a refresh changes the entry, not the map.
// The set of ports is an immutable slice behind an atomic pointer, replaced whole when
// a port is added or removed: forwarding between known MACs takes no lock at all.
//
// VLANs: every frame is classified to one VLAN at ingress. An access port carries one
// VLAN untagged (VLAN 0 in PortConfig means the default VLAN 1); a trunk port carries
// its allowed VLANs tagged and, when Native is set, that VLAN untagged. Tags are pushed
// and popped at egress; buffers keep frame.Headroom bytes in front of each frame so a
// push moves 12 bytes, not the payload.
//
// A reader remembers the last source it learned and the last destination it looked up
// within one batch, so a batch that is one flow costs one FDB read for all its frames
// (BenchmarkForward64Mixed measures the case where it never hits).
//
// Frames whose offloads (frame.Meta) the egress port cannot take (Caps.Accepts) are
// queued whole and segmented (package offload) by the port's writer just before it
// writes them, as Linux segments GSO packets only at the device: the output queue's
// bound counts superframes, and a superframe the software cannot segment (malformed) is
// counted as the "offload" drop of that port.
//
// A port whose read or write fails (a TAP deleted under vnetd, a VM gone) goes down:
// it is logged once, floods skip it, and the MACs learned on it are forgotten, as a
// bridge forgets a disabled port's, so frames for them flood to the live ports until
// their owner is heard again; a frame switched to it in the meantime is counted as a
// queue_full drop. Other ports are not affected.
//
// Capture is a tap on the switch, not a port: with a capture open (Capture,
// CaptureWith), each batch's frames are offered to it where they enter and leave the
// switch, its Matcher (a compiled pcap filter) runs on each frame before the frame is
// copied into its bounded queue, and a slow reader loses captured frames, never
// switched ones. With none open the data path pays one atomic load per batch. With
// Config.Ring set, each port also records its frames into a preallocated capture ring
// (one lock and one copy per frame, no allocation), which DumpRing reads back.
//
// Lock order: Switch.mu (control plane) before an FDB shard's mu. The data path takes
// a shard's mu only to learn a new MAC or move one, one shard at a time.
package l2switch
