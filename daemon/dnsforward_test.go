package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeResolver answers every A query with 192.0.2.7 on 127.0.0.1 (UDP), standing in
// for the host's resolver, and returns a resolv.conf naming it.
func fakeResolver(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		r := new(dns.Msg)
		r.SetReply(q)
		r.RecursionAvailable = true
		r.Answer = append(r.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: net.IPv4(192, 0, 2, 7)})
		w.WriteMsg(r)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	p := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(p, []byte("nameserver "+pc.LocalAddr().String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDNSForwardInNamespace: a namespace's dns service with forward = true answers a
// name outside lab. from the resolver of its resolv_conf, its own names itself, and
// counts the forwarded query in Status.
func TestDNSForwardInNamespace(t *testing.T) {
	rc := fakeResolver(t)
	src := fmt.Sprintf(`
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
  forward = true
  resolv_conf = %q
`, rc)
	d := New(Options{Logger: quiet()})
	defer d.Close()
	if err := d.Apply(parse(t, src)); err != nil {
		t.Fatalf("Apply() = %v", err)
	}
	ns, err := d.Namespace("alpha")
	if err != nil {
		t.Fatal(err)
	}
	ask := func(name string) *dns.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := ns.Dial(ctx, "tcp", "10.0.0.10:53")
		if err != nil {
			t.Fatalf("dial the dns service: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		dc := &dns.Conn{Conn: c}
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		if err := dc.WriteMsg(q); err != nil {
			t.Fatal(err)
		}
		r, err := dc.ReadMsg()
		if err != nil {
			t.Fatalf("query %s: %v", name, err)
		}
		return r
	}
	if r := ask("www.example.org."); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.7" {
		t.Errorf("www.example.org. = %v, want 192.0.2.7 from the host resolver", r)
	}
	if r := ask("alpha.lab."); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.0.0.10" {
		t.Errorf("alpha.lab. = %v, want the zone's 10.0.0.10", r)
	}
	st := d.Status()
	if len(st.Namespaces) != 1 || len(st.Namespaces[0].DNS) != 1 || st.Namespaces[0].DNS[0].Forward == nil || st.Namespaces[0].DNS[0].Forward.Forwarded != 1 {
		t.Errorf("Status().Namespaces = %+v, want alpha's dns with 1 forwarded", st.Namespaces)
	}
}

func TestDNSForwardMissingResolvConf(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.conf")
	d := New(Options{Logger: quiet()})
	defer d.Close()
	err := d.Apply(parse(t, fmt.Sprintf("[[namespace]]\nname = \"alpha\"\n  [[namespace.service]]\n  kind = \"dns\"\n  forward = true\n  resolv_conf = %q\n", missing)))
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Apply(resolv_conf missing) = %v, want an error naming %s", err, missing)
	}
	if st := d.Status(); len(st.Namespaces) != 0 {
		t.Errorf("after the failed start %d namespaces run, want none", len(st.Namespaces))
	}
}
