package integration

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	l2switch "github.com/vnetd/vnetd/switch"
	"github.com/vnetd/vnetd/tap"
)

func tapName(t *testing.T, p string) string {
	t.Helper()
	var r [3]byte
	_, _ = rand.Read(r[:])
	return p + hex.EncodeToString(r[:])
}

// openTAPIn creates a TAP. With move, it is created in vnetd's (root) netns and its host
// side moved into ns afterwards (the fd keeps working); otherwise it is created inside ns.
func openTAPIn(t *testing.T, ns string, move, offload bool) *tap.TAP {
	t.Helper()
	name := tapName(t, "vt")
	opts := tap.Options{Name: name, Create: true, MTU: 1500, Offload: offload, Logger: slog.New(slog.DiscardHandler)}
	var tp *tap.TAP
	var err error
	if move {
		tp, err = tap.Open(opts)
		if err == nil {
			if out, e := nsCommandRoot("ip", "link", "set", name, "netns", ns); e != nil {
				tp.Close()
				t.Fatalf("ip link set %s netns %s: %v: %s", name, ns, e, out)
			}
		}
	} else {
		err = doInNetns(t, ns, func() error {
			tp, err = tap.Open(opts)
			return err
		})
	}
	if err != nil {
		t.Fatalf("tap.Open(%+v) = %v", opts, err)
	}
	t.Cleanup(func() { tp.Close() })
	inNetns(t, ns, "ip", "link", "set", name, "up")
	return tp
}

// transferTCP sends n random bytes from netns a to addr (listening in netns b) and checks
// they arrive intact.
func transferTCP(t *testing.T, a, b, listen, dial string, n int) {
	t.Helper()
	var ln net.Listener
	if err := doInNetns(t, b, func() (err error) { ln, err = net.Listen("tcp", listen); return err }); err != nil {
		t.Fatalf("listen %s in %s: %v", listen, b, err)
	}
	defer ln.Close()
	got := make(chan [32]byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- [32]byte{}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		h := sha256.New()
		_, _ = io.Copy(h, c)
		var s [32]byte
		copy(s[:], h.Sum(nil))
		got <- s
	}()
	data := make([]byte, n)
	_, _ = rand.Read(data)
	var c net.Conn
	if err := doInNetns(t, a, func() (err error) { c, err = net.DialTimeout("tcp", dial, 5*time.Second); return err }); err != nil {
		t.Fatalf("dial %s from %s: %v", dial, a, err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(data); err != nil {
		t.Fatalf("write %d bytes: %v", n, err)
	}
	c.Close()
	select {
	case s := <-got:
		if s != sha256.Sum256(data) {
			t.Fatalf("TCP transfer of %d bytes %s -> %s: digest mismatch", n, a, dial)
		}
	case <-time.After(25 * time.Second):
		t.Fatalf("TCP transfer of %d bytes %s -> %s timed out", n, a, dial)
	}
}

func nsCommandRoot(args ...string) (string, error) {
	return nsCommandExec(args...)
}

func ping(ns string, args ...string) error {
	out, err := nsCommand(ns, append([]string{"ping", "-c", "2", "-i", "0.2", "-W", "2"}, args...)...)
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(out))
	}
	return nil
}

