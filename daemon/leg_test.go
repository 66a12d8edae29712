package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"strings"
	"testing"
	"time"
)

// Two namespaces on L3 legs of one router and one on a switch behind its third leg.
const l3Legs = `
[[switch]]
name = "lan0"

[[router]]
name = "r1"
  [[router.interface]]
  switch = "lan0"
  addresses = ["10.0.0.1/24", "fd00::1/64"]
  [[router.interface]]
  peer = "a:v0"
  addresses = ["10.9.0.1/32", "fd09::1/128"]
  [[router.interface]]
  peer = "b:v0"
  addresses = ["10.9.1.1/32", "fd09:1::1/128"]

[[namespace]]
name = "a"
  [[namespace.nic]]
  name = "v0"
  kind = "l3"
  peer = "r1:a"
  addresses = ["10.9.0.10/32", "fd09::10/128"]

[[namespace]]
name = "b"
  [[namespace.nic]]
  name = "v0"
  kind = "l3"
  peer = "r1:b"
  addresses = ["B4/32", "B6/128"]

[[namespace]]
name = "c"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.10/24", "fd00::10/64"]
  [[namespace.route]]
  to = "0.0.0.0/0"
  via = "10.0.0.1"
  [[namespace.route]]
  to = "::/0"
  via = "fd00::1"
`

func l3LegsConfig(b4, b6 string) string {
	return strings.NewReplacer("B4", b4, "B6", b6).Replace(l3Legs)
}

// ping reports whether from gets an echo reply from to, and the ICMP error it got
// instead if any.
func ping(t *testing.T, d *Daemon, from, to string) (ok bool, icmpErr, errFrom string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.Ping(ctx, from, mustAddr(to), 1, time.Second, func(r PingResult) {
		ok, icmpErr, errFrom = r.Error == "", r.ICMPError, r.From
	})
	return ok, icmpErr, errFrom
}

// sendTCP moves 1 MiB of random bytes from namespace from to a listener of to at
// addr and checks they arrive intact.
func sendTCP(t *testing.T, d *Daemon, from, to, addr string) {
	t.Helper()
	src, err := d.Namespace(from)
	if err != nil {
		t.Fatalf("Namespace(%s): %v", from, err)
	}
	dst, err := d.Namespace(to)
	if err != nil {
		t.Fatalf("Namespace(%s): %v", to, err)
	}
	l, err := dst.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("%s.Listen(%s): %v", to, addr, err)
	}
	defer l.Close()
	want := make([]byte, 1<<20)
	rand.Read(want)
	got := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		p, _ := io.ReadAll(c)
		got <- p
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := src.Dial(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("%s.Dial(%s): %v", from, addr, err)
	}
	c.Write(want)
	c.Close()
	select {
	case p := <-got:
		if !bytes.Equal(p, want) {
			t.Fatalf("%s -> %s %s: received %d bytes, want the %d sent", from, to, addr, len(p), len(want))
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s -> %s %s: transfer did not finish", from, to, addr)
	}
}

