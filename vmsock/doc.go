// Package vmsock provides frame.Ports for virtual machines attached through unix
// sockets the way QEMU's "-netdev stream" speaks: every frame is a 4-byte big-endian
// length followed by the Ethernet frame. Each connection becomes its own port.
package vmsock
