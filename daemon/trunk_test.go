package daemon

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/frame/frametest"
)

const trunkLab = `
[[switch]]
name = "lan0"
[[namespace]]
name = "v10"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  vlan = 10
  addresses = ["10.0.10.2/24"]
[[namespace]]
name = "v30"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  vlan = 30
  addresses = ["10.0.30.2/24"]
[[namespace]]
name = "v40"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  vlan = 40
  addresses = ["10.0.40.2/24"]
[[%s]]
name = "h0"
switch = "lan0"
trunk = [10, 20]
native = 30
`

// TestTrunkPorts: a [[host_interface]] and a [[tap]] with trunk = [10, 20] and
// native = 30 (stand-in ports through Options.OpenHostInterface and OpenTAP), and a VM
// on a [[socket]] with the same (a real stream socket, QEMU's framing), carry VLAN 10
// tagged both ways (an ARP request tagged 10 gets v10's reply tagged 10), VLAN 30
// untagged, and not VLAN 40.
func TestTrunkPorts(t *testing.T) {
	for _, kind := range []string{"host_interface", "tap", "socket"} {
		t.Run(kind, func(t *testing.T) { testTrunkPort(t, kind) })
	}
}

func testTrunkPort(t *testing.T, kind string) {
	var far *frametest.End
	open := func(name string) (frame.Port, error) {
		a, b := frametest.NewPair(frametest.PairOptions{NameA: name})
		far = b
		return a, nil
	}
	d := New(Options{Logger: quiet(),
		OpenHostInterface: func(c config.HostInterface, _ *slog.Logger) (frame.Port, error) { return open("hostif:" + c.Name) },
		OpenTAP:           func(c config.TAP, _ *slog.Logger) (frame.Port, error) { return open("tap:" + c.Name) },
	})
	defer d.Close()
	lab := fmt.Sprintf(trunkLab, kind)
	sock := filepath.Join(t.TempDir(), "vm.sock")
	if kind == "socket" {
		lab = strings.Replace(lab, `name = "h0"`, fmt.Sprintf("path = %q", sock), 1)
	}
	c := parse(t, lab)
	trunk, native := []uint16(nil), uint16(0)
	switch kind {
	case "tap":
		trunk, native = c.TAPs[0].Trunk, c.TAPs[0].Native
	case "socket":
		trunk, native = c.Sockets[0].Trunk, c.Sockets[0].Native
	default:
		trunk, native = c.HostInterfaces[0].Trunk, c.HostInterfaces[0].Native
	}
	if len(trunk) != 2 || native != 30 {
		t.Fatalf("%s parsed as trunk %v native %d", kind, trunk, native)
	}
	if err := d.Apply(c); err != nil {
		t.Fatalf("Apply = %v", err)
	}
	var inject func([]frame.Frame) error
	var receive func(time.Duration) (frame.Frame, error)
	if kind == "socket" {
		inject, receive = vmFarSide(t, sock)
	} else {
		inject, receive = frametest.PortFarSide(far)
	}
	host := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
	arp := func(vlan uint16, sender, target string) {
		t.Helper()
		eth := &layers.Ethernet{SrcMAC: host, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
		a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: host, SourceProtAddress: net.ParseIP(sender).To4(),
			DstHwAddress: make(net.HardwareAddr, 6), DstProtAddress: net.ParseIP(target).To4()}
		ls := []gopacket.SerializableLayer{eth, a}
		if vlan != 0 {
			eth.EthernetType = layers.EthernetTypeDot1Q
			ls = []gopacket.SerializableLayer{eth, &layers.Dot1Q{VLANIdentifier: vlan, Type: layers.EthernetTypeARP}, a}
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, ls...); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		if err := inject([]frame.Frame{{Buf: b, N: len(b)}}); err != nil {
			t.Fatal(err)
		}
	}
	// reply waits for the ARP reply from addr; it returns its VLAN tag (0: untagged).
	reply := func(addr string, wait time.Duration) (vlan uint16, ok bool) {
		deadline := time.Now().Add(wait)
		for time.Now().Before(deadline) {
			f, err := receive(time.Until(deadline))
			if err != nil {
				return 0, false
			}
			p := gopacket.NewPacket(f.Buf[:f.N], layers.LayerTypeEthernet, gopacket.Default)
			a, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
			if a == nil || a.Operation != layers.ARPReply || net.IP(a.SourceProtAddress).String() != addr {
				continue
			}
			if q, _ := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); q != nil {
				return q.VLANIdentifier, true
			}
			return 0, true
		}
		return 0, false
	}
	arp(10, "10.0.10.1", "10.0.10.2")
	if v, ok := reply("10.0.10.2", 3*time.Second); !ok || v != 10 {
		t.Errorf("ARP tagged 10 for v10: reply %v tagged %d, want tagged 10", ok, v)
	}
	arp(0, "10.0.30.1", "10.0.30.2")
	if v, ok := reply("10.0.30.2", 3*time.Second); !ok || v != 0 {
		t.Errorf("untagged ARP for v30 (native): reply %v tagged %d, want untagged", ok, v)
	}
	arp(40, "10.0.40.1", "10.0.40.2")
	if _, ok := reply("10.0.40.2", 300*time.Millisecond); ok {
		t.Errorf("ARP tagged 40 (not on the trunk) reached v40 and got a reply")
	}
	if n := neighbour(t, d, "v10", mustAddr("10.0.10.1")); n != host.String() {
		t.Errorf("v10's neighbour 10.0.10.1 = %q, want %s", n, host)
	}
	if n := neighbour(t, d, "v40", mustAddr("10.0.40.1")); n != "" {
		t.Errorf("v40 learned 10.0.40.1 = %q through a trunk that does not carry VLAN 40", n)
	}
}

// vmFarSide connects to the stream socket at path as a VM does and returns functions
// that send frames in QEMU's framing (a 4-byte big-endian length, then the frame) and
// receive one.
func vmFarSide(t *testing.T, path string) (func([]frame.Frame) error, func(time.Duration) (frame.Frame, error)) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	inject := func(frames []frame.Frame) error {
		for _, f := range frames {
			var h [4]byte
			binary.BigEndian.PutUint32(h[:], uint32(f.N))
			if _, err := c.Write(append(h[:], f.Buf[:f.N]...)); err != nil {
				return err
			}
		}
		return nil
	}
	receive := func(timeout time.Duration) (frame.Frame, error) {
		c.SetReadDeadline(time.Now().Add(timeout))
		var h [4]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return frame.Frame{}, err
		}
		b := make([]byte, binary.BigEndian.Uint32(h[:]))
		if _, err := io.ReadFull(c, b); err != nil {
			return frame.Frame{}, err
		}
		return frame.Frame{Buf: b, N: len(b)}, nil
	}
	return inject, receive
}
