// Package gateway provides vnetd's egress gateway: a virtual host on a switch that
// terminates the TCP and UDP flows guests send to addresses it does not own and
// relays each through an ordinary socket of vnetd's own process, as gvproxy,
// slirp4netns and pasta do, so namespaces and VMs reach the host's services (and,
// if policy allows, the host's network) without root.
//
// A TCP SYN is answered only after the host dial succeeded: a refused, failed or
// timed-out dial becomes a RST to the guest. Each UDP flow (guest address and port,
// destination address and port) gets one connected host socket, closed after an idle
// timeout. The host loopback alias (Options.Host, Host6) maps to 127.0.0.1 and ::1.
// The allow and deny prefix lists are checked on the real destination, after that
// mapping and before any host socket exists; denied TCP gets a RST, denied UDP an
// ICMP port unreachable. Options.MaxFlows caps the host sockets open at once.
// ICMP echo to foreign addresses goes through unprivileged ICMP sockets of the host
// (icmp.go) where the host allows them (net.ipv4.ping_group_range); where it does
// not, the request is dropped and counted, never answered on the destination's behalf.
//
// The gVisor side (promiscuous NIC, forwarders) lives in package nsstack; this
// package sees plain net.Conns.
package gateway
