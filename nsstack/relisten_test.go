package nsstack

import (
	"context"
	"io"
	"testing"
	"time"
)

// TestRelistenAfterServerClose: a TCP server that closed a connection first (its end
// then waits in TIME_WAIT) can listen on its port again at once, as a Go or C server
// with SO_REUSEADDR can: a daemon reload that restarts a DNS service hit "port is in
// use" here.
func TestRelistenAfterServerClose(t *testing.T) {
	ns := newNS(t, "a")
	l, err := ns.Listen("tcp4", "127.0.0.1:53")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ns.Dial(ctx, "tcp4", "127.0.0.1:53")
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("x"))
	s.Close() // the server closes first: its end goes to TIME_WAIT
	if b, err := io.ReadAll(c); err != nil || string(b) != "x" {
		t.Fatalf("client read %q, %v", b, err)
	}
	c.Close()
	l.Close()
	l, err = ns.Listen("tcp4", "127.0.0.1:53")
	if err != nil {
		t.Fatalf("listen again after the server closed a connection: %v", err)
	}
	defer l.Close()
	// SO_REUSEADDR does not let two listeners share a port.
	if l2, err := ns.Listen("tcp4", "127.0.0.1:53"); err == nil {
		l2.Close()
		t.Fatal("a second listener on 127.0.0.1:53 was allowed")
	}
	// (gVisor does let a wildcard listener join a specific one under SO_REUSEADDR,
	// which Linux refuses; the daemon's config refuses two services on one port.)
}
