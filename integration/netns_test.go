package integration

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

// needRoot skips t when not root, or fails it when VNETD_INTEGRATION=1 demands the test.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("VNETD_INTEGRATION") == "1" {
		t.Fatalf("test needs root (CAP_NET_ADMIN to create network namespaces and TAPs), VNETD_INTEGRATION=1 set")
	}
	t.Skip("needs root (CAP_NET_ADMIN to create network namespaces and TAPs); set VNETD_INTEGRATION=1 to make this a failure")
}

// newNetns creates a network namespace with a unique name, brings its loopback up,
// and deletes it (with everything inside) when the test ends.
func newNetns(t *testing.T, prefix string) string {
	t.Helper()
	var r [3]byte
	_, _ = rand.Read(r[:])
	name := "vt-" + prefix + "-" + hex.EncodeToString(r[:])
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	inNetns(t, name, "ip", "link", "set", "lo", "up")
	return name
}

// inNetns runs a command inside netns ns and fails the test if it fails.
func inNetns(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := nsCommand(ns, args...)
	if err != nil {
		t.Fatalf("ip netns exec %s %s: %v: %s", ns, strings.Join(args, " "), err, out)
	}
	return out
}

// nsCommand runs a command inside netns ns and returns its combined output.
func nsCommand(ns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out), err
}

// doInNetns runs fn on an OS thread switched into netns ns, so sockets and devices fn
// creates belong to ns. The thread is switched back before it is released.
func doInNetns(t *testing.T, ns string, fn func() error) error {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("netns.Get() = %v", err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatalf("netns.GetFromName(%q) = %v", ns, err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		t.Fatalf("netns.Set(%s) = %v", ns, err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic("cannot switch thread back to its network namespace: " + err.Error())
		}
	}()
	return fn()
}

// nsCommandExec runs a command in the test's own network namespace (used only for
// moving a device into a test netns).
func nsCommandExec(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}