func TestTAPSwitchTwoNetns(t *testing.T) {
	needRoot(t)
	for _, offload := range []bool{false, true} {
		t.Run(fmt.Sprintf("offload=%v", offload), func(t *testing.T) {
			nsA, nsB := newNetns(t, "a"), newNetns(t, "b")
			ta := openTAPIn(t, nsA, true, offload) // moved after creation
			tb := openTAPIn(t, nsB, false, offload)
			sw := l2switch.New(l2switch.Config{Name: "tapsw", Logger: slog.New(slog.DiscardHandler)})
			t.Cleanup(func() { sw.Close() })
			for _, p := range []frame.Port{ta, tb} {
				if err := sw.AddPort(p, l2switch.PortConfig{VLAN: 10}); err != nil {
					t.Fatalf("AddPort(%s) = %v", p.Info().Name, err)
				}
			}
			inNetns(t, nsA, "ip", "addr", "add", "10.99.0.1/24", "dev", ta.Name())
			inNetns(t, nsB, "ip", "addr", "add", "10.99.0.2/24", "dev", tb.Name())
			inNetns(t, nsA, "ip", "-6", "addr", "add", "fd99::1/64", "dev", ta.Name(), "nodad")
			inNetns(t, nsB, "ip", "-6", "addr", "add", "fd99::2/64", "dev", tb.Name(), "nodad")
			if err := ping(nsA, "10.99.0.2"); err != nil {
				t.Fatalf("ping 10.99.0.2 from %s: %v", nsA, err)
			}
			if err := ping(nsA, "fd99::2"); err != nil {
				t.Fatalf("ping fd99::2 from %s: %v", nsA, err)
			}
			transferTCP(t, nsA, nsB, "10.99.0.2:5001", "10.99.0.2:5001", 8<<20)
			transferTCP(t, nsB, nsA, "[fd99::1]:5002", "[fd99::1]:5002", 8<<20)
			if offload && ta.Counters.RxBytes.Load()/max(ta.Counters.RxFrames.Load(), 1) < 1600 {
				t.Logf("offload on, but average read frame from %s is %d bytes (no superframes?)", ta.Name(), ta.Counters.RxBytes.Load()/max(ta.Counters.RxFrames.Load(), 1))
			}
		})
	}
}

