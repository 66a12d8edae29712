package vmsock

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/internal/testwait"
	l2switch "github.com/vnetd/vnetd/switch"
)

// readVM reads one QEMU-framed frame from a VM's end of the socket.
func readVM(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	var h [4]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		t.Fatalf("read length from the VM socket: %v", err)
	}
	f := make([]byte, binary.BigEndian.Uint32(h[:]))
	if _, err := io.ReadFull(c, f); err != nil {
		t.Fatalf("read frame from the VM socket: %v", err)
	}
	return f
}

// vmEth builds a 60-byte frame from src to dst with a payload byte.
func vmEth(dst, src frame.MAC, b byte) []byte {
	f := make([]byte, 60)
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:14], 0x88b5)
	f[14] = b
	return f
}

// TestStreamPeerVanishesMidFrame: a VM writes a length prefix and half a frame, then
// its socket closes. Its port leaves the switch (the daemon's wiring: OnPortGone
// removes it), its FDB entry goes, the goroutines it had are gone, and two other VMs
// on the same switch keep exchanging frames before, during and after.
func TestStreamPeerVanishesMidFrame(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sw := l2switch.New(l2switch.Config{Name: "s", Logger: log, AgeEvery: -1})
	defer sw.Close()
	path := filepath.Join(t.TempDir(), "vm.sock")
	names := make(chan string, 8)
	l, err := Listen(Options{Path: path, Logger: log,
		OnPort: func(p frame.Port, name string) {
			if err := sw.AddPort(p, l2switch.PortConfig{Name: name}); err != nil {
				t.Errorf("sw.AddPort(%q): %v", name, err)
				p.Close()
				return
			}
			names <- name
		},
		OnPortGone: func(name string) { go sw.RemovePort(name) }})
	if err != nil {
		t.Fatalf("Listen(%q) = %v", path, err)
	}
	defer l.Close()
	connect := func() (net.Conn, string) {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("Dial(%q) = %v", path, err)
		}
		t.Cleanup(func() { c.Close() })
		select {
		case n := <-names:
			return c, n
		case <-time.After(10 * time.Second):
			t.Fatal("VM port not added to the switch within 10 s")
		}
		return nil, ""
	}
	portNames := func() []string {
		var out []string
		for _, p := range sw.Ports() {
			out = append(out, p.Name)
		}
		return out
	}
	macB, macC, macV := frame.MAC{2, 0, 0, 0, 0, 0xb}, frame.MAC{2, 0, 0, 0, 0, 0xc}, frame.MAC{2, 0, 0, 0, 0, 0xe}
	b, _ := connect()
	c, _ := connect()
	exchange := func(tag byte) {
		t.Helper()
		if err := writeQEMU(b, vmEth(macC, macB, tag)); err != nil {
			t.Fatalf("VM b write: %v", err)
		}
		if got := readVM(t, c); got[14] != tag || !bytes.Equal(got[6:12], macB[:]) {
			t.Fatalf("VM c read % x, want the frame from b tagged %d", got[:15], tag)
		}
		if err := writeQEMU(c, vmEth(macB, macC, tag)); err != nil {
			t.Fatalf("VM c write: %v", err)
		}
		if got := readVM(t, b); got[14] != tag || !bytes.Equal(got[6:12], macC[:]) {
			t.Fatalf("VM b read % x, want the frame from c tagged %d", got[:15], tag)
		}
	}
	// b and c learn each other (the first frame floods) and talk.
	exchange(1)
	exchange(2)

	runtime.GC()
	goroutines := runtime.NumGoroutine()

	v, vName := connect()
	// v announces itself (b and c see the broadcast), so the switch learns its MAC.
	if err := writeQEMU(v, vmEth(frame.Broadcast, macV, 3)); err != nil {
		t.Fatalf("VM v write: %v", err)
	}
	readVM(t, b)
	readVM(t, c)
	testwait.Eventually(t, 10*time.Second, func() bool { _, ok := sw.LookupPort(0, macV); return ok },
		"the switch did not learn v's MAC")
	exchange(4)

	// Half a frame: a length prefix for 1514 bytes, 700 of them, then the VM is gone.
	var h [4]byte
	binary.BigEndian.PutUint32(h[:], 1514)
	half := append(h[:], vmEth(macB, macV, 5)...)
	half = append(half, make([]byte, 700-60)...)
	if _, err := v.Write(half); err != nil {
		t.Fatalf("VM v write half a frame: %v", err)
	}
	v.Close()

	testwait.Eventually(t, 10*time.Second, func() bool { return !slices.Contains(portNames(), vName) },
		"port %q still on the switch after its VM vanished mid-frame: %v", vName, portNames())
	if _, ok := sw.LookupPort(0, macV); ok {
		t.Errorf("sw.LookupPort(v's MAC) still finds a port after the port left")
	}
	if st := l.Stats(); st.Ports != 2 {
		t.Errorf("l.Stats().Ports = %d after the VM left, want 2", st.Ports)
	}
	// The half frame is not delivered: b's next frame is from c.
	exchange(6)
	if !testwait.Until(10*time.Second, func() bool { runtime.GC(); return runtime.NumGoroutine() <= goroutines }) {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after the VM left, %d before it came:\n%s", runtime.NumGoroutine(), goroutines, buf[:runtime.Stack(buf, true)])
	}
	// Ten more VMs come and vanish mid-frame the same way; b and c keep talking.
	for i := range 10 {
		v, _ := connect()
		v.Write(half)
		v.Close()
		exchange(byte(10 + i))
	}
	testwait.Eventually(t, 10*time.Second, func() bool { return len(sw.Ports()) == 2 && l.Stats().Ports == 2 },
		"after 10 more vanishing VMs: switch ports %v, listener %+v; want b and c only", portNames(), l.Stats())
	if !testwait.Until(10*time.Second, func() bool { runtime.GC(); return runtime.NumGoroutine() <= goroutines }) {
		t.Errorf("%d goroutines after 10 more VMs vanished, %d before", runtime.NumGoroutine(), goroutines)
	}
}
