// Package pcapfilter compiles capture filter expressions in the pcap-filter(7)
// language (tcpdump's: `tcp port 80`, `host 10.0.0.10 and not arp`) to classic BPF
// programs (golang.org/x/net/bpf instructions) and runs them with bpf.NewVM, in pure
// Go with no libpcap and no cgo.
//
// Why a compiler of our own: libpcap's pcap_compile is the reference, but every Go
// binding of it (gopacket's pcap package among them) is cgo, which vnetd does not
// use. The one pure-Go pcap-filter compiler on the module proxy,
// github.com/packetcap/go-pcap/filter, is published only as untagged pseudo-versions
// (the newest from May 2024), pulls logrus and a second gopacket fork into the build,
// has no `vlan`, and reports a bad expression without saying where. The subset vnetd
// needs is a small grammar, and golang.org/x/net/bpf (maintained by the Go team,
// already in the module graph through gVisor) provides the instruction set, its
// assembler and a VM that is safe for concurrent use and allocation-free, so this
// package is only the parser and the code generator.
//
// The language, a subset of pcap-filter(7):
//
//	expr      = or ;  or = and { ("or" | "||") and } ;  and = unary { ("and" | "&&") unary }
//	unary     = ("not" | "!") unary | "(" expr ")" | primitive
//	primitive = [proto] [dir] kind ID | proto | "vlan" [ID]
//	proto     = "ether" | "ip" | "ip6" | "arp" | "tcp" | "udp"
//	dir       = "src" | "dst"          (no dir: either)
//	kind      = "host" | "net" | "port" | "portrange"
//
// host takes an IPv4 or IPv6 address (or a MAC after "ether"), net a CIDR prefix,
// port a number and portrange LO-HI. The protocol names alone are ip, ip6, arp, tcp,
// udp, icmp and icmp6. As in tcpdump, an ID standing alone after and/or repeats the
// qualifiers before it (`port 80 or 443`), and the first `vlan` makes the rest of the
// expression look 4 bytes further in, behind the 802.1Q tag (`vlan 10 and tcp`).
// Ports match TCP and UDP over IPv4 (first fragments only) and IPv6 (no extension
// headers), as tcpdump's do.
//
// Keywords are lower case, as libpcap's. Every expression of the package's table test is
// also run through tcpdump (libpcap's compiler) over the same frames, and must match
// the same ones (TestAgainstTcpdump).
//
// A bad expression is a *SyntaxError naming the 1-based column of the offending word.
package pcapfilter
