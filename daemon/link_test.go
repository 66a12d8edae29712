package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/internal/testwait"
	"github.com/vnetd/vnetd/portsec"
)

// guardLab is a DHCP server (gw), a victim namespace (client) and a VM socket whose
// ports may send only from one MAC and their leased address.
const guardLab = `
[[switch]]
name = "lan0"
[[namespace]]
name = "gw"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.1/24"]
  [[namespace.service]]
  kind = "dhcp"
  range = "10.0.0.100-10.0.0.110"
  router = "10.0.0.1"
  dns = ["10.0.0.1"]
[[namespace]]
name = "client"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.2/24"]
[[socket]]
path = "%s"
switch = "lan0"
allow_macs = ["52:54:00:00:00:01"]
dhcp_snooping = true
`

// waitLink waits until pred holds for the link status whose port starts with prefix.
func waitLink(t *testing.T, d *Daemon, prefix string, what string, pred func(LinkStatus) bool) LinkStatus {
	t.Helper()
	return testwait.Value(t, 5*time.Second, func() (LinkStatus, bool) {
		var last LinkStatus
		for _, l := range d.Links() {
			if strings.HasPrefix(l.Target, prefix) {
				last = l
				if pred(l) {
					return l, true
				}
			}
		}
		return last, false
	}, "%s: link %s*", what, prefix)
}

func (v *vmConn) arp(op uint16, sha net.HardwareAddr, spa, tpa netip.Addr, dst net.HardwareAddr) {
	v.t.Helper()
	v.send(&layers.Ethernet{SrcMAC: v.mac, DstMAC: dst, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4, Operation: op,
			SourceHwAddress: sha, SourceProtAddress: spa.AsSlice(), DstHwAddress: dst, DstProtAddress: tpa.AsSlice()})
}

func (v *vmConn) ping(src net.HardwareAddr, from, to netip.Addr, dst net.HardwareAddr, seq uint16) {
	v.t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: from.AsSlice(), DstIP: to.AsSlice()}
	v.send(&layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}, ip,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: seq}, gopacket.Payload("guard"))
}

