package daemon

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd/config"
)

func addForward(t *testing.T, d *Daemon, listen, ns, target string) {
	t.Helper()
	if _, err := d.AddForward(config.ForwardSpec{Listen: listen, Namespace: ns, Target: target}); err != nil {
		t.Fatalf("AddForward(%s -> %s in %s) = %v", listen, target, ns, err)
	}
}

func echoes(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(3 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo %q, want %q", buf, msg)
	}
	return nil
}

// TestRuntimeForwardsAcrossReload: at a reload, a runtime forward the new config
// does not touch keeps running (a connection through it keeps carrying bytes); one
// whose name the config now has becomes the config's, listener kept; one whose port
// a config forward takes, and one whose namespace is gone, are stopped.
func TestRuntimeForwardsAcrossReload(t *testing.T) {
	port := freePort(t)
	d := New(Options{Logger: quiet()})
	defer d.Close()
	if err := d.Apply(parse(t, fmt.Sprintf(base, port)+delta)); err != nil {
		t.Fatalf("Apply() = %v", err)
	}
	a, b, c, e := freePort(t), freePort(t), freePort(t), freePort(t)
	addr := func(p int) string { return fmt.Sprintf("127.0.0.1:%d", p) }
	addForward(t, d, addr(a), "alpha", "10.0.0.10:80")
	addForward(t, d, addr(b), "delta", "10.0.0.30:9")
	addForward(t, d, addr(c), "alpha", "10.0.0.10:80")
	addForward(t, d, addr(e), "beta", "10.0.0.20:7")
	held, err := net.Dial("tcp", addr(e))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := echoes(held, "before"); err != nil {
		t.Fatalf("echo through the runtime forward before the reload: %v", err)
	}

	next := fmt.Sprintf(base, port) +
		fmt.Sprintf("[[forward]]\nlisten = %q\nnamespace = \"beta\"\ntarget = \"10.0.0.20:7\"\n", addr(c)) +
		fmt.Sprintf("[[forward]]\nlisten = \"0.0.0.0:%d\"\nnamespace = \"alpha\"\ntarget = \"10.0.0.10:80\"\n", a)
	if err := d.Apply(parse(t, next)); err != nil {
		t.Fatalf("Apply(reload) = %v", err)
	}
	got := map[string]string{}
	for _, f := range d.Forwards() {
		got[f.Name] = f.Origin + " " + f.Namespace
	}
	want := map[string]string{
		"tcp/" + addr(port):              "config alpha",
		"tcp/" + addr(c):                 "config beta",
		fmt.Sprintf("tcp/0.0.0.0:%d", a): "config alpha",
		"tcp/" + addr(e):                 "runtime beta",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Forwards() after the reload = %v, want %v", got, want)
	}
	if err := echoes(held, "after"); err != nil {
		t.Errorf("the connection through the kept runtime forward after the reload: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", addr(b), time.Second); err == nil {
		conn.Close()
		t.Errorf("the runtime forward into the removed namespace delta still listens")
	}
	// The adopted forward now goes where the config says: beta's echo.
	conn, err := net.Dial("tcp", addr(c))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := echoes(conn, "adopted"); err != nil {
		t.Errorf("through the adopted forward: %v", err)
	}
}

func TestRuntimeForwardErrors(t *testing.T) {
	d := New(Options{Logger: quiet()})
	defer d.Close()
	if _, err := d.AddForward(config.ForwardSpec{Listen: "127.0.0.1:1", Namespace: "alpha", Target: "10.0.0.10:80"}); err == nil || !strings.Contains(err.Error(), "no lab is running") {
		t.Errorf("AddForward before Apply = %v, want \"no lab is running\"", err)
	}
	port := freePort(t)
	if err := d.Apply(parse(t, fmt.Sprintf(base, port))); err != nil {
		t.Fatal(err)
	}
	_, err := d.AddForward(config.ForwardSpec{Listen: fmt.Sprintf("127.0.0.1:%d", port), Namespace: "alpha", Target: "10.0.0.10:80"})
	if !errors.Is(err, ErrInvalidForward) || !strings.Contains(err.Error(), "duplicate forward") {
		t.Errorf("AddForward(the config's own listen) = %v, want ErrInvalidForward, duplicate", err)
	}
	if err := d.RemoveForward("tcp/127.0.0.1:1"); !errors.Is(err, ErrNoForward) {
		t.Errorf("RemoveForward(unknown) = %v, want ErrNoForward", err)
	}
}