// Namespaces with L3 NICs on router legs reach each other and a namespace on a switch
// behind a third leg with no [[route]] lines of their own: pings both families, TCP
// bytes verified, ICMP errors from the router back over a leg. Nothing is resolved on
// the legs, status shows them as l3 with their peers, a namespace binds only its own
// addresses, and a reload that changes one NIC rebuilds it with the router.
func TestL3RouterLegs(t *testing.T) {
	d := New(Options{Logger: quiet()})
	defer d.Close()
	if err := d.Apply(parse(t, l3LegsConfig("10.9.1.10", "fd09:1::10"))); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, p := range [][2]string{
		{"a", "10.9.1.10"}, {"a", "fd09:1::10"}, {"b", "10.9.0.10"}, {"a", "10.0.0.10"}, {"a", "fd00::10"},
		{"c", "10.9.0.10"}, {"c", "fd09:1::10"}, {"a", "10.9.0.1"}, {"b", "10.0.0.1"},
	} {
		if ok, e, _ := ping(t, d, p[0], p[1]); !ok {
			t.Errorf("%s cannot ping %s through the router (icmp error %q)", p[0], p[1], e)
		}
	}
	if ok, e, from := ping(t, d, "a", "192.0.2.9"); ok || !strings.Contains(e, "Unreachable") || from != "10.9.0.1" {
		t.Errorf("a ping 192.0.2.9: reply %v, icmp error %q from %q; want net unreachable from 10.9.0.1", ok, e, from)
	}
	sendTCP(t, d, "a", "b", "[fd09:1::10]:9000")
	sendTCP(t, d, "b", "c", "10.0.0.10:9001")
	sendTCP(t, d, "c", "a", "10.9.0.10:9002")

	a, _ := d.Namespace("a")
	for _, addr := range []string{"10.9.1.10:80", "10.0.0.10:80", "10.9.0.1:80"} {
		if l, err := a.Listen("tcp", addr); err == nil {
			l.Close()
			t.Errorf("a bound %s, not its own address", addr)
		}
	}
	if n := a.Neighbors(); len(n) != 0 {
		t.Errorf("a.Neighbors() = %+v, want none on an l3 leg", n)
	}
	rs, err := d.Router("r1")
	if err != nil {
		t.Fatalf("Router(r1): %v", err)
	}
	for _, n := range rs.Neighbors {
		if n.Iface != "lan0" {
			t.Errorf("router neighbour %+v on a leg, want only lan0's", n)
		}
	}
	legs := map[string]string{}
	for _, i := range rs.Interfaces {
		if i.Kind == "l3" && i.Up && i.Switch == "" {
			legs[i.Name] = i.Peer
		}
		if i.Name == "a" && (i.Dropped["proto"] != 0 || i.Forwarded == 0) {
			t.Errorf("leg a: forwarded %d, drops %v; want traffic and no proto drops", i.Forwarded, i.Dropped)
		}
	}
	if legs["a"] != "a:v0" || legs["b"] != "b:v0" || len(legs) != 2 {
		t.Errorf("router legs up as l3 = %v, want a -> a:v0, b -> b:v0", legs)
	}
	if tr, err := d.Trace(TraceSpec{Switch: "lan0", Port: "c.eth0", Src: "10.0.0.10", Dst: "10.9.0.10"}); err != nil || len(tr.Final) != 1 || tr.Final[0] != "a:v0" {
		t.Errorf("Trace(c -> 10.9.0.10) = final %v, %v; want [a:v0]", tr.Final, err)
	}
	topoLegs := 0
	for _, l := range d.Topology(0).Links {
		if strings.HasPrefix(l.ID, "leg:r1.") && l.From == "router:r1" && (l.To == "ns:a" || l.To == "ns:b") {
			topoLegs++
		}
	}
	if topoLegs != 2 {
		t.Errorf("Topology() has %d router legs, want 2", topoLegs)
	}

	// The NIC end is a link like a pair end's: down, nothing crosses the leg.
	if _, err := d.SetLink(LinkSpec{Namespace: "a", NIC: "v0", State: "down"}); err != nil {
		t.Fatalf("SetLink(a v0 down): %v", err)
	}
	if ok, _, _ := ping(t, d, "c", "10.9.0.10"); ok {
		t.Errorf("c pinged a across a leg whose NIC end is down")
	}
	if _, err := d.SetLink(LinkSpec{Namespace: "a", NIC: "v0", State: "up"}); err != nil {
		t.Fatalf("SetLink(a v0 up): %v", err)
	}
	if ok, _, _ := ping(t, d, "c", "10.9.0.10"); !ok {
		t.Errorf("c cannot ping a after its leg's NIC end is up again")
	}

	// A reload moving b to other addresses rebuilds b and the router, not a's NIC
	// config; everything works again afterwards.
	c2 := parse(t, l3LegsConfig("10.9.1.20", "fd09:1::20"))
	d.mu.Lock()
	pl := planChanges(d.runningLocked(), c2)
	d.mu.Unlock()
	ch := strings.Join(pl.changes(), ", ")
	for _, want := range []string{"remove namespace a", "remove namespace b", "remove router:r1", "add router:r1", "add namespace b"} {
		if !strings.Contains(ch, want) {
			t.Errorf("plan = %s; want %q", ch, want)
		}
	}
	if strings.Contains(ch, "namespace c") {
		t.Errorf("plan = %s; c is on a switch and should be kept", ch)
	}
	if err := d.Apply(c2); err != nil {
		t.Fatalf("Apply (reload): %v", err)
	}
	for _, p := range [][2]string{{"a", "10.9.1.20"}, {"c", "fd09:1::20"}, {"b", "10.9.0.10"}} {
		if ok, e, _ := ping(t, d, p[0], p[1]); !ok {
			t.Errorf("after the reload %s cannot ping %s (icmp error %q)", p[0], p[1], e)
		}
	}
	sendTCP(t, d, "c", "b", "10.9.1.20:9003")
}
