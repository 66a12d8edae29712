package dhcpserver

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vnetd/vnetd/frame"
)

var (
	macA = frame.MAC{0x52, 0x54, 0, 0, 0, 0xa}
	macB = frame.MAC{0x52, 0x54, 0, 0, 0, 0xb}
	macS = frame.MAC{0x52, 0x54, 0, 0, 0, 0x5}
)

func newServer(t *testing.T, now *time.Time) *Server {
	t.Helper()
	s, err := New(Config{
		ServerIP:   netip.MustParseAddr("10.0.0.1"),
		Subnet:     netip.MustParsePrefix("10.0.0.0/24"),
		RangeStart: netip.MustParseAddr("10.0.0.100"),
		RangeEnd:   netip.MustParseAddr("10.0.0.101"),
		Router:     netip.MustParseAddr("10.0.0.1"),
		DNS:        []netip.Addr{netip.MustParseAddr("10.0.0.53")},
		Lease:      time.Hour,
		Static:     map[frame.MAC]netip.Addr{macS: netip.MustParseAddr("10.0.0.50")},
		Now:        func() time.Time { return *now },
	})
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return s
}

// dora runs DISCOVER/OFFER/REQUEST/ACK for mac and returns the ACK (or NAK).
func dora(t *testing.T, s *Server, mac frame.MAC) (offer, ack *dhcpv4.DHCPv4) {
	t.Helper()
	disc, err := dhcpv4.NewDiscovery(net.HardwareAddr(mac[:]))
	if err != nil {
		t.Fatal(err)
	}
	offer = s.Handle(disc)
	if offer == nil {
		return nil, nil
	}
	req, err := dhcpv4.NewRequestFromOffer(offer)
	if err != nil {
		t.Fatal(err)
	}
	return offer, s.Handle(req)
}

func TestDORA(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newServer(t, &now)
	for _, tc := range []struct {
		mac  frame.MAC
		want string
	}{
		{macA, "10.0.0.100"},
		{macS, "10.0.0.50"},
		{macB, "10.0.0.101"},
		{macA, "10.0.0.100"}, // same client, same address
	} {
		t.Run(tc.mac.String(), func(t *testing.T) {
			offer, ack := dora(t, s, tc.mac)
			if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
				t.Fatalf("Handle(DISCOVER) = %v, want OFFER", offer)
			}
			if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
				t.Fatalf("Handle(REQUEST) = %v, want ACK", ack)
			}
			if got := ack.YourIPAddr.String(); got != tc.want {
				t.Errorf("ACK yiaddr = %s, want %s", got, tc.want)
			}
			if r := ack.Router(); len(r) != 1 || r[0].String() != "10.0.0.1" {
				t.Errorf("ACK router = %v, want [10.0.0.1]", r)
			}
			if d := ack.DNS(); len(d) != 1 || d[0].String() != "10.0.0.53" {
				t.Errorf("ACK dns = %v, want [10.0.0.53]", d)
			}
			if m := net.IP(ack.SubnetMask()).String(); m != "255.255.255.0" {
				t.Errorf("ACK mask = %s, want 255.255.255.0", m)
			}
			if lt := ack.IPAddressLeaseTime(0); lt != time.Hour {
				t.Errorf("ACK lease time = %v, want 1h", lt)
			}
		})
	}
	if got := len(s.Leases()); got != 3 {
		t.Errorf("len(Leases()) = %d, want 3", got)
	}
}

func TestExhaustedAndRelease(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newServer(t, &now)
	_, ackA := dora(t, s, macA)
	dora(t, s, macB)
	c := frame.MAC{0x52, 0x54, 0, 0, 0, 0xc}
	if offer, _ := dora(t, s, c); offer != nil {
		t.Fatalf("Handle(DISCOVER) with full pool = %v, want no reply", offer)
	}
	rel, err := dhcpv4.NewReleaseFromACK(ackA)
	if err != nil {
		t.Fatal(err)
	}
	s.Handle(rel)
	_, ack := dora(t, s, c)
	if ack == nil || ack.YourIPAddr.String() != "10.0.0.100" {
		t.Errorf("after RELEASE, DORA for new client = %v, want ACK 10.0.0.100", ack)
	}
}

func TestNAKWrongAddress(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newServer(t, &now)
	req, err := dhcpv4.New(dhcpv4.WithHwAddr(net.HardwareAddr(macA[:])),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.200"))))
	if err != nil {
		t.Fatal(err)
	}
	if resp := s.Handle(req); resp == nil || resp.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("Handle(REQUEST 10.0.0.200) = %v, want NAK", resp)
	}
}

func TestLeaseExpiry(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newServer(t, &now)
	dora(t, s, macA)
	now = now.Add(2 * time.Hour)
	// Only the static binding is left, not yet leased (zero Expires).
	if got := s.Leases(); len(got) != 1 || !got[0].Static || !got[0].Expires.IsZero() || got[0].Addr != netip.MustParseAddr("10.0.0.50") {
		t.Errorf("Leases() after expiry = %v, want only the static 10.0.0.50, not leased", got)
	}
}

func TestServeUDP(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newServer(t, &now)
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, conn) }()
	client, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// A client that already has an address gets a unicast reply (INFORM-style renew).
	req, _ := dhcpv4.New(dhcpv4.WithHwAddr(net.HardwareAddr(macA[:])),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithRelay(net.ParseIP("127.0.0.1")))
	// Relay replies go to gateway:67; point them at a socket we own is not possible on
	// a fixed port, so only check the server stays up and stops on cancel.
	client.WriteTo(req.ToBytes(), conn.LocalAddr())
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve() = %v after cancel, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve() did not return within 5s of cancel")
	}
	if got := len(s.Leases()); got != 2 {
		t.Errorf("len(Leases()) after a DISCOVER via Serve = %d, want 2 (offered, and the static binding)", got)
	}
}
