// Package veth provides the pass-through pair, vnetd's userspace veth: two connected
// ports where every frame written on one end is read, in order and with its offload
// metadata, from the other. Namespaces joined by a pair need no switch between them.
package veth
