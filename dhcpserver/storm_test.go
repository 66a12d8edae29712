package dhcpserver

import (
	"bytes"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vnetd/vnetd/frame"
)

var discard = slog.New(slog.DiscardHandler)

// TestDiscoverStormCapped sends DISCOVERs from random MACs into a /16 pool: the lease
// table stops at MaxLeases, refusals are counted, a storm logs one line, a static
// client is still served, and once the storm's offers expire new clients are served
// again (the sweep frees them).
func TestDiscoverStormCapped(t *testing.T) {
	const limit = 512
	storm := 20000
	if testing.Short() {
		storm = 4000
	}
	now := time.Unix(1000, 0)
	var logs bytes.Buffer
	s, err := New(Config{
		ServerIP:   netip.MustParseAddr("10.1.0.1"),
		Subnet:     netip.MustParsePrefix("10.1.0.0/16"),
		RangeStart: netip.MustParseAddr("10.1.1.0"),
		RangeEnd:   netip.MustParseAddr("10.1.255.254"),
		Static:     map[frame.MAC]netip.Addr{macS: netip.MustParseAddr("10.1.0.50")},
		Now:        func() time.Time { return now },
		MaxLeases:  limit,
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	offers := 0
	for range storm {
		var mac frame.MAC
		for i := range mac {
			mac[i] = byte(rng.Uint32())
		}
		mac[0] &^= 1
		d, err := dhcpv4.NewDiscovery(net.HardwareAddr(mac[:]))
		if err != nil {
			t.Fatal(err)
		}
		if s.Handle(d) != nil {
			offers++
		}
	}
	st := s.Stats()
	if st.Leases != limit || offers != limit || st.AtCap != uint64(storm-limit) {
		t.Errorf("after %d DISCOVERs: Stats() = %+v, %d offers; want %d leases and offers, AtCap %d", storm, st, offers, limit, storm-limit)
	}
	if n := bytes.Count(logs.Bytes(), []byte("lease table full")); n != 1 {
		t.Errorf("storm logged %d 'lease table full' lines, want 1:\n%s", n, logs.String())
	}
	if _, ack := dora(t, s, macS); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Errorf("static client during storm: ack = %v, want ACK", ack)
	}
	now = now.Add(2 * time.Minute) // the storm's offers expire
	if offer, ack := dora(t, s, macA); offer == nil || ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Errorf("new client after the offers expired: offer %v ack %v, want an ACK", offer, ack)
	}
	if st := s.Stats(); st.Leases > limit {
		t.Errorf("Stats().Leases = %d after the sweep, cap %d", st.Leases, limit)
	}
}