func neighbour(t *testing.T, d *Daemon, ns string, a netip.Addr) string {
	t.Helper()
	n, err := d.Namespace(ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range n.Neighbors() {
		if e.Addr == a {
			return e.MAC
		}
	}
	return ""
}

// TestPortSecurityVMSocket: a VM on a guarded stream socket cannot take a namespace's
// MAC over in the FDB, poison a neighbour cache with ARP, or send from another IP
// address; each attempt is dropped and counted. DHCP snooping then allows the
// address the VM leased.
func TestPortSecurityVMSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "vm.sock")
	d := New(Options{Logger: quiet()})
	defer d.Close()
	c := parse(t, fmt.Sprintf(guardLab, sock))
	if err := d.Apply(c); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	gwMAC, clientMAC := c.Namespaces[0].NICs[0].MAC, c.Namespaces[1].NICs[0].MAC
	gwHW, clientHW := net.HardwareAddr(gwMAC[:]), net.HardwareAddr(clientMAC[:])
	gwIP, clientIP := mustAddr("10.0.0.1"), mustAddr("10.0.0.2")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// client and gw learn each other: the FDB entry and the neighbour entry to attack.
	if err := d.Ping(ctx, "client", gwIP, 1, time.Second, func(r PingResult) {
		if r.Error != "" {
			t.Fatalf("ping gw from client: %s", r.Error)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if got := neighbour(t, d, "gw", clientIP); got != clientMAC.String() {
		t.Fatalf("gw's neighbour %s = %q before the attack, want %s", clientIP, got, clientMAC)
	}
	vm := dialVM(t, sock, "52:54:00:00:00:01")
	sockPort := "lan0/sock:"

	// 1. A frame from the client's MAC: the FDB keeps the client's port.
	vm.ping(clientHW, clientIP, gwIP, gwHW, 1)
	waitLink(t, d, sockPort, "src_mac counted", func(l LinkStatus) bool { return l.Status.Drops[portsec.DropSrcMAC] == 1 })
	if p := fdbPort(t, d, "lan0", clientMAC); p != "client.eth0" {
		t.Fatalf("lan0 FDB: %s is on %q, want client.eth0", clientMAC, p)
	}

	// 2. ARP claiming the client's address, a reply and a gratuitous request: gw's
	// neighbour entry stays.
	vm.arp(layers.ARPReply, vm.mac, clientIP, gwIP, gwHW)
	vm.arp(layers.ARPRequest, vm.mac, clientIP, gwIP, layers.EthernetBroadcast)
	waitLink(t, d, sockPort, "arp_spoof counted", func(l LinkStatus) bool { return l.Status.Drops[portsec.DropARP] == 2 })
	time.Sleep(50 * time.Millisecond)
	if got := neighbour(t, d, "gw", clientIP); got != clientMAC.String() {
		t.Fatalf("gw's neighbour %s = %q after the spoofed ARP, want %s", clientIP, got, clientMAC)
	}

	// 3. An IP source that is not the VM's (nor leased yet).
	leased := mustAddr("10.0.0.100")
	vm.ping(vm.mac, clientIP, gwIP, gwHW, 2)
	vm.ping(vm.mac, leased, gwIP, gwHW, 3)
	waitLink(t, d, sockPort, "ip_source counted", func(l LinkStatus) bool { return l.Status.Drops[portsec.DropIPSource] == 2 })

	// 4. DHCP snooping: the leased address is allowed once the ACK went by.
	if a := vm.lease(); a != leased {
		t.Fatalf("lease = %s, want %s", a, leased)
	}
	l := waitLink(t, d, sockPort, "lease learned", func(l LinkStatus) bool { return len(l.Status.Learned) == 1 })
	if l.Status.Learned[0].Addr != leased {
		t.Fatalf("learned %+v, want %s", l.Status.Learned, leased)
	}
	vm.arp(layers.ARPRequest, vm.mac, leased, gwIP, layers.EthernetBroadcast) // gw learns the VM
	vm.ping(vm.mac, leased, gwIP, gwHW, 4)
	vm.recv(func(p gopacket.Packet) bool {
		icmp, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		return ok && icmp.TypeCode.Type() == layers.ICMPv4TypeEchoReply && icmp.Seq == 4
	})
	if st := waitLink(t, d, sockPort, "final", func(LinkStatus) bool { return true }); st.Status.Drops[portsec.DropIPSource] != 2 || st.Status.Drops[portsec.DropARP] != 2 {
		t.Fatalf("drops after the lease = %v, want ip_source 2 and arp_spoof 2 (nothing more)", st.Status.Drops)
	}
	// Namespace NICs are guarded by default, with their own MAC and address.
	for _, l := range d.Links() {
		if l.Target == "lan0/client.eth0" && l.Security != "mac "+clientMAC.String()+" ip 10.0.0.2" {
			t.Errorf("client.eth0 security = %q", l.Security)
		}
	}
}

// TestLinkDown: a namespace NIC set down drops both ways, counted, and comes back; a
// pair end set down makes its peer's sends tx_dropped; deleting one end of a pair
// removes both.
func TestLinkDown(t *testing.T) {
	d := New(Options{Logger: quiet()})
	defer d.Close()
	if err := d.Apply(parse(t, fmt.Sprintf(base, freePort(t)))); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	ping := func(ns, to string) bool {
		ok := false
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Ping(ctx, ns, mustAddr(to), 1, time.Second, func(r PingResult) { ok = r.Error == "" })
		return ok
	}
	if !ping("alpha", "10.0.0.20") {
		t.Fatal("alpha cannot ping beta with every link up")
	}
	if _, err := d.SetLink(LinkSpec{Namespace: "beta", NIC: "eth0", State: "down"}); err != nil {
		t.Fatalf("SetLink(beta eth0 down): %v", err)
	}
	if ping("alpha", "10.0.0.20") {
		t.Fatal("alpha pinged beta through beta's down link")
	}
	st := waitLink(t, d, "lan0/beta.eth0", "down counted", func(l LinkStatus) bool { return l.Status.Drops[portsec.DropLinkDown] > 0 })
	if st.Status.Up {
		t.Fatalf("beta.eth0 status %+v, want down", st)
	}
	if _, err := d.SetLink(LinkSpec{Switch: "lan0", Port: "beta.eth0", State: "up"}); err != nil {
		t.Fatalf("SetLink(lan0 beta.eth0 up): %v", err)
	}
	if !ping("alpha", "10.0.0.20") {
		t.Fatal("alpha cannot ping beta after the link came back up")
	}

	// The pair beta:p0 <-> gamma:p0.
	if !ping("beta", "192.168.5.2") {
		t.Fatal("beta cannot ping gamma over the pair")
	}
	if _, err := d.SetLink(LinkSpec{Namespace: "gamma", NIC: "p0", State: "down"}); err != nil {
		t.Fatalf("SetLink(gamma p0 down): %v", err)
	}
	if ping("beta", "192.168.5.2") {
		t.Fatal("beta pinged gamma through gamma's down pair end")
	}
	st = waitLink(t, d, "beta:p0", "peer down counted", func(l LinkStatus) bool { return l.Status.TxDropped > 0 })
	if st.Status.Drops[portsec.DropPeerDown] == 0 || st.Status.PeerUp == nil || *st.Status.PeerUp {
		t.Fatalf("beta:p0 status %+v, want peer_down drops and peer_up false", st.Status)
	}
	if _, err := d.SetLink(LinkSpec{Namespace: "gamma", NIC: "nope", State: "down"}); err == nil {
		t.Error("SetLink(gamma nope) succeeded")
	}
	if _, err := d.SetLink(LinkSpec{Namespace: "gamma", NIC: "p0", State: "sideways"}); err == nil {
		t.Error("SetLink(state sideways) succeeded")
	}

	if err := d.DeletePair("gamma", "p0"); err != nil {
		t.Fatalf("DeletePair(gamma, p0): %v", err)
	}
	for _, l := range d.Links() {
		if l.Target == "beta:p0" || l.Target == "gamma:p0" {
			t.Errorf("link %s still listed after DeletePair", l.Target)
		}
	}
	for _, ns := range d.Status().Namespaces {
		for _, i := range ns.Interfaces {
			if i.Name == "p0" {
				t.Errorf("namespace %s still has p0 after DeletePair", ns.Name)
			}
		}
	}
	if err := d.DeletePair("beta", "p0"); err == nil {
		t.Error("DeletePair of a deleted pair succeeded")
	}
	if err := d.DeletePair("alpha", "eth0"); err == nil {
		t.Error("DeletePair(alpha, eth0), a switch NIC, succeeded")
	}
}

func fdbPort(t *testing.T, d *Daemon, sw string, m frame.MAC) string {
	t.Helper()
	fdb, err := d.FDB(sw)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range fdb {
		if e.MAC == m {
			return e.Port
		}
	}
	return ""
}
