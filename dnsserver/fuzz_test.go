package dnsserver

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// FuzzUDPReply feeds arbitrary datagrams to the server as its UDP path sees them (the
// library unpacks, the server answers and truncates): nothing may panic, and every
// answer must be a response to the query's ID that packs within the client's size.
func FuzzUDPReply(f *testing.F) {
	s := New(Options{})
	recs := map[string][]netip.Addr{"alpha.lab": {netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("fd00::10")}}
	var many []netip.Addr
	for i := range 100 {
		many = append(many, netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}))
	}
	recs["many.lab"] = many
	s.SetRecords(recs)
	for _, q := range []struct {
		name string
		t    uint16
		edns uint16
	}{{"alpha.lab.", dns.TypeA, 0}, {"ALPHA.lab.", dns.TypeAAAA, 0}, {"many.lab.", dns.TypeANY, 0}, {"many.lab.", dns.TypeA, 4096}, {"nope.lab.", dns.TypeA, 0}} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.t)
		if q.edns > 0 {
			m.SetEdns0(q.edns, false)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0})
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, b []byte) {
		q := new(dns.Msg)
		if err := q.Unpack(b); err != nil {
			return
		}
		r := s.udpReply(ctx, q)
		if r.Id != q.Id || !r.Response {
			t.Fatalf("reply id %d response %v to query id %d", r.Id, r.Response, q.Id)
		}
		out, err := r.Pack()
		if err != nil {
			// miekg/dns echoes the question back; a question it cannot pack is the
			// library's to refuse, but the server must have answered it as an error.
			if r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
				t.Fatalf("answer with records does not pack: %v\n%v", err, r)
			}
			return
		}
		if size := udpSize(q); len(out) > size && len(r.Answer) > 0 {
			t.Fatalf("answer is %d bytes, client takes %d\n%v", len(out), size, fmt.Sprint(r))
		}
	})
}
