package daemon

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/vnetd/vnetd/internal/testwait"
)

const vmLab = `
[[switch]]
name = "lan0"
[[namespace]]
name = "gw"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.1/24", "fd00::1/64"]
  [[namespace.service]]
  kind = "dhcp"
  range = "10.0.0.100-10.0.0.110"
  router = "10.0.0.1"
  dns = ["10.0.0.1"]
  lease = "10m"
  static = [ { mac = "52:54:00:00:00:02", address = "10.0.0.50" } ]
  [[namespace.service]]
  kind = "dns"
  zone = "lab."
  records = [ { name = "www.lab.", a = "10.0.0.80" } ]
[[namespace]]
name = "client"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.2/24"]
[[socket]]
path = "%s"
switch = "lan0"
`

// vmConn is a fake VM on a -netdev stream socket: it speaks length-prefixed frames.
type vmConn struct {
	t   *testing.T
	c   net.Conn
	mac net.HardwareAddr
}

func dialVM(t *testing.T, path string, mac string) *vmConn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	m, _ := net.ParseMAC(mac)
	return &vmConn{t: t, c: c, mac: m}
}

func (v *vmConn) send(layersToSend ...gopacket.SerializableLayer) {
	v.t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, layersToSend...); err != nil {
		v.t.Fatal(err)
	}
	b := buf.Bytes()
	hdr := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
	if _, err := v.c.Write(append(hdr, b...)); err != nil {
		v.t.Fatalf("vm write: %v", err)
	}
}

// recv returns the next frame for which match returns true, within 5 s.
func (v *vmConn) recv(match func(gopacket.Packet) bool) gopacket.Packet {
	v.t.Helper()
	v.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(v.c, hdr[:]); err != nil {
			v.t.Fatalf("vm read: %v", err)
		}
		b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(v.c, b); err != nil {
			v.t.Fatalf("vm read: %v", err)
		}
		p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
		if match(p) {
			return p
		}
	}
}

// dhcp sends msg from the VM (0.0.0.0:68 → broadcast:67) and returns the reply.
func (v *vmConn) dhcp(msg *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	v.t.Helper()
	eth := &layers.Ethernet{SrcMAC: v.mac, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4zero, DstIP: net.IPv4bcast}
	udp := &layers.UDP{SrcPort: 68, DstPort: 67}
	udp.SetNetworkLayerForChecksum(ip)
	v.send(eth, ip, udp, gopacket.Payload(msg.ToBytes()))
	var reply *dhcpv4.DHCPv4
	v.recv(func(p gopacket.Packet) bool {
		u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok || u.DstPort != 68 {
			return false
		}
		r, err := dhcpv4.FromBytes(u.Payload)
		if err != nil || r.TransactionID != msg.TransactionID {
			return false
		}
		reply = r
		return true
	})
	return reply
}

func (v *vmConn) lease() netip.Addr {
	v.t.Helper()
	disc, err := dhcpv4.NewDiscovery(v.mac)
	if err != nil {
		v.t.Fatal(err)
	}
	offer := v.dhcp(disc)
	if offer.MessageType() != dhcpv4.MessageTypeOffer {
		v.t.Fatalf("reply to DISCOVER is %s, want OFFER", offer.MessageType())
	}
	if r := offer.Router(); len(r) != 1 || !r[0].Equal(net.ParseIP("10.0.0.1")) {
		v.t.Errorf("offer router = %v, want 10.0.0.1", r)
	}
	if d := offer.DNS(); len(d) != 1 || !d[0].Equal(net.ParseIP("10.0.0.1")) {
		v.t.Errorf("offer dns = %v, want 10.0.0.1", d)
	}
	req, err := dhcpv4.NewRequestFromOffer(offer)
	if err != nil {
		v.t.Fatal(err)
	}
	ack := v.dhcp(req)
	if ack.MessageType() != dhcpv4.MessageTypeAck {
		v.t.Fatalf("reply to REQUEST is %s, want ACK", ack.MessageType())
	}
	a, _ := netip.AddrFromSlice(ack.YourIPAddr.To4())
	return a
}

