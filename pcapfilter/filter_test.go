package pcapfilter

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
)

// build serializes ls into a frame, computing lengths and checksums.
func build(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("SerializeLayers: %v", err)
	}
	return buf.Bytes()
}

func ethFor(et layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: et}
}

func ip4(src, dst string, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
}

func ip6(src, dst string, nh layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: nh, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
}

// frames builds the frames every expression is tried against, by name.
func frames(t testing.TB) map[string][]byte {
	fs := map[string][]byte{}
	tcp4 := func(src, dst string, sport, dport layers.TCPPort) []byte {
		ip := ip4(src, dst, layers.IPProtocolTCP)
		tcp := &layers.TCP{SrcPort: sport, DstPort: dport, SYN: true, Window: 1024}
		tcp.SetNetworkLayerForChecksum(ip)
		return build(t, ethFor(layers.EthernetTypeIPv4), ip, tcp)
	}
	fs["tcp4 80"] = tcp4("10.0.0.10", "10.0.1.10", 40000, 80)
	fs["tcp4 reply"] = tcp4("10.0.1.10", "10.0.0.10", 80, 40000)
	fs["tcp4 22"] = tcp4("10.0.0.20", "192.168.5.5", 50000, 22)
	{ // an IPv4 header with options: the port is 4 bytes further in
		ip := ip4("10.0.0.20", "10.0.1.10", layers.IPProtocolTCP)
		ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		tcp := &layers.TCP{SrcPort: 1234, DstPort: 8080, SYN: true}
		tcp.SetNetworkLayerForChecksum(ip)
		fs["tcp4 opts 8080"] = build(t, ethFor(layers.EthernetTypeIPv4), ip, tcp)
	}
	{ // a non-first fragment of a TCP datagram: its payload is no TCP header
		ip := ip4("10.0.0.10", "10.0.1.10", layers.IPProtocolTCP)
		ip.FragOffset = 185
		fs["tcp4 frag"] = build(t, ethFor(layers.EthernetTypeIPv4), ip, gopacket.Payload{0, 80, 0, 80, 1, 2, 3, 4})
	}
	{
		ip := ip4("10.0.0.20", "10.0.0.53", layers.IPProtocolUDP)
		udp := &layers.UDP{SrcPort: 5353, DstPort: 53}
		udp.SetNetworkLayerForChecksum(ip)
		fs["udp4 53"] = build(t, ethFor(layers.EthernetTypeIPv4), ip, udp, gopacket.Payload("q"))
	}
	fs["icmp4"] = build(t, ethFor(layers.EthernetTypeIPv4), ip4("10.0.0.10", "10.0.1.10", layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 1})
	fs["arp"] = build(t, &layers.Ethernet{SrcMAC: macA, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: macA, SourceProtAddress: net.IP{10, 0, 0, 10}.To4(),
			DstHwAddress: make(net.HardwareAddr, 6), DstProtAddress: net.IP{10, 0, 0, 1}.To4()})
	{
		ip := ip6("fd00::10", "fd00:1::10", layers.IPProtocolTCP)
		tcp := &layers.TCP{SrcPort: 40001, DstPort: 443, SYN: true}
		tcp.SetNetworkLayerForChecksum(ip)
		fs["tcp6 443"] = build(t, ethFor(layers.EthernetTypeIPv6), ip, tcp)
	}
	{
		ip := ip6("fd00::20", "fd00::53", layers.IPProtocolUDP)
		udp := &layers.UDP{SrcPort: 5000, DstPort: 53}
		udp.SetNetworkLayerForChecksum(ip)
		fs["udp6 53"] = build(t, ethFor(layers.EthernetTypeIPv6), ip, udp, gopacket.Payload("q"))
	}
	{
		ip := ip6("fd00::10", "ff02::1", layers.IPProtocolICMPv6)
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}
		ic.SetNetworkLayerForChecksum(ip)
		fs["icmp6"] = build(t, ethFor(layers.EthernetTypeIPv6), ip, ic, gopacket.Payload{0, 1, 0, 1})
	}
	{ // 802.1Q VLAN 10, TCP to port 80 behind the tag
		ip := ip4("10.0.10.5", "10.0.10.6", layers.IPProtocolTCP)
		tcp := &layers.TCP{SrcPort: 33333, DstPort: 80, SYN: true}
		tcp.SetNetworkLayerForChecksum(ip)
		fs["vlan10 tcp 80"] = build(t, ethFor(layers.EthernetTypeDot1Q),
			&layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4}, ip, tcp)
	}
	{
		ip := ip4("10.0.20.5", "10.0.20.6", layers.IPProtocolUDP)
		udp := &layers.UDP{SrcPort: 1, DstPort: 53}
		udp.SetNetworkLayerForChecksum(ip)
		fs["vlan20 udp 53"] = build(t, ethFor(layers.EthernetTypeDot1Q),
			&layers.Dot1Q{VLANIdentifier: 20, Type: layers.EthernetTypeIPv4}, ip, udp, gopacket.Payload("q"))
	}
	fs["runt"] = []byte{0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0, 0, 0x0a, 0x08, 0x00, 0x45} // cut in the IPv4 header
	return fs
}

