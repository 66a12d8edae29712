// Package hostif attaches an existing host network interface that something else owns
// (a QEMU or libvirt TAP, one end of a veth pair, a NIC) as a frame.Port, the way
// `ip link set X master br0` attaches it to a kernel bridge.
package hostif
