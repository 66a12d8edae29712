package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"testing"
	"time"
)

const l3Pair = `
[[namespace]]
name = "a"
  [[namespace.nic]]
  name = "v0"
  kind = "l3"
  peer = "b:v0"
  addresses = ["10.7.0.1/32", "fd07::1/128"]
[[namespace]]
name = "b"
  [[namespace.nic]]
  name = "v0"
  kind = "l3"
  peer = "a:v0"
  addresses = ["10.7.0.2/32", "fd07::2/128"]
`

// A pair of kind = "l3" NICs with host addresses only: each namespace routes to the
// other, pings and TCP cross with their bytes intact, status shows the kind, no
// neighbour entry appears, and a namespace cannot bind its peer's address.
func TestL3Pair(t *testing.T) {
	d := New(Options{Logger: quiet()})
	defer d.Close()
	if err := d.Apply(parse(t, l3Pair)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, to := range []string{"10.7.0.2", "fd07::2"} {
		ok := false
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d.Ping(ctx, "a", mustAddr(to), 1, time.Second, func(r PingResult) { ok = r.Error == "" })
		cancel()
		if !ok {
			t.Fatalf("a cannot ping %s over the l3 pair", to)
		}
	}
	a, err := d.Namespace("a")
	if err != nil {
		t.Fatalf("Namespace(a): %v", err)
	}
	b, err := d.Namespace("b")
	if err != nil {
		t.Fatalf("Namespace(b): %v", err)
	}
	l, err := b.Listen("tcp", "[fd07::2]:9000")
	if err != nil {
		t.Fatalf("b.Listen: %v", err)
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
	c, err := a.Dial(ctx, "tcp", "[fd07::2]:9000")
	if err != nil {
		t.Fatalf("a.Dial([fd07::2]:9000): %v", err)
	}
	c.Write(want)
	c.Close()
	select {
	case p := <-got:
		if !bytes.Equal(p, want) {
			t.Fatalf("b received %d bytes, want the %d sent", len(p), len(want))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("transfer did not finish")
	}
	if l, err := a.Listen("tcp", "10.7.0.2:80"); err == nil {
		l.Close()
		t.Fatal("a bound b's address 10.7.0.2")
	}
	for _, ns := range d.Status().Namespaces {
		for _, i := range ns.Interfaces {
			if i.Name == "v0" && i.Kind != "l3" {
				t.Errorf("status of %s.v0: kind %q, want l3", ns.Name, i.Kind)
			}
		}
	}
	if n := a.Neighbors(); len(n) != 0 {
		t.Errorf("a.Neighbors() = %+v, want none over an l3 pair", n)
	}
}