type matchCase struct {
	expr string
	want []string
}

// matchCases are the expressions tried and the frames of fs each must match.
func matchCases(fs map[string][]byte) []matchCase {
	all := func() []string {
		var n []string
		for k := range fs {
			n = append(n, k)
		}
		return n
	}
	except := func(out ...string) []string {
		var n []string
		for _, k := range all() {
			if !slices.Contains(out, k) {
				n = append(n, k)
			}
		}
		return n
	}
	return []matchCase{
		{"", all()},
		{"tcp", []string{"tcp4 80", "tcp4 reply", "tcp4 22", "tcp4 opts 8080", "tcp4 frag", "tcp6 443"}},
		{"udp", []string{"udp4 53", "udp6 53"}},
		{"icmp", []string{"icmp4"}},
		{"icmp6", []string{"icmp6"}},
		{"arp", []string{"arp"}},
		{"ip", []string{"tcp4 80", "tcp4 reply", "tcp4 22", "tcp4 opts 8080", "tcp4 frag", "udp4 53", "icmp4", "runt"}},
		{"ip6", []string{"tcp6 443", "udp6 53", "icmp6"}},
		{"not ip and not ip6", []string{"arp", "vlan10 tcp 80", "vlan20 udp 53"}},
		{"tcp port 80", []string{"tcp4 80", "tcp4 reply"}},
		{"port 80", []string{"tcp4 80", "tcp4 reply"}},
		{"tcp dst port 80", []string{"tcp4 80"}},
		{"src port 80", []string{"tcp4 reply"}},
		{"udp port 53", []string{"udp4 53", "udp6 53"}},
		{"tcp port 53", nil},
		{"port 8080", []string{"tcp4 opts 8080"}},
		{"port 443 or 22", []string{"tcp6 443", "tcp4 22"}},
		{"tcp portrange 1-100", []string{"tcp4 80", "tcp4 reply", "tcp4 22"}},
		{"portrange 400-60000", []string{"tcp4 80", "tcp4 reply", "tcp4 22", "tcp4 opts 8080", "tcp6 443", "udp4 53", "udp6 53"}},
		{"host 10.0.0.10", []string{"tcp4 80", "tcp4 reply", "tcp4 frag", "icmp4", "arp"}},
		{"ip host 10.0.0.10", []string{"tcp4 80", "tcp4 reply", "tcp4 frag", "icmp4"}},
		{"arp host 10.0.0.1", []string{"arp"}},
		{"src host 10.0.0.10", []string{"tcp4 80", "tcp4 frag", "icmp4", "arp"}},
		{"dst 10.0.0.10", []string{"tcp4 reply"}},
		{"host fd00::53", []string{"udp6 53"}},
		{"src host fd00::10", []string{"tcp6 443", "icmp6"}},
		{"net 10.0.1.0/24", []string{"tcp4 80", "tcp4 reply", "tcp4 opts 8080", "tcp4 frag", "icmp4"}},
		{"dst net 192.168.0.0/16", []string{"tcp4 22"}},
		{"net 0.0.0.0/0", []string{"tcp4 80", "tcp4 reply", "tcp4 22", "tcp4 opts 8080", "tcp4 frag", "udp4 53", "icmp4", "arp", "runt"}},
		{"net fd00:1::/32", []string{"tcp6 443"}},
		{"net fd00::/16", []string{"tcp6 443", "udp6 53", "icmp6"}},
		{"ether src 02:00:00:00:00:0a", except()},
		{"ether dst 02:00:00:00:00:0b", except("arp")},
		{"ether host ff:ff:ff:ff:ff:ff", []string{"arp"}},
		{"vlan", []string{"vlan10 tcp 80", "vlan20 udp 53"}},
		{"vlan 10", []string{"vlan10 tcp 80"}},
		{"vlan 10 and tcp port 80", []string{"vlan10 tcp 80"}},
		{"vlan and udp port 53", []string{"vlan20 udp 53"}},
		{"vlan 20 and tcp", nil},
		{"vlan and host 10.0.10.5", []string{"vlan10 tcp 80"}},
		{"tcp and not port 80", []string{"tcp4 22", "tcp4 opts 8080", "tcp4 frag", "tcp6 443"}},
		{"host 10.0.0.10 and (port 80 or icmp)", []string{"tcp4 80", "tcp4 reply", "icmp4"}},
		{"host 10.0.0.10 && !arp", []string{"tcp4 80", "tcp4 reply", "tcp4 frag", "icmp4"}},
		{"udp || icmp", []string{"udp4 53", "udp6 53", "icmp4"}},
		// A load past the end rejects the frame outright, under "not" too (as in the
		// kernel and libpcap): the runt never matches.
		{"not (tcp or udp)", except("runt", "tcp4 80", "tcp4 reply", "tcp4 22", "tcp4 opts 8080", "tcp4 frag", "tcp6 443", "udp4 53", "udp6 53")},
		{"ether host 02:00:00:00:00:0A and icmp", []string{"icmp4"}},
	}
}

