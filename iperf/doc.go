// Package iperf speaks the iperf3 protocol (esnet iperf 3.x): a Server that the real
// `iperf3 -c` measures (TCP, reverse, UDP, parallel streams) and a Client that measures
// a real `iperf3 -s` or a Server. Both run on any Net, so they work inside a namespace
// stack or on the host alike.
//
// The protocol: a control TCP connection carries a 37-byte cookie (36 characters and a
// NUL), then one-byte states (PARAM_EXCHANGE, CREATE_STREAMS, TEST_START, TEST_RUNNING,
// TEST_END, EXCHANGE_RESULTS, DISPLAY_RESULTS, IPERF_DONE, ...) and JSON documents
// prefixed by their length (4 bytes, big-endian): the client's parameters and both
// sides' results. TCP data streams connect to the same port and send the same cookie;
// a UDP stream sends a 4-byte connect datagram and is answered with a 4-byte reply.
// UDP data datagrams start with the send time (seconds, microseconds) and a packet
// counter (32 or 64 bits), from which the receiver counts lost and out-of-order
// packets and the jitter (RFC 1889).
package iperf