func TestTAPVLANIsolation(t *testing.T) {
	needRoot(t)
	nsA, nsB, nsT := newNetns(t, "a"), newNetns(t, "b"), newNetns(t, "t")
	ta, tb, tt := openTAPIn(t, nsA, false, true), openTAPIn(t, nsB, false, true), openTAPIn(t, nsT, false, true)
	sw := l2switch.New(l2switch.Config{Name: "vlansw", Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { sw.Close() })
	for _, c := range []struct {
		p  frame.Port
		pc l2switch.PortConfig
	}{{ta, l2switch.PortConfig{VLAN: 10}}, {tb, l2switch.PortConfig{VLAN: 20}}, {tt, l2switch.PortConfig{Trunk: []uint16{10, 20}}}} {
		if err := sw.AddPort(c.p, c.pc); err != nil {
			t.Fatalf("AddPort(%s, %+v) = %v", c.p.Info().Name, c.pc, err)
		}
	}
	inNetns(t, nsA, "ip", "addr", "add", "10.98.0.1/24", "dev", ta.Name())
	inNetns(t, nsB, "ip", "addr", "add", "10.98.0.2/24", "dev", tb.Name())
	inNetns(t, nsB, "ip", "addr", "add", "10.98.1.2/24", "dev", tb.Name())
	if err := ping(nsA, "10.98.0.2"); err == nil {
		t.Errorf("ping 10.98.0.2 (VLAN 20) from VLAN 10 succeeded, want isolation")
	}
	checkTrunkRaw(t, nsA, ta.Name(), nsB, tb.Name(), nsT, tt.Name())
	if out, err := nsCommand(nsT, "ip", "link", "add", "link", tt.Name(), "name", "v10", "type", "vlan", "id", "10"); err != nil {
		t.Logf("trunk checked with raw tagged frames; the IP half over kernel VLAN devices is not run: this kernel has none (8021q): %s", strings.TrimSpace(out))
		return
	}
	inNetns(t, nsT, "ip", "link", "add", "link", tt.Name(), "name", "v20", "type", "vlan", "id", "20")
	for _, v := range []string{"v10", "v20"} {
		inNetns(t, nsT, "ip", "link", "set", v, "up")
	}
	inNetns(t, nsT, "ip", "addr", "add", "10.98.0.11/24", "dev", "v10")
	inNetns(t, nsT, "ip", "addr", "add", "10.98.1.12/24", "dev", "v20")
	if err := ping(nsA, "10.98.0.11"); err != nil {
		t.Errorf("ping trunk VLAN 10 address from VLAN 10: %v", err)
	}
	if err := ping(nsT, "-I", "v20", "10.98.1.2"); err != nil {
		t.Errorf("ping VLAN 20 access port over the trunk: %v", err)
	}
	transferTCP(t, nsT, nsA, "10.98.0.1:5003", "10.98.0.1:5003", 2<<20)
}

// checkTrunkRaw checks the trunk with raw frames on the host side of each TAP, so it
// needs no kernel VLAN devices: a frame tagged 10 sent into the trunk reaches the VLAN
// 10 access port untagged and never the VLAN 20 one, a frame tagged 20 the reverse, and
// an untagged frame from each access port leaves the trunk tagged with its VLAN.
func checkTrunkRaw(t *testing.T, nsA, ifA, nsB, ifB, nsT, ifT string) {
	t.Helper()
	sa, sb, st := openRawSocket(t, nsA, ifA), openRawSocket(t, nsB, ifB), openRawSocket(t, nsT, ifT)
	src := net.HardwareAddr{0x02, 0, 0, 0, 0x10, 0x01}
	const p10, p20 = "trunk-to-vlan-10-0123456789abcdef-0123456789abcdef", "trunk-to-vlan-20-0123456789abcdef-0123456789abcdef"
	const pa, pb = "vlan-10-to-trunk-0123456789abcdef-0123456789abcdef", "vlan-20-to-trunk-0123456789abcdef-0123456789abcdef"
	st.send(t, rawFrame(src, 10, p10))
	st.send(t, rawFrame(src, 20, p20))
	sa.send(t, rawFrame(net.HardwareAddr{0x02, 0, 0, 0, 0x10, 0x0a}, 0, pa))
	sb.send(t, rawFrame(net.HardwareAddr{0x02, 0, 0, 0, 0x10, 0x0b}, 0, pb))
	type result struct {
		name string
		got  map[uint16][]string
		want map[uint16][]string
	}
	ch := make(chan result, 3)
	for _, c := range []struct {
		name string
		s    *rawSocket
		want map[uint16][]string
	}{
		{"VLAN 10 access port", sa, map[uint16][]string{0: {p10}}},
		{"VLAN 20 access port", sb, map[uint16][]string{0: {p20}}},
		{"trunk", st, map[uint16][]string{10: {pa}, 20: {pb}}},
	} {
		go func() { ch <- result{c.name, rawPayloads(c.s.receive(time.Second), len(p10)), c.want} }()
	}
	for range 3 {
		r := <-ch
		if !reflect.DeepEqual(r.got, r.want) {
			t.Errorf("%s received %v (by VLAN, 0 = untagged), want %v", r.name, r.got, r.want)
		}
	}
}

func TestTAPFaults(t *testing.T) {
	needRoot(t)
	ns := newNetns(t, "f")
	t.Run("deleted under vnetd", func(t *testing.T) {
		tp := openTAPIn(t, ns, false, true)
		done := make(chan error, 1)
		go func() {
			buf := make([]frame.Frame, 4)
			for i := range buf {
				buf[i].Buf = make([]byte, tp.Info().MaxFrame)
			}
			for {
				if _, err := tp.ReadFrames(buf); err != nil {
					done <- err
					return
				}
			}
		}()
		inNetns(t, ns, "ip", "link", "del", tp.Name())
		select {
		case err := <-done:
			if !errors.Is(err, tap.ErrDown) {
				t.Errorf("ReadFrames() after ip link del = %v, want tap.ErrDown", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("ReadFrames() still blocked 5s after ip link del")
		}
		if tp.Faults.Load() == 0 {
			t.Errorf("Faults = 0 after the device was deleted, want > 0")
		}
	})
	t.Run("close unblocks reader", func(t *testing.T) {
		tp := openTAPIn(t, ns, false, false)
		done := make(chan error, 1)
		go func() {
			buf := []frame.Frame{{Buf: make([]byte, tp.Info().MaxFrame)}}
			for { // the kernel may send IPv6 solicitations first
				if _, err := tp.ReadFrames(buf); err != nil {
					done <- err
					return
				}
			}
		}()
		time.Sleep(100 * time.Millisecond)
		if err := tp.Close(); err != nil {
			t.Fatalf("Close() = %v", err)
		}
		if err := tp.Close(); err != nil {
			t.Errorf("second Close() = %v, want nil", err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("ReadFrames() after Close = %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("ReadFrames() still blocked 5s after Close")
		}
		if out, _ := nsCommand(ns, "ip", "link", "show", tp.Name()); !strings.Contains(out, "does not exist") {
			t.Errorf("created TAP %s still present after Close: %s", tp.Name(), out)
		}
	})
	t.Run("attach to persistent TAP and busy", func(t *testing.T) {
		name := tapName(t, "vp")
		inNetns(t, ns, "ip", "tuntap", "add", "dev", name, "mode", "tap")
		opts := tap.Options{Name: name, Logger: slog.New(slog.DiscardHandler)}
		var tp *tap.TAP
		if err := doInNetns(t, ns, func() (err error) { tp, err = tap.Open(opts); return err }); err != nil {
			t.Fatalf("tap.Open(%+v) = %v", opts, err)
		}
		// A single-queue TAP has one owner: a second open while tp holds it is refused.
		if err := doInNetns(t, ns, func() error { _, err := tap.Open(opts); return err }); err == nil || !strings.Contains(err.Error(), "busy") {
			t.Errorf("second tap.Open of %s while attached = %v, want a TAP busy error", name, err)
		}
		tp.Close()
		if out := inNetns(t, ns, "ip", "link", "show", name); !strings.Contains(out, name) {
			t.Errorf("persistent TAP %s gone after Close of an attached port", name)
		}
		missing := tap.Options{Name: "vnomissing0", Logger: opts.Logger}
		if err := doInNetns(t, ns, func() (err error) { _, err = tap.Open(missing); return err }); err == nil {
			t.Errorf("tap.Open(%+v) of a missing TAP = nil error", missing)
		}
	})
}

// rxPackets returns the packets the kernel received on dev in ns (what vnetd wrote).
func rxPackets(t *testing.T, ns, dev string) uint64 {
	t.Helper()
	out := inNetns(t, ns, "ip", "-s", "-j", "link", "show", dev)
	var links []struct {
		Stats64 struct {
			RX struct {
				Packets uint64 `json:"packets"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -s -j link show %s: %v: %s", dev, err, out)
	}
	return links[0].Stats64.RX.Packets
}

// arpRequest is a broadcast ARP request from mac/ip asking for target.
func arpRequest(mac frame.MAC, ip, target netip.Addr) []byte {
	b := make([]byte, 42)
	copy(b[0:6], frame.Broadcast[:])
	copy(b[6:12], mac[:])
	binary.BigEndian.PutUint16(b[12:14], 0x0806)
	copy(b[14:22], []byte{0, 1, 8, 0, 6, 4, 0, 1}) // Ethernet, IPv4, request
	copy(b[22:28], mac[:])
	copy(b[28:32], ip.AsSlice())
	copy(b[38:42], target.AsSlice())
	return b
}

// A multi-queue TAP: every queue is a port of its own that writes to the host, the
// queues together carry TCP through a switch both ways, and the device lives until its
// last queue is closed.
func TestTAPMultiQueue(t *testing.T) {
	needRoot(t)
	nsA, nsB := newNetns(t, "a"), newNetns(t, "b")
	name := tapName(t, "vq")
	opts := tap.Options{Name: name, Create: true, MTU: 1500, Offload: true, Queues: 2, Logger: slog.New(slog.DiscardHandler)}
	var qs []*tap.TAP
	if err := doInNetns(t, nsA, func() (err error) { qs, err = tap.OpenQueues(opts); return err }); err != nil {
		t.Fatalf("tap.OpenQueues(%+v) = %v", opts, err)
	}
	closed := make([]bool, len(qs))
	t.Cleanup(func() {
		for i, q := range qs {
			if !closed[i] {
				q.Close()
			}
		}
	})
	if len(qs) != 2 {
		t.Fatalf("tap.OpenQueues(Queues: 2) returned %d TAPs", len(qs))
	}
	for i, q := range qs {
		if want := fmt.Sprintf("tap:%s.q%d", name, i); q.Info().Name != want || q.Name() != name {
			t.Errorf("queue %d: Info().Name = %q, Name() = %q; want %q, %q", i, q.Info().Name, q.Name(), want, name)
		}
	}
	inNetns(t, nsA, "ip", "addr", "add", "10.96.0.1/24", "dev", name)
	inNetns(t, nsA, "ip", "link", "set", name, "up")

	// Each queue writes to the host on its own.
	src := frame.MAC{0x02, 0, 0, 0, 0x96, 0x09}
	req := arpRequest(src, netip.MustParseAddr("10.96.0.9"), netip.MustParseAddr("10.96.0.1"))
	for i, q := range qs {
		before := rxPackets(t, nsA, name)
		if n, err := q.WriteFrames([]frame.Frame{{Buf: req, N: len(req)}}); n != 1 || err != nil {
			t.Fatalf("queue %d: WriteFrames(ARP request) = %d, %v", i, n, err)
		}
		if after := rxPackets(t, nsA, name); after != before+1 {
			t.Errorf("queue %d: host received %d packets after one write, want 1", i, after-before)
		}
	}

	// Both queues as ports of one switch with a single-queue TAP to netns B.
	tb := openTAPIn(t, nsB, false, true)
	sw := l2switch.New(l2switch.Config{Name: "mqsw", Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { sw.Close() })
	for _, p := range []frame.Port{qs[0], qs[1], tb} {
		if err := sw.AddPort(p, l2switch.PortConfig{}); err != nil {
			t.Fatalf("sw.AddPort(%s) = %v", p.Info().Name, err)
		}
	}
	inNetns(t, nsB, "ip", "addr", "add", "10.96.0.2/24", "dev", tb.Name())
	if err := ping(nsA, "10.96.0.2"); err != nil {
		t.Fatalf("ping 10.96.0.2 from %s: %v", nsA, err)
	}
	transferTCP(t, nsA, nsB, "10.96.0.2:5011", "10.96.0.2:5011", 4<<20)
	transferTCP(t, nsB, nsA, "10.96.0.1:5012", "10.96.0.1:5012", 4<<20)
	var rx uint64
	for _, q := range qs {
		rx += q.Counters.RxFrames.Load()
	}
	if rx == 0 {
		t.Errorf("the queues read no frames from the host")
	}

	// The device stays while one queue is open, and goes with the last.
	if err := sw.RemovePort(qs[0].Info().Name); err != nil { // closes queue 0
		t.Fatalf("sw.RemovePort(%s) = %v", qs[0].Info().Name, err)
	}
	closed[0] = true
	if out, err := nsCommand(nsA, "ip", "link", "show", name); err != nil {
		t.Errorf("TAP %s gone with one of its two queues still open: %v: %s", name, err, out)
	}
	if err := sw.RemovePort(qs[1].Info().Name); err != nil {
		t.Fatalf("sw.RemovePort(%s) = %v", qs[1].Info().Name, err)
	}
	closed[1] = true
	if out, _ := nsCommand(nsA, "ip", "link", "show", name); !strings.Contains(out, "does not exist") {
		t.Errorf("TAP %s still present after its last queue closed: %s", name, out)
	}

	// A persistent multi-queue TAP: attach with its queues, not as a single queue.
	pname := tapName(t, "vp")
	inNetns(t, nsA, "ip", "tuntap", "add", "dev", pname, "mode", "tap", "multi_queue")
	single := tap.Options{Name: pname, Logger: opts.Logger}
	if err := doInNetns(t, nsA, func() (err error) { _, err = tap.Open(single); return err }); err == nil || !strings.Contains(err.Error(), "Queues > 1") {
		t.Errorf("tap.Open(%+v) of a multi-queue TAP = %v, want an error naming Queues", single, err)
	}
	multi := tap.Options{Name: pname, Queues: 3, Logger: opts.Logger}
	var pqs []*tap.TAP
	if err := doInNetns(t, nsA, func() (err error) { pqs, err = tap.OpenQueues(multi); return err }); err != nil {
		t.Fatalf("tap.OpenQueues(%+v) = %v", multi, err)
	}
	if len(pqs) != 3 {
		t.Errorf("tap.OpenQueues(%+v) returned %d TAPs, want 3", multi, len(pqs))
	}
	for _, q := range pqs {
		q.Close()
	}
	if out := inNetns(t, nsA, "ip", "link", "show", pname); !strings.Contains(out, pname) {
		t.Errorf("persistent multi-queue TAP %s gone after its attached queues closed", pname)
	}
}

// A batch of frames written in one WriteFrames call reaches the host whole, in both
// write modes (one io_uring submission per call, and one writev per frame).
func TestTAPWriteBatch(t *testing.T) {
	needRoot(t)
	ns := newNetns(t, "w")
	for _, writev := range []bool{false, true} {
		t.Run(fmt.Sprintf("writev=%v", writev), func(t *testing.T) {
			name := tapName(t, "vb")
			var logs bytes.Buffer
			opts := tap.Options{Name: name, Create: true, MTU: 1500, Offload: true, WritevOnly: writev, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			var tp *tap.TAP
			if err := doInNetns(t, ns, func() (err error) { tp, err = tap.Open(opts); return err }); err != nil {
				t.Fatalf("tap.Open(%+v) = %v", opts, err)
			}
			t.Cleanup(func() { tp.Close() })
			// Where the kernel allows io_uring, the default mode must use it.
			if b, err := os.ReadFile("/proc/sys/kernel/io_uring_disabled"); err == nil && strings.TrimSpace(string(b)) == "0" {
				if want := fmt.Sprintf("batched_writes=%v", !writev); !strings.Contains(logs.String(), want) {
					t.Errorf("TAP open log %q does not say %s", logs.String(), want)
				}
			}
			inNetns(t, ns, "ip", "link", "set", name, "up")
			frames := make([]frame.Frame, 150) // more than one submission
			for i := range frames {
				req := arpRequest(frame.MAC{0x02, 0, 0, 0, 0x93, byte(i)}, netip.AddrFrom4([4]byte{10, 93, 0, byte(i)}), netip.MustParseAddr("10.93.0.255"))
				frames[i] = frame.Frame{Buf: req, N: len(req)}
			}
			before := rxPackets(t, ns, name)
			if n, err := tp.WriteFrames(frames); n != len(frames) || err != nil {
				t.Fatalf("WriteFrames(%d frames) = %d, %v", len(frames), n, err)
			}
			if got := rxPackets(t, ns, name) - before; got != uint64(len(frames)) {
				t.Errorf("host received %d packets after one WriteFrames of %d", got, len(frames))
			}
			if tx, drop := tp.Counters.TxFrames.Load(), tp.Counters.TxDropped.Load(); tx != uint64(len(frames)) || drop != 0 {
				t.Errorf("Counters: tx_frames %d, tx_dropped %d; want %d, 0", tx, drop, len(frames))
			}
			tp.Close()
			if n, err := tp.WriteFrames(frames); !errors.Is(err, net.ErrClosed) {
				t.Errorf("WriteFrames after Close = %d, %v; want net.ErrClosed", n, err)
			}
		})
	}
}

// ReadFrames and WriteFrames allocate nothing per call (rule 4 of the data path), a
// batch of writes included.
func TestTAPNoAllocs(t *testing.T) {
	needRoot(t)
	ns := newNetns(t, "n")
	tp := openTAPIn(t, ns, false, true)
	inNetns(t, ns, "ip", "addr", "add", "10.95.0.1/24", "dev", tp.Name())
	req := arpRequest(frame.MAC{0x02, 0, 0, 0, 0x95, 0x09}, netip.MustParseAddr("10.95.0.9"), netip.MustParseAddr("10.95.0.1"))
	for _, batch := range []int{1, 8} {
		out := make([]frame.Frame, batch)
		for i := range out {
			out[i] = frame.Frame{Buf: req, N: len(req)}
		}
		if a := testing.AllocsPerRun(100, func() {
			if n, err := tp.WriteFrames(out); n != batch || err != nil {
				t.Fatalf("WriteFrames(%d ARP requests) = %d, %v", batch, n, err)
			}
		}); a != 0 {
			t.Errorf("WriteFrames of %d frames: %v allocations per call, want 0", batch, a)
		}
	}
	// The kernel answered each request: read the answers already waiting, one per call.
	time.Sleep(200 * time.Millisecond)
	in := []frame.Frame{{Buf: make([]byte, tp.Info().MaxFrame)}}
	done := make(chan float64, 1)
	go func() {
		done <- testing.AllocsPerRun(50, func() {
			if n, err := tp.ReadFrames(in); n != 1 || err != nil {
				panic(fmt.Sprintf("ReadFrames() = %d, %v", n, err))
			}
		})
	}()
	select {
	case a := <-done:
		if a != 0 {
			t.Errorf("ReadFrames: %v allocations per call, want 0", a)
		}
	case <-time.After(10 * time.Second):
		tp.Close()
		t.Fatalf("ReadFrames blocked: fewer than 51 frames came back for 900 ARP requests")
	}
}