func TestMatch(t *testing.T) {
	fs := frames(t)
	cases := matchCases(fs)
	for _, c := range cases {
		t.Run(c.expr, func(t *testing.T) {
			f, err := Compile(c.expr)
			if err != nil {
				t.Fatalf("Compile(%q): %v", c.expr, err)
			}
			var got []string
			for name, b := range fs {
				if f.Match(b) {
					got = append(got, name)
				}
			}
			sort.Strings(got)
			want := slices.Clone(c.want)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Errorf("Compile(%q) matches %q, want %q", c.expr, got, want)
			}
		})
	}
}

// TestAgainstTcpdump runs every expression of TestMatch through tcpdump (libpcap's
// compiler, the reference) over the same frames and wants the same frames matched.
func TestAgainstTcpdump(t *testing.T) {
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		if os.Getenv("VNETD_INTEGRATION") != "" {
			t.Fatalf("tcpdump not installed (test.sh installs it as root): %v", err)
		}
		t.Skip("tcpdump not installed")
	}
	fs := frames(t)
	var names []string
	for n := range fs {
		names = append(names, n)
	}
	sort.Strings(names)
	path := filepath.Join(t.TempDir(), "frames.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, n := range names { // frame i at second i: tcpdump -tt names it
		b := fs[n]
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(int64(i+1), 0), CaptureLength: len(b), Length: len(b)}, b); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	for _, c := range matchCases(fs) {
		if c.expr == "" {
			continue
		}
		out, err := exec.Command(tcpdump, "-nn", "-tt", "-r", path, c.expr).CombinedOutput()
		if err != nil {
			t.Errorf("tcpdump %q: %v\n%s", c.expr, err, out)
			continue
		}
		var got []string
		for _, l := range strings.Split(string(out), "\n") {
			sec, _, ok := strings.Cut(l, ".")
			if i, err := strconv.Atoi(sec); ok && err == nil && i >= 1 && i <= len(names) {
				got = append(got, names[i-1])
			}
		}
		want := slices.Clone(c.want)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("tcpdump %q matches %q; pcapfilter matches %q", c.expr, got, want)
		}
	}
}

