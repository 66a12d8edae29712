package dhcpserver

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vnetd/vnetd/frame"
)

// FuzzHandle feeds arbitrary datagrams to the server as Serve does: nothing may panic,
// every reply must be a BOOTREPLY for the request's transaction that encodes and parses
// back, an OFFER or ACK must hand out an address of the subnet, and the lease table
// must stay within its cap.
func FuzzHandle(f *testing.F) {
	now := time.Unix(1000, 0)
	s, err := New(Config{
		ServerIP:   netip.MustParseAddr("10.0.0.1"),
		Subnet:     netip.MustParsePrefix("10.0.0.0/24"),
		RangeStart: netip.MustParseAddr("10.0.0.100"),
		RangeEnd:   netip.MustParseAddr("10.0.0.200"),
		Router:     netip.MustParseAddr("10.0.0.1"),
		DNS:        []netip.Addr{netip.MustParseAddr("10.0.0.53")},
		Static:     map[frame.MAC]netip.Addr{macS: netip.MustParseAddr("10.0.0.50")},
		Now:        func() time.Time { return now },
		MaxLeases:  64,
		Logger:     discard,
	})
	if err != nil {
		f.Fatalf("New() = %v", err)
	}
	disc, _ := dhcpv4.NewDiscovery(net.HardwareAddr(macA[:]))
	f.Add(disc.ToBytes())
	offer := s.Handle(disc)
	req, _ := dhcpv4.NewRequestFromOffer(offer)
	f.Add(req.ToBytes())
	rel, _ := dhcpv4.NewReleaseFromACK(s.Handle(req))
	f.Add(rel.ToBytes())
	static, _ := dhcpv4.NewDiscovery(net.HardwareAddr(macS[:]), dhcpv4.WithRequestedOptions(dhcpv4.OptionRouter))
	f.Add(static.ToBytes())
	f.Add([]byte{1, 1, 6, 0})
	subnet := netip.MustParsePrefix("10.0.0.0/24")
	f.Fuzz(func(t *testing.T, b []byte) {
		now = now.Add(time.Second)
		req, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		resp := s.Handle(req)
		if n := s.Stats().Leases; n > 64 {
			t.Fatalf("lease table holds %d bindings, cap 64", n)
		}
		if resp == nil {
			return
		}
		if resp.OpCode != dhcpv4.OpcodeBootReply || resp.TransactionID != req.TransactionID {
			t.Fatalf("reply op %v xid %v to request xid %v", resp.OpCode, resp.TransactionID, req.TransactionID)
		}
		back, err := dhcpv4.FromBytes(resp.ToBytes())
		if err != nil {
			t.Fatalf("reply does not parse back: %v\n%s", err, resp.Summary())
		}
		switch mt := back.MessageType(); mt {
		case dhcpv4.MessageTypeOffer, dhcpv4.MessageTypeAck:
			a, ok := netip.AddrFromSlice(back.YourIPAddr.To4())
			if !ok || !subnet.Contains(a) {
				t.Fatalf("%v hands out %v, outside %v", mt, back.YourIPAddr, subnet)
			}
		case dhcpv4.MessageTypeNak:
		default:
			t.Fatalf("reply of type %v", mt)
		}
	})
}
