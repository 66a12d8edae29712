package l2switch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func nextFrame(t *testing.T, c *Capture) CapturedFrame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f, err := c.Next(ctx)
	if err != nil {
		t.Fatalf("capture Next: %v", err)
	}
	return f
}

func TestCapture(t *testing.T) {
	sw := newSwitch(t, Config{})
	a := addHost(t, sw, "a", mac(1), PortConfig{})
	b := addHost(t, sw, "b", mac(2), PortConfig{})
	trunk := addHost(t, sw, "t", mac(3), PortConfig{Trunk: []uint16{10}})
	_ = trunk

	all, err := sw.Capture("", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	onB, err := sw.Capture("b", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer onB.Close()
	if _, err := sw.Capture("nope", 0); err == nil {
		t.Error("Capture(unknown port) succeeded")
	}

	// b announces itself (flooded), then a sends it unicast frames.
	b.send(eth(mac(1), mac(2), "hello a"))
	a.expect("hello a")
	sent := [][]byte{eth(mac(2), mac(1), "one"), eth(mac(2), mac(1), "two")}
	a.send(sent...)
	b.expect("one")
	b.expect("two")

	// The switch-wide capture sees each frame once, as it entered.
	for _, want := range []struct {
		port, payload string
	}{{"b", "hello a"}, {"a", "one"}, {"a", "two"}} {
		f := nextFrame(t, all)
		if f.Port != want.port || !f.Ingress || payload(f.Buf.Bytes()) != want.payload || f.Time.IsZero() {
			t.Errorf("switch capture: %s ingress=%v %q, want ingress at %s %q", f.Port, f.Ingress, payload(f.Buf.Bytes()), want.port, want.payload)
		}
		f.Buf.Release()
	}
	// The port capture sees what b sent in and what the switch sent out to it.
	f := nextFrame(t, onB)
	if !f.Ingress || payload(f.Buf.Bytes()) != "hello a" {
		t.Errorf("port capture first: ingress=%v %q, want b's own frame", f.Ingress, payload(f.Buf.Bytes()))
	}
	f.Buf.Release()
	for k := range sent {
		f := nextFrame(t, onB)
		if f.Ingress || f.Port != "b" || !bytes.Equal(f.Buf.Bytes(), sent[k]) {
			t.Errorf("port capture egress %d: ingress=%v port %s, bytes equal %v", k, f.Ingress, f.Port, bytes.Equal(f.Buf.Bytes(), sent[k]))
		}
		f.Buf.Release()
	}

	// A capture on a trunk shows the tag the frame carries on the wire.
	onT, err := sw.Capture("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer onT.Close()
	trunk.send(tagged(mac(9), mac(3), 10, "tagged"))
	f = nextFrame(t, onT)
	if !bytes.Equal(f.Buf.Bytes()[12:16], []byte{0x81, 0x00, 0, 10}) {
		t.Errorf("trunk capture lost the tag: % x", f.Buf.Bytes()[:18])
	}
	f.Buf.Release()
}

func TestCaptureNeverSlowsTheSwitch(t *testing.T) {
	sw := newSwitch(t, Config{})
	a := addHost(t, sw, "a", mac(1), PortConfig{})
	b := addHost(t, sw, "b", mac(2), PortConfig{})
	b.send(eth(mac(1), mac(2), "hi"))
	a.expect("hi")
	c, err := sw.Capture("", 2) // nobody reads it
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := 0; i < n; i++ {
		a.send(eth(mac(2), mac(1), fmt.Sprint(i)))
	}
	for i := 0; i < n; i++ {
		b.expect(fmt.Sprint(i))
	}
	if got := c.Dropped(); got != n-2 {
		t.Errorf("Dropped() = %d, want %d (queue of 2, %d frames)", got, n-2, n)
	}
	if st := sw.Stats(); st.Captures != 1 || st.CaptureDropped != n-2 {
		t.Errorf("Stats() captures %d, capture_dropped %d; want 1, %d", st.Captures, st.CaptureDropped, n-2)
	}
	c.Close()
	c.Close()
	if st := sw.Stats(); st.Captures != 0 || st.CaptureDropped != n-2 {
		t.Errorf("after Close: Stats() captures %d, capture_dropped %d; want 0, %d (kept)", st.Captures, st.CaptureDropped, n-2)
	}
	if _, err := c.Next(context.Background()); !errors.Is(err, ErrCaptureClosed) {
		t.Errorf("Next after Close = %v, want ErrCaptureClosed", err)
	}
	if sw.captures.Load() != nil {
		t.Error("closed capture still registered")
	}
}