// TestSocketVMsGetLeasesAndNames runs two fake VMs on one stream socket: each gets
// its own switch port and a DHCP lease (one static), the leases show up in the
// lease table, the VMs reach each other, and the DNS service answers for the lab.
func TestSocketVMsGetLeasesAndNames(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sock := filepath.Join(t.TempDir(), "vm.sock")
	d := New(Options{Logger: quiet()})
	defer d.Close()
	c, err := parseB(fmt.Sprintf(vmLab, sock))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(c); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	vm1 := dialVM(t, sock, "52:54:00:00:00:01")
	vm2 := dialVM(t, sock, "52:54:00:00:00:02")
	a1, a2 := vm1.lease(), vm2.lease()
	if a1 != netip.MustParseAddr("10.0.0.100") || a2 != netip.MustParseAddr("10.0.0.50") {
		t.Errorf("leases = %v, %v; want 10.0.0.100 (pool) and 10.0.0.50 (static)", a1, a2)
	}
	ls, err := d.Leases("gw")
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 || ls[0].Address != "10.0.0.50" || ls[0].MAC != "52:54:00:00:00:02" || !ls[0].Static ||
		ls[1].Address != "10.0.0.100" || ls[1].NIC != "eth0" || ls[1].Static {
		t.Errorf("Leases(gw) = %+v", ls)
	}
	if _, err := d.Leases("nope"); err == nil {
		t.Error("Leases(nope) succeeded")
	}
	sw, _ := d.Switch("lan0")
	socks := 0
	for _, p := range sw.Ports() {
		if len(p.Name) > 5 && p.Name[:5] == "sock:" {
			socks++
		}
	}
	if socks != 2 {
		t.Errorf("lan0 has %d socket ports, want 2 (one per VM)", socks)
	}

	// VM1 → VM2 directly over the switch (both MACs were learned during DHCP).
	payload := []byte("hello vm2")
	vm1.send(&layers.Ethernet{SrcMAC: vm1.mac, DstMAC: vm2.mac, EthernetType: 0x88b5}, gopacket.Payload(payload))
	vm2.recv(func(p gopacket.Packet) bool {
		e, ok := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		return ok && bytes.Equal(e.SrcMAC, vm1.mac) && bytes.HasPrefix(e.Payload, payload)
	})

	// DNS from another namespace on the switch.
	client, err := d.Namespace("client")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := client.ListenPacket("udp4", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ask := func(name string, qt uint16) *dns.Msg {
		t.Helper()
		q := new(dns.Msg)
		q.SetQuestion(name, qt)
		b, _ := q.Pack()
		if _, err := pc.WriteTo(b, &net.UDPAddr{IP: net.ParseIP("10.0.0.1"), Port: 53}); err != nil {
			t.Fatal(err)
		}
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1500)
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("dns %s: %v", name, err)
		}
		r := new(dns.Msg)
		if err := r.Unpack(buf[:n]); err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		name string
		qt   uint16
		want string
	}{
		{"eth0.client.lab.", dns.TypeA, "10.0.0.2"},
		{"gw.lab.", dns.TypeAAAA, "fd00::1"},
		{"www.lab.", dns.TypeA, "10.0.0.80"},
	} {
		r := ask(tc.name, tc.qt)
		if len(r.Answer) != 1 || !bytes.Contains([]byte(r.Answer[0].String()), []byte(tc.want)) {
			t.Errorf("dns %s = %v, want %s", tc.name, r.Answer, tc.want)
		}
	}
	if r := ask("nothere.lab.", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("dns nothere.lab. rcode = %d, want NXDOMAIN", r.Rcode)
	}
	// The same server answers over TCP (what a client does after a truncated answer).
	tc, err := client.Dial(context.Background(), "tcp", "10.0.0.1:53")
	if err != nil {
		t.Fatalf("dns over TCP: dial: %v", err)
	}
	dc := &dns.Conn{Conn: tc}
	q := new(dns.Msg)
	q.SetQuestion("eth0.client.lab.", dns.TypeA)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := dc.WriteMsg(q); err != nil {
		t.Fatalf("dns over TCP: write: %v", err)
	}
	if r, err := dc.ReadMsg(); err != nil || len(r.Answer) != 1 || !bytes.Contains([]byte(r.Answer[0].String()), []byte("10.0.0.2")) {
		t.Errorf("dns over TCP eth0.client.lab. = %v, %v; want 10.0.0.2", r, err)
	}
	dc.Close()

	// A reload that adds a namespace makes its names resolvable.
	c2, err := parseB(fmt.Sprintf(vmLab, sock) + "[[namespace]]\nname = \"late\"\n  [[namespace.nic]]\n  name = \"eth0\"\n  switch = \"lan0\"\n  addresses = [\"10.0.0.3/24\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(c2); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if r := ask("late.lab.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("after reload, late.lab. = %v", r.Answer)
	}
	// The VMs' connections survived the reload (the socket did not change).
	vm1.send(&layers.Ethernet{SrcMAC: vm1.mac, DstMAC: vm2.mac, EthernetType: 0x88b5}, gopacket.Payload(payload))
	vm2.recv(func(p gopacket.Packet) bool {
		e, ok := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		return ok && bytes.Equal(e.SrcMAC, vm1.mac)
	})

	// A VM that disconnects leaves the switch.
	vm1.c.Close()
	if !testwait.Until(5*time.Second, func() bool {
		socks = 0
		for _, p := range sw.Ports() {
			if len(p.Name) > 5 && p.Name[:5] == "sock:" {
				socks++
			}
		}
		return socks == 1
	}) {
		t.Fatalf("after a disconnect lan0 still has %d socket ports, want 1", socks)
	}
}
