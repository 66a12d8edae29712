package dnsserver

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// upstream is a resolver on 127.0.0.1 (UDP and TCP on one port) standing in for the
// host's: "one.example." has one A record, "many.example." 60 (truncated over UDP),
// "slow.example." answers after 300 ms; it counts queries and the most at once.
type upstream struct {
	addr             string
	udpQueries, tcpQ atomic.Int64
	now, most        atomic.Int64
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	var pc net.PacketConn
	var l net.Listener
	for i := 0; ; i++ {
		var err error
		if pc, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp4", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if i == 20 {
			t.Fatalf("no port free for both UDP and TCP: %v", err)
		}
	}
	u.addr = pc.LocalAddr().String()
	handler := func(udp bool) dns.HandlerFunc {
		return func(w dns.ResponseWriter, q *dns.Msg) {
			if udp {
				u.udpQueries.Add(1)
			} else {
				u.tcpQ.Add(1)
			}
			n := u.now.Add(1)
			defer u.now.Add(-1)
			for m := u.most.Load(); n > m && !u.most.CompareAndSwap(m, n); m = u.most.Load() {
			}
			r := new(dns.Msg)
			r.SetReply(q)
			r.RecursionAvailable = true
			count := 0
			switch q.Question[0].Name {
			case "one.example.":
				count = 1
			case "many.example.":
				count = 60
			case "slow.example.":
				time.Sleep(300 * time.Millisecond)
				count = 1
			default:
				r.Rcode = dns.RcodeNameError
			}
			for i := range count {
				r.Answer = append(r.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30},
					A: net.IPv4(192, 0, 2, byte(i+1))})
			}
			if udp {
				r.Truncate(dns.MinMsgSize)
			}
			w.WriteMsg(r)
		}
	}
	us := &dns.Server{PacketConn: pc, Handler: handler(true)}
	ts := &dns.Server{Listener: l, Handler: handler(false)}
	go us.ActivateAndServe()
	go ts.ActivateAndServe()
	t.Cleanup(func() { us.Shutdown(); ts.Shutdown() })
	return u
}

