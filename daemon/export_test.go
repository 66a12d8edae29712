package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vnetd/vnetd/frame"
)

const exportLabA = `
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
  lease = "10m"
[[socket]]
path = "%s"
switch = "lan0"
`

const exportLabB = `
[[switch]]
name = "lan0"
[[socket]]
path = "%s"
switch = "lan0"
`

// TestExportImportKeepsLease moves a namespace serving DHCP from one daemon to
// another: a VM leases 10.0.0.100 in the first; after export, the first daemon's
// end and import into the second, a new VM gets another address and the first
// VM's renewal (a unicast REQUEST from its address) is acknowledged with its own.
// Without the leases the new VM takes 10.0.0.100 and the renewal is refused (NAK);
// without the neighbour entries the unicast ACK waits for an ARP reply the VM
// never sends.
func TestExportImportKeepsLease(t *testing.T) {
	dir := t.TempDir()
	sockA, sockB := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	mac1, mac2 := "52:54:00:00:00:01", "52:54:00:00:00:02"
	dA := New(Options{Logger: quiet()})
	defer dA.Close()
	cA, err := parseB(fmt.Sprintf(exportLabA, sockA))
	if err != nil {
		t.Fatal(err)
	}
	if err := dA.Apply(cA); err != nil {
		t.Fatalf("dA.Apply: %v", err)
	}
	vm1 := dialVM(t, sockA, mac1)
	if a := vm1.lease(); a != netip.MustParseAddr("10.0.0.100") {
		t.Fatalf("vm1 lease = %v, want 10.0.0.100", a)
	}
	// vm1 asks for its gateway's MAC, so gw's ARP cache learns vm1.
	gwMAC := frame.LocalMAC("gw.eth0")
	vm1.send(&layers.Ethernet{SrcMAC: vm1.mac, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: vm1.mac, SourceProtAddress: net.ParseIP("10.0.0.100").To4(),
			DstHwAddress: make([]byte, 6), DstProtAddress: net.ParseIP("10.0.0.1").To4()})
	vm1.recv(func(p gopacket.Packet) bool {
		a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP)
		return ok && a.Operation == layers.ARPReply
	})

	x, err := dA.Export("gw")
	if err != nil {
		t.Fatalf("dA.Export(gw): %v", err)
	}
	if len(x.State.Leases) != 1 || x.State.Leases[0].Address != netip.MustParseAddr("10.0.0.100") {
		t.Errorf("export leases = %+v, want vm1's 10.0.0.100", x.State.Leases)
	}
	b, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"10.0.0.100"`) || !strings.Contains(string(b), `"range":"10.0.0.100-10.0.0.110"`) {
		t.Errorf("export = %s, want the lease and the config as written", b)
	}
	if _, err := dA.Export("nope"); !errors.Is(err, ErrNoNamespace) {
		t.Errorf("Export(nope) = %v, want ErrNoNamespace", err)
	}
	dA.Close()

	var x2 Export
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&x2); err != nil {
		t.Fatal(err)
	}
	dB := New(Options{Logger: quiet()})
	defer dB.Close()
	cB, err := parseB(fmt.Sprintf(exportLabB, sockB))
	if err != nil {
		t.Fatal(err)
	}
	if err := dB.Apply(cB); err != nil {
		t.Fatalf("dB.Apply: %v", err)
	}
	res, err := dB.Import(x2, "ns.json", "")
	if err != nil {
		t.Fatalf("dB.Import: %v", err)
	}
	if res.Leases != 1 || res.Neighbors < 1 {
		t.Errorf("Import = %+v, want 1 lease and vm1's neighbour entry", res)
	}
	if _, err := dB.Import(x2, "ns.json", ""); !errors.Is(err, ErrNamespaceExists) {
		t.Errorf("second Import = %v, want ErrNamespaceExists", err)
	}
	if st := dB.Status(); len(st.Namespaces) != 1 || st.Namespaces[0].Origin != OriginImported {
		t.Errorf("status namespaces = %+v, want gw imported", st.Namespaces)
	}
	// A reload of the same file keeps the imported namespace and its lease.
	cB2, _ := parseB(fmt.Sprintf(exportLabB, sockB))
	if err := dB.Apply(cB2); err != nil {
		t.Fatalf("dB.Apply (reload): %v", err)
	}
	if ls, err := dB.Leases("gw"); err != nil || len(ls) != 1 || ls[0].Address != "10.0.0.100" {
		t.Fatalf("Leases(gw) after reload = %+v, %v; want vm1's", ls, err)
	}

	vm2 := dialVM(t, sockB, mac2)
	if a := vm2.lease(); a != netip.MustParseAddr("10.0.0.101") {
		t.Errorf("vm2 lease = %v, want 10.0.0.101 (10.0.0.100 is vm1's)", a)
	}
	vm1 = dialVM(t, sockB, mac1)
	renew, err := dhcpv4.New(dhcpv4.WithHwAddr(vm1.mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(net.ParseIP("10.0.0.100")))
	if err != nil {
		t.Fatal(err)
	}
	eth := &layers.Ethernet{SrcMAC: vm1.mac, DstMAC: net.HardwareAddr(gwMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP("10.0.0.100"), DstIP: net.ParseIP("10.0.0.1")}
	udp := &layers.UDP{SrcPort: 68, DstPort: 67}
	udp.SetNetworkLayerForChecksum(ip)
	vm1.send(eth, ip, udp, gopacket.Payload(renew.ToBytes()))
	var ack *dhcpv4.DHCPv4
	vm1.recv(func(p gopacket.Packet) bool {
		u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok || u.DstPort != 68 {
			return false
		}
		r, err := dhcpv4.FromBytes(u.Payload)
		if err != nil || r.TransactionID != renew.TransactionID {
			return false
		}
		ack = r
		return true
	})
	if ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(net.ParseIP("10.0.0.100")) {
		t.Errorf("renewal reply = %s %v, want ACK 10.0.0.100", ack.MessageType(), ack.YourIPAddr)
	}
}