func TestSyntaxErrors(t *testing.T) {
	cases := []struct {
		expr string
		col  int
		msg  string
	}{
		{"tcp port http", 10, "bad port \"http\""},
		{"host 10.0.0.300", 6, "bad host"},
		{"net 10.0.0.0", 5, "bad network"},
		{"tcp port 80 and", 16, "expected a primitive"},
		{"(tcp or udp", 12, "expected \")\" to close the \"(\" at column 1"},
		{"tcp)", 4, "without a \"(\""},
		{"tcp udp", 5, "expected and, or or the end"},
		{"frobnicate", 1, "unknown word \"frobnicate\""},
		{"vlan 5000", 6, "bad VLAN ID"},
		{"portrange 90-80", 11, "90 > 80"},
		{"ip6 host 10.0.0.1", 10, "IPv4 address"},
		{"tcp host 10.0.0.1", 10, "IPv4 address"},
		{"ether net 1.2.3.4/8", 11, "not net"},
		{"ether host 02:00", 12, "bad MAC"},
		{"icmp port 1", 11, "port takes tcp or udp before it, not icmp"},
		{"host 10.0.0.1 & port 80", 15, "not an operator"},
		{"port 80 $", 9, "unexpected character"},
		{"port", 5, "expected a value after \"port\""},
		{"HOST 10.0.0.10", 1, "unknown word \"HOST\""}, // keywords are lower case, as in libpcap
	}
	for _, c := range cases {
		t.Run(c.expr, func(t *testing.T) {
			_, err := Compile(c.expr)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Compile(%q) = %v, want a *SyntaxError", c.expr, err)
			}
			if se.Col != c.col || !strings.Contains(se.Msg, c.msg) {
				t.Errorf("Compile(%q) = column %d %q, want column %d containing %q", c.expr, se.Col, se.Msg, c.col, c.msg)
			}
			if !strings.Contains(err.Error(), "column") || !strings.HasSuffix(se.Caret(), strings.Repeat(" ", c.col-1)+"^") {
				t.Errorf("Compile(%q): Error() %q / Caret() %q do not point at column %d", c.expr, err, se.Caret(), c.col)
			}
		})
	}
}

// TestLongExpression: an expression too long for 8-bit jumps is an error, not a
// wrong program.
func TestLongExpression(t *testing.T) {
	var parts []string
	for i := 0; i < 200; i++ {
		parts = append(parts, "port 80")
	}
	_, err := Compile("tcp and (" + strings.Join(parts, " or ") + ")")
	if err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("Compile(200 ports) = %v, want an expression too long error", err)
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{"tcp port 80", "vlan 10 and host fd00::1", "not (arp or icmp) && src net 10.0.0.0/8", "port 1 or 2 or 3"} {
		f.Add(s, []byte{1, 2, 3})
	}
	f.Fuzz(func(t *testing.T, expr string, pkt []byte) {
		flt, err := Compile(expr)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Compile(%q) = %v, not a *SyntaxError", expr, err)
			}
			return
		}
		flt.Match(pkt)
	})
}

func BenchmarkMatch(b *testing.B) {
	fs := frames(b)
	f, err := Compile("host 10.0.0.10 and tcp port 80")
	if err != nil {
		b.Fatal(err)
	}
	pkt := fs["tcp4 reply"]
	b.ReportAllocs()
	for b.Loop() {
		if !f.Match(pkt) {
			b.Fatal("no match")
		}
	}
}