func resolvConf(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// serveLab runs a lab. server with forwarder f on 127.0.0.1 (UDP and TCP) and
// returns its UDP and TCP addresses.
func serveLab(t *testing.T, f *Forwarder) (string, string) {
	t.Helper()
	s := New(Options{Forward: f})
	s.SetRecords(map[string][]netip.Addr{"alpha.lab": {netip.MustParseAddr("10.0.0.10")}})
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.Serve(ctx, pc) }()
	go func() { defer wg.Done(); s.ServeTCP(ctx, l) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return pc.LocalAddr().String(), l.Addr().String()
}

func ask(t *testing.T, network, addr, name string) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	c := &dns.Client{Net: network, Timeout: 3 * time.Second}
	var err error
	for i := 0; i < 20; i++ { // the server may not be up yet
		var r *dns.Msg
		if r, _, err = c.Exchange(q, addr); err == nil {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("Exchange(%s over %s) = %v", name, network, err)
	return nil
}

// TestForwardOutsideZone: names outside the zone are answered by the upstream from
// the resolv.conf file (a truncated upstream answer fetched again over TCP); names in
// the zone never leave the server, NXDOMAIN included.
func TestForwardOutsideZone(t *testing.T) {
	u := startUpstream(t)
	f, err := NewForwarder(ForwarderOptions{ResolvConf: resolvConf(t, "# test", "search example", "nameserver "+u.addr)})
	if err != nil {
		t.Fatalf("NewForwarder: %v", err)
	}
	udp, tcp := serveLab(t, f)

	if r := ask(t, "udp", udp, "one.example."); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || !r.RecursionAvailable {
		t.Errorf("one.example. through the forwarder = %v", r)
	}
	if r := ask(t, "udp", udp, "alpha.lab."); len(r.Answer) != 1 || !r.Authoritative {
		t.Errorf("alpha.lab. = %v, want the zone's own authoritative answer", r)
	}
	if r := ask(t, "udp", udp, "nope.lab."); r.Rcode != dns.RcodeNameError {
		t.Errorf("nope.lab. Rcode = %d, want NXDOMAIN from the zone", r.Rcode)
	}
	if n := u.udpQueries.Load() + u.tcpQ.Load(); n != 1 {
		t.Errorf("upstream saw %d queries, want 1 (zone names stay local)", n)
	}
	// 60 records: the upstream truncates over UDP, the forwarder asks again over TCP;
	// the client gets TC over UDP and the whole answer over TCP.
	if r := ask(t, "udp", udp, "many.example."); !r.Truncated {
		t.Errorf("many.example. over UDP: TC = false with %d answers, want truncated", len(r.Answer))
	}
	if r := ask(t, "tcp", tcp, "many.example."); r.Truncated || len(r.Answer) != 60 {
		t.Errorf("many.example. over TCP: TC = %v with %d answers, want all 60", r.Truncated, len(r.Answer))
	}
	if u.tcpQ.Load() < 2 {
		t.Errorf("upstream TCP queries = %d, want the forwarder to retry each truncated answer over TCP", u.tcpQ.Load())
	}
	if st := f.Stats(); st.Forwarded != 3 || st.Errors != 0 || st.Dropped != 0 || st.Upstreams[0] != u.addr {
		t.Errorf("Stats() = %+v, want 3 forwarded from %s", st, u.addr)
	}
}

// TestForwardInFlightCap: with max 2 in flight, 10 concurrent slow queries reach the
// upstream at most 2 at a time; the rest get SERVFAIL at once and are counted.
func TestForwardInFlightCap(t *testing.T) {
	u := startUpstream(t)
	f, err := NewForwarder(ForwarderOptions{ResolvConf: resolvConf(t, "nameserver "+u.addr), MaxInFlight: 2})
	if err != nil {
		t.Fatal(err)
	}
	udp, _ := serveLab(t, f)
	ask(t, "udp", udp, "alpha.lab.") // the server is up
	var wg sync.WaitGroup
	var servfail atomic.Int64
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := ask(t, "udp", udp, "slow.example."); r.Rcode == dns.RcodeServerFailure {
				servfail.Add(1)
			}
		}()
	}
	wg.Wait()
	st := f.Stats()
	if m := u.most.Load(); m > 2 {
		t.Errorf("upstream saw %d queries at once, want at most 2", m)
	}
	if st.Dropped == 0 || st.Dropped != uint64(servfail.Load()) || st.Forwarded+st.Dropped != 10 || st.InFlight != 0 {
		t.Errorf("Stats() = %+v with %d SERVFAIL answers, want some dropped, each a SERVFAIL, 10 in all", st, servfail.Load())
	}
}

// TestForwardUpstreamDown: no upstream answers: SERVFAIL, counted as an error.
func TestForwardUpstreamDown(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()
	f, err := NewForwarder(ForwarderOptions{ResolvConf: resolvConf(t, "nameserver "+dead), Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	udp, _ := serveLab(t, f)
	if r := ask(t, "udp", udp, "one.example."); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("Rcode with the upstream down = %d, want SERVFAIL", r.Rcode)
	}
	if st := f.Stats(); st.Errors != 1 || st.Forwarded != 0 {
		t.Errorf("Stats() = %+v, want 1 error", st)
	}
}

func TestNewForwarderErrors(t *testing.T) {
	for _, tc := range []struct {
		path, want string
	}{
		{filepath.Join(t.TempDir(), "missing"), "no such file"},
		{resolvConf(t, "# nothing", "search lab"), "names no nameserver"},
	} {
		if _, err := NewForwarder(ForwarderOptions{ResolvConf: tc.path}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewForwarder(%s) = %v, want %q", tc.path, err, tc.want)
		}
	}
	f, err := NewForwarder(ForwarderOptions{ResolvConf: resolvConf(t, "nameserver 127.0.0.1", "nameserver ::1", "nameserver [::1]:5300")})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.Stats().Upstreams, " "); got != "127.0.0.1:53 [::1]:53 [::1]:5300" {
		t.Errorf("upstreams = %q", got)
	}
}
