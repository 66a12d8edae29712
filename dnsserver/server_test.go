package dnsserver

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestAnswer(t *testing.T) {
	s := New(Options{})
	nic, ns := Names("eth0", "alpha", "lab.")
	s.SetRecords(map[string][]netip.Addr{
		nic: {netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::2")},
		ns:  {netip.MustParseAddr("10.0.0.2")},
	})
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
	}{
		{"eth0.alpha.lab.", dns.TypeA, dns.RcodeSuccess, []string{"10.0.0.2"}},
		{"ETH0.Alpha.LAB.", dns.TypeAAAA, dns.RcodeSuccess, []string{"fd00::2"}},
		{"alpha.lab.", dns.TypeA, dns.RcodeSuccess, []string{"10.0.0.2"}},
		{"alpha.lab.", dns.TypeAAAA, dns.RcodeSuccess, nil},
		{"beta.lab.", dns.TypeA, dns.RcodeNameError, nil},
		{"example.com.", dns.TypeA, dns.RcodeNameError, nil},
	} {
		t.Run(tc.name+dns.TypeToString[tc.qtype], func(t *testing.T) {
			q := new(dns.Msg)
			q.SetQuestion(tc.name, tc.qtype)
			r := s.Answer(q)
			if r.Rcode != tc.rcode {
				t.Errorf("Answer(%s %s).Rcode = %d, want %d", tc.name, dns.TypeToString[tc.qtype], r.Rcode, tc.rcode)
			}
			var got []string
			for _, rr := range r.Answer {
				switch v := rr.(type) {
				case *dns.A:
					got = append(got, v.A.String())
				case *dns.AAAA:
					got = append(got, v.AAAA.String())
				}
			}
			if len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
				t.Errorf("Answer(%s %s) = %v, want %v", tc.name, dns.TypeToString[tc.qtype], got, tc.want)
			}
			if r.RecursionAvailable {
				t.Errorf("Answer().RecursionAvailable = true, want false")
			}
		})
	}
}

func TestServeUDPAndReload(t *testing.T) {
	s := New(Options{})
	s.SetRecords(map[string][]netip.Addr{"a.lab": {netip.MustParseAddr("10.1.1.1")}})
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, conn) }()
	c := &dns.Client{Timeout: 2 * time.Second}
	ask := func(name string) *dns.Msg {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		var r *dns.Msg
		for i := 0; i < 20; i++ { // server may not be up yet
			if r, _, err = c.Exchange(q, conn.LocalAddr().String()); err == nil {
				return r
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("Exchange(%s) = %v", name, err)
		return nil
	}
	if r := ask("a.lab."); len(r.Answer) != 1 {
		t.Errorf("Exchange(a.lab.) answers = %v, want one A", r.Answer)
	}
	s.SetRecords(map[string][]netip.Addr{"b.lab": {netip.MustParseAddr("10.1.1.2")}})
	if r := ask("a.lab."); r.Rcode != dns.RcodeNameError {
		t.Errorf("after SetRecords, Exchange(a.lab.).Rcode = %d, want NXDOMAIN", r.Rcode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve() after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve() did not return within 5s of cancel")
	}
}

// A name with more addresses than fit in 512 bytes: over UDP the answer comes back
// truncated (TC set), over TCP whole.
func TestLargeAnswerTruncatedOverUDPWholeOverTCP(t *testing.T) {
	s := New(Options{})
	var addrs []netip.Addr
	for i := range 60 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{10, 2, 0, byte(i + 1)}))
	}
	s.SetRecords(map[string][]netip.Addr{"many.lab": addrs})
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx, conn)
	go s.ServeTCP(ctx, l)
	q := new(dns.Msg)
	q.SetQuestion("many.lab.", dns.TypeA)
	exchange := func(c *dns.Client, addr string) *dns.Msg {
		t.Helper()
		var r *dns.Msg
		for i := 0; i < 20; i++ { // server may not be up yet
			if r, _, err = c.Exchange(q, addr); err == nil {
				return r
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("Exchange over %s = %v", c.Net, err)
		return nil
	}
	udp := exchange(&dns.Client{Net: "udp", Timeout: 2 * time.Second}, conn.LocalAddr().String())
	if !udp.Truncated || len(udp.Answer) >= len(addrs) {
		t.Errorf("over UDP: TC=%v with %d answers, want TC set and fewer than %d", udp.Truncated, len(udp.Answer), len(addrs))
	}
	tcp := exchange(&dns.Client{Net: "tcp", Timeout: 2 * time.Second}, l.Addr().String())
	if tcp.Truncated || len(tcp.Answer) != len(addrs) {
		t.Errorf("over TCP: TC=%v with %d answers, want all %d", tcp.Truncated, len(tcp.Answer), len(addrs))
	}
}
