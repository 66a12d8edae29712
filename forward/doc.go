// Package forward provides host-to-namespace port forwards: a host TCP or UDP listener
// whose connections (or datagram flows) are relayed to a target dialled inside a
// namespace, with half-close handled and typed counters.
package forward
