// Package portsec provides port security and administrative link state as a
// frame.Port decorator, the userspace counterpart of Open vSwitch's port_security and
// libvirt's clean-traffic filter plus `ip link set dev X up|down`.
//
// A Port wraps the port a switch (or a pass-through pair) reads from. Frames read from
// the wrapped port (what the VM, TAP or namespace sends) are checked against a Policy:
// the source MAC, the addresses an ARP packet or an NDP message claims (ARP sender,
// NA target, source and target link-layer options) and the IP source. A frame that
// fails is dropped and counted by reason. With DHCP snooping the Port watches the
// DHCPACKs written to the wrapped port and allows the address each assigns for its
// lease.
//
// A Port that is administratively down drops every frame in both directions, counted;
// two Ports joined with Pair (the ends of a pass-through pair) also drop what one end
// sends while the other is down, counted as the sender's tx_dropped, as a kernel veth
// does.
//
// A Port with no policy and its link up costs one atomic load per batch.
package portsec
