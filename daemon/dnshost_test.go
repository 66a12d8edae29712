package daemon

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestDNSHostAlias: the dns service answers host.ZONE with the gateways' host
// loopback aliases (A and AAAA) while a gateway with host/host6 is on the lab, a
// static record of that name wins, and the name goes when the gateway does.
func TestDNSHostAlias(t *testing.T) {
	const lab = `
[[switch]]
name = "lan0"
[[namespace]]
name = "alpha"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.10/24"]
  [[namespace.service]]
  kind = "dns"
  zone = "test."
  %s
%s
`
	const gw = `
[[gateway]]
name = "gw0"
switch = "lan0"
addresses = ["10.0.0.2/24", "fd00::2/64"]
host = "10.0.2.2"
host6 = "fd00:2::2"
`
	d := New(Options{Logger: quiet()})
	defer func() { d.Close() }()
	ask := func(name string, qtype uint16) *dns.Msg {
		t.Helper()
		ns, err := d.Namespace("alpha")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := ns.Dial(ctx, "udp", "10.0.0.10:53")
		if err != nil {
			t.Fatalf("dial the dns service: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		dc := &dns.Conn{Conn: c}
		q := new(dns.Msg)
		q.SetQuestion(name, qtype)
		if err := dc.WriteMsg(q); err != nil {
			t.Fatal(err)
		}
		r, err := dc.ReadMsg()
		if err != nil {
			t.Fatalf("query %s: %v", name, err)
		}
		return r
	}
	answer := func(r *dns.Msg) []string {
		var out []string
		for _, rr := range r.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				out = append(out, rr.A.String())
			case *dns.AAAA:
				out = append(out, rr.AAAA.String())
			}
		}
		return out
	}
	apply := func(records, gateways string) {
		t.Helper()
		if err := d.Apply(parse(t, fmt.Sprintf(lab, records, gateways))); err != nil {
			t.Fatalf("Apply() = %v", err)
		}
	}

	apply("", gw)
	if got := answer(ask("host.test.", dns.TypeA)); len(got) != 1 || got[0] != "10.0.2.2" {
		t.Errorf("host.test. A = %v, want [10.0.2.2] (gw0's host alias)", got)
	}
	if got := answer(ask("HOST.test.", dns.TypeAAAA)); len(got) != 1 || got[0] != "fd00:2::2" {
		t.Errorf("HOST.test. AAAA = %v, want [fd00:2::2] (gw0's host6 alias)", got)
	}
	apply("", "")
	if r := ask("host.test.", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("without a gateway, host.test. = %v, want NXDOMAIN", r)
	}
	// A static record named host.ZONE is the operator's choice: it wins. (A fresh
	// daemon: a reload that changes the service's records restarts it, and its new
	// TCP listener can race the old one's close, a separate issue.)
	d.Close()
	d = New(Options{Logger: quiet()})
	apply(`records = [ { name = "host.test.", a = "10.0.0.99" } ]`, gw)
	if got := answer(ask("host.test.", dns.TypeA)); len(got) != 1 || got[0] != "10.0.0.99" {
		t.Errorf("with a static host.test. record, host.test. A = %v, want [10.0.0.99]", got)
	}
}
