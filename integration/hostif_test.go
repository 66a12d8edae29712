package integration

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/hostif"
	"github.com/vnetd/vnetd/internal/testwait"
	l2switch "github.com/vnetd/vnetd/switch"
)

// openHostIf attaches interface name of netns ns through package hostif.
func openHostIf(t *testing.T, ns, name string, o hostif.Options) *hostif.Port {
	t.Helper()
	o.Name = name
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var p *hostif.Port
	if err := doInNetns(t, ns, func() (err error) { p, err = hostif.Open(o); return err }); err != nil {
		t.Fatalf("hostif.Open(%s in %s) = %v", name, ns, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// hostifVeth creates a veth pair in netns v, leaves end vEnd there (up) and moves peer
// kEnd into netns k.
func hostifVeth(t *testing.T, v, vEnd, k, kEnd string) {
	t.Helper()
	inNetns(t, v, "ip", "link", "add", vEnd, "type", "veth", "peer", "name", kEnd)
	inNetns(t, v, "ip", "link", "set", vEnd, "up")
	inNetns(t, v, "ip", "link", "set", kEnd, "netns", k)
	inNetns(t, k, "ip", "link", "set", kEnd, "up")
}

// hostifLab is two kernel netns A and B, each on a veth whose other end sits in netns V,
// where a vnetd switch bridges the two ends through hostif ports.
type hostifLab struct {
	a, b, v string
	pa, pb  *hostif.Port
	sw      *l2switch.Switch
}

func newHostIfLabWith(t *testing.T, o hostif.Options) *hostifLab {
	t.Helper()
	l := &hostifLab{a: newNetns(t, "ha"), b: newNetns(t, "hb"), v: newNetns(t, "hv")}
	hostifVeth(t, l.v, "hpa", l.a, "eth0")
	hostifVeth(t, l.v, "hpb", l.b, "eth0")
	l.pa = openHostIf(t, l.v, "hpa", o)
	l.pb = openHostIf(t, l.v, "hpb", o)
	l.sw = l2switch.New(l2switch.Config{Name: "hostifsw", Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { l.sw.Close() })
	for _, p := range []frame.Port{l.pa, l.pb} {
		if err := l.sw.AddPort(p, l2switch.PortConfig{}); err != nil {
			t.Fatalf("AddPort(%s) = %v", p.Info().Name, err)
		}
	}
	inNetns(t, l.a, "ip", "addr", "add", "10.96.0.1/24", "dev", "eth0")
	inNetns(t, l.b, "ip", "addr", "add", "10.96.0.2/24", "dev", "eth0")
	inNetns(t, l.a, "ip", "-6", "addr", "add", "fd96::1/64", "dev", "eth0", "nodad")
	inNetns(t, l.b, "ip", "-6", "addr", "add", "fd96::2/64", "dev", "eth0", "nodad")
	return l
}

func TestHostIfSwitchTwoNetns(t *testing.T) {
	needRoot(t)
	for _, c := range []struct{ offload, noRing bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		offload := c.offload
		t.Run(fmt.Sprintf("offload=%v/ring=%v", c.offload, !c.noRing), func(t *testing.T) {
			l := newHostIfLabWith(t, hostif.Options{Offload: c.offload, Ring: !c.noRing})
			if err := ping(l.a, "10.96.0.2"); err != nil {
				t.Fatalf("ping 10.96.0.2 from A: %v", err)
			}
			if err := ping(l.a, "fd96::2"); err != nil {
				t.Fatalf("ping fd96::2 from A: %v", err)
			}
			transferTCP(t, l.a, l.b, "10.96.0.2:5011", "10.96.0.2:5011", 8<<20)
			transferTCP(t, l.b, l.a, "[fd96::1]:5012", "[fd96::1]:5012", 8<<20)

			// The veths segment nothing: TCP leaves A as superframes. With offload
			// they must cross whole (average frame well above the MTU); without, the
			// port must have segmented them in software into frames within the MTU.
			ca := l.pa.Counters.Snapshot()
			avg := ca.RxBytes / max(ca.RxFrames, 1)
			if offload {
				if avg < 3000 {
					t.Errorf("offload on: average frame read from hpa is %d bytes over %d frames, want superframes", avg, ca.RxFrames)
				}
				if n := l.pa.Segmented.Load(); n != 0 {
					t.Errorf("offload on: %d frames segmented in software by the port, want 0", n)
				}
			} else {
				if avg > 1514 {
					t.Errorf("offload off: average frame read from hpa is %d bytes, want at most 1514", avg)
				}
				if l.pa.Segmented.Load() == 0 {
					t.Errorf("offload off: no superframe segmented in software (kernel sent none?)")
				}
				if caps := l.pa.Info().Caps & frame.CapsAll; caps != 0 {
					t.Errorf("offload off: offload caps = %v, want none", caps)
				}
			}
			for _, p := range []*hostif.Port{l.pa, l.pb} {
				if c := p.Counters.Snapshot(); c.RxDropped != 0 || c.TxDropped != 0 {
					t.Errorf("%s dropped frames: %+v", p.Name(), c)
				}
			}
		})
	}
}

// Frames the vnetd netns' own kernel sends out of an attached interface are outgoing:
// the port must not read them back (they would loop into the switch).
func TestHostIfIgnoresOutgoing(t *testing.T) {
	needRoot(t)
	for _, noRing := range []bool{false, true} {
		t.Run(fmt.Sprintf("ring=%v", !noRing), func(t *testing.T) { testHostIfIgnoresOutgoing(t, noRing) })
	}
}

func testHostIfIgnoresOutgoing(t *testing.T, noRing bool) {
	l := newHostIfLabWith(t, hostif.Options{Offload: true, Ring: !noRing})
	if err := ping(l.a, "10.96.0.2"); err != nil {
		t.Fatalf("ping 10.96.0.2 from A: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	before := l.pa.Counters.RxFrames.Load()
	out := l.pa.Outgoing.Load()
	pbTx := l.pb.Counters.TxFrames.Load()
	const n = 50
	err := doInNetns(t, l.v, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifc, err := net.InterfaceByName("hpa")
		if err != nil {
			return err
		}
		// A broadcast frame of an unused EtherType: netns A's kernel ignores it, so
		// nothing answers; only the port could read it back.
		f := make([]byte, 60)
		copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x99, 0x88, 0xb5})
		sa := &unix.SockaddrLinklayer{Ifindex: ifc.Index, Protocol: hostifHtons(0x88b5), Halen: 6}
		for range n {
			if err := unix.Sendto(fd, f, 0, sa); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send %d frames out of hpa from the vnetd netns: %v", n, err)
	}
	time.Sleep(200 * time.Millisecond) // several block timeouts
	// Netns A's own multicast (neighbour discovery, MLD) may arrive meanwhile: a few
	// frames, never the n outgoing ones.
	if got := l.pa.Counters.RxFrames.Load() - before; got >= n/2 {
		t.Errorf("port read %d frames after %d outgoing frames were sent on its interface, want them ignored (filtered in user space: %d)",
			got, n, l.pa.Outgoing.Load()-out)
	}
	if tx := l.pb.Counters.TxFrames.Load() - pbTx; tx >= n {
		t.Errorf("hpb sent %d frames meanwhile, outgoing frames of hpa looped through the switch", tx)
	}
}

func TestHostIfFaults(t *testing.T) {
	needRoot(t)
	v, k := newNetns(t, "hv"), newNetns(t, "hk")

	t.Run("open errors", func(t *testing.T) {
		cases := []struct {
			name string
			o    hostif.Options
			want error
		}{
			{"missing", hostif.Options{Name: "vnomissing0"}, hostif.ErrNoInterface},
			{"loopback", hostif.Options{Name: "lo"}, hostif.ErrNotEthernet},
		}
		inNetns(t, v, "ip", "link", "add", "hdown", "type", "veth", "peer", "name", "hdownp")
		cases = append(cases, struct {
			name string
			o    hostif.Options
			want error
		}{"down", hostif.Options{Name: "hdown"}, hostif.ErrInterfaceDown})
		for _, c := range cases {
			c.o.Logger = slog.New(slog.DiscardHandler)
			err := doInNetns(t, v, func() error {
				p, err := hostif.Open(c.o)
				if err == nil {
					p.Close()
				}
				return err
			})
			if !errors.Is(err, c.want) {
				t.Errorf("%s: hostif.Open(%q) = %v, want %v", c.name, c.o.Name, err, c.want)
			} else if !strings.Contains(err.Error(), c.o.Name) {
				t.Errorf("%s: error %q does not name the interface", c.name, err)
			}
		}
		// SetUp brings a down interface up.
		p := openHostIf(t, v, "hdown", hostif.Options{SetUp: true})
		if out := inNetns(t, v, "ip", "link", "show", "hdown"); !strings.Contains(out, ",UP") {
			t.Errorf("SetUp: interface not up after Open: %s", out)
		}
		if out := inNetns(t, v, "ip", "-d", "link", "show", "hdown"); !strings.Contains(out, "promiscuity 1") {
			t.Errorf("interface not promiscuous while attached: %s", out)
		}
		p.Close()
		if out := inNetns(t, v, "ip", "-d", "link", "show", "hdown"); !strings.Contains(out, "promiscuity 0") {
			t.Errorf("interface still promiscuous after Close: %s", out)
		}
	})

	for _, noRing := range []bool{false, true} {
		t.Run(fmt.Sprintf("deleted under vnetd/ring=%v", !noRing), func(t *testing.T) {
			testHostIfDeleted(t, v, k, noRing)
		})
	}

	for _, noRing := range []bool{false, true} {
		t.Run(fmt.Sprintf("down then up/ring=%v", !noRing), func(t *testing.T) {
			testHostIfDownUp(t, noRing)
		})
	}
	t.Run("moved to another namespace", func(t *testing.T) {
		hostifVeth(t, v, "hmv", k, "hmvp")
		p := openHostIf(t, v, "hmv", hostif.Options{Offload: true})
		done := make(chan error, 1)
		go func() {
			buf := []frame.Frame{{Buf: make([]byte, p.Info().MaxFrame)}}
			for {
				if _, err := p.ReadFrames(buf); err != nil {
					done <- err
					return
				}
			}
		}()
		time.Sleep(50 * time.Millisecond)
		inNetns(t, v, "ip", "link", "set", "hmv", "netns", k)
		select {
		case err := <-done:
			if !errors.Is(err, hostif.ErrDown) {
				t.Errorf("ReadFrames() after the interface moved away = %v, want hostif.ErrDown", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("ReadFrames() still blocked 5s after the interface moved to another namespace")
		}
	})
	t.Run("close unblocks reader", func(t *testing.T) {
		hostifVeth(t, v, "hcl", k, "hclp")
		p := openHostIf(t, v, "hcl", hostif.Options{})
		done := make(chan error, 1)
		go func() {
			buf := []frame.Frame{{Buf: make([]byte, p.Info().MaxFrame)}}
			for {
				if _, err := p.ReadFrames(buf); err != nil {
					done <- err
					return
				}
			}
		}()
		time.Sleep(100 * time.Millisecond)
		if err := p.Close(); err != nil {
			t.Fatalf("Close() = %v", err)
		}
		if err := p.Close(); err != nil {
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
		if _, err := p.WriteFrames([]frame.Frame{{Buf: make([]byte, 60), N: 60}}); !errors.Is(err, net.ErrClosed) {
			t.Errorf("WriteFrames() after Close = %v, want net.ErrClosed", err)
		}
		if out := inNetns(t, v, "ip", "link", "show", "hcl"); !strings.Contains(out, "hcl") {
			t.Errorf("interface gone after Close; the port must leave it in place: %s", out)
		}
	})
}

// A TAP that the test creates and holds open, as QEMU does for a VM: the "guest" is a
// vnetd namespace (gVisor) wired to the TAP's file descriptor; vnetd attaches the TAP's
// host interface through hostif to a switch that also reaches kernel netns A over a veth.
func TestHostIfQEMUStyleTAP(t *testing.T) {
	needRoot(t)
	// Offload on, as QEMU's TAP has a virtio-net header. (With Offload false the port
	// segments the guest's superframes in software; bursts of segments overflow the
	// veth's egress queue and the guest's gVisor TCP sender can stall for longer than
	// this test waits. TestHostIfSwitchTwoNetns covers Offload false with kernel TCP.)
	for _, c := range []struct{ offload, noRing bool }{{true, false}, {true, true}} {
		offload := c.offload
		t.Run(fmt.Sprintf("offload=%v/ring=%v", c.offload, !c.noRing), func(t *testing.T) {
			v, a := newNetns(t, "hv"), newNetns(t, "ha")
			// The "QEMU" side: a TAP created in v with a virtio-net header, its fd ours.
			name := tapName(t, "vq")
			vm := newQemuTAP(t, v, name)
			guestWire := l2switch.New(l2switch.Config{Name: "guest", Logger: slog.New(slog.DiscardHandler)})
			t.Cleanup(func() { guestWire.Close() })
			if err := guestWire.AddPort(vm, l2switch.PortConfig{}); err != nil {
				t.Fatalf("AddPort(TAP fd) = %v", err)
			}
			guest := newNamespaceOn(t, guestWire, "guest", "10.95.0.2/24", "fd95::2/64")

			// vnetd's side: the TAP's host interface and a veth to A, on one switch.
			hostifVeth(t, v, "hk", a, "eth0")
			inNetns(t, a, "ip", "addr", "add", "10.95.0.1/24", "dev", "eth0")
			inNetns(t, a, "ip", "-6", "addr", "add", "fd95::1/64", "dev", "eth0", "nodad")
			ptap := openHostIf(t, v, name, hostif.Options{Offload: offload, Ring: !c.noRing})
			pk := openHostIf(t, v, "hk", hostif.Options{Offload: offload, Ring: !c.noRing})
			sw := l2switch.New(l2switch.Config{Name: "lan0", Logger: slog.New(slog.DiscardHandler)})
			t.Cleanup(func() { sw.Close() })
			for _, p := range []frame.Port{ptap, pk} {
				if err := sw.AddPort(p, l2switch.PortConfig{}); err != nil {
					t.Fatalf("AddPort(%s) = %v", p.Info().Name, err)
				}
			}
			t.Cleanup(func() {
				if t.Failed() {
					for _, p := range []*hostif.Port{ptap, pk} {
						t.Logf("%s: %+v segmented %d faults %d", p.Name(), p.Counters.Snapshot(), p.Segmented.Load(), p.Faults.Load())
					}
					for _, sws := range []*l2switch.Switch{sw, guestWire} {
						for _, st := range sws.Ports() {
							t.Logf("%s port %s: up %v %+v drops %v segmented %d", sws.Name(), st.Name, st.Up, st.Counters, st.Drops, st.Segments)
						}
					}
				}
			})
			if out := inNetns(t, v, "ip", "link", "show", name); !strings.Contains(out, ",UP") {
				t.Fatalf("TAP %s not up: %s", name, out)
			}
			for _, dst := range []string{"10.95.0.2", "fd95::2"} {
				if err := ping(a, dst); err != nil {
					t.Fatalf("ping guest %s from kernel netns: %v", dst, err)
				}
			}
			kernelNSExchange(t, a, guest, "10.95.0.2:6201", "10.95.0.1:6202", 8<<20)
			kernelNSExchange(t, a, guest, "[fd95::2]:6203", "[fd95::1]:6204", 4<<20)
			if c := ptap.Counters.Snapshot(); c.RxFrames == 0 || c.TxFrames == 0 {
				t.Errorf("TAP port counters %+v: want traffic both ways", c)
			}

			// QEMU exits: the TAP disappears with its fd; the hostif port goes down.
			vm.Close()
			testwait.Eventually(t, 5*time.Second, func() bool {
				var up bool
				for _, st := range sw.Ports() {
					if st.Name == ptap.Info().Name {
						up = st.Up
					}
				}
				return !up
			}, "the hostif port on %s to go down after the TAP's owner closed it", name)
			if ptap.Faults.Load() == 0 {
				t.Errorf("Faults = 0 after the TAP went away")
			}
		})
	}
}

// testHostIfDeleted deletes an attached interface under a switch: its port goes down
// and stays down, the switch's other port is unaffected.
func testHostIfDeleted(t *testing.T, v, k string, noRing bool) {
	hostifVeth(t, v, "hdel", k, "hdelp")
	p := openHostIf(t, v, "hdel", hostif.Options{Offload: true, Ring: !noRing})
	keepName := "hkeep"
	if noRing {
		keepName = "hkeep2"
	}
	sw := l2switch.New(l2switch.Config{Name: "faultsw", Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { sw.Close() })
	// A second port on the switch to check the switch survives and reports.
	hostifVeth(t, v, keepName, k, keepName+"p")
	keep := openHostIf(t, v, keepName, hostif.Options{Offload: true, Ring: !noRing})
	for _, q := range []frame.Port{p, keep} {
		if err := sw.AddPort(q, l2switch.PortConfig{}); err != nil {
			t.Fatalf("AddPort(%s) = %v", q.Info().Name, err)
		}
	}
	inNetns(t, v, "ip", "link", "del", "hdel")
	testwait.Eventually(t, 5*time.Second, func() bool {
		up := true
		for _, st := range sw.Ports() {
			if st.Name == p.Info().Name {
				up = st.Up
			}
		}
		return !up
	}, "switch port %s to go down after ip link del", p.Info().Name)
	if p.Faults.Load() == 0 {
		t.Errorf("Faults = 0 after the interface was deleted, want > 0")
	}
	buf := []frame.Frame{{Buf: make([]byte, p.Info().MaxFrame)}}
	if _, err := p.ReadFrames(buf); !errors.Is(err, hostif.ErrDown) {
		t.Errorf("ReadFrames() after ip link del = %v, want hostif.ErrDown", err)
	}
	if _, err := p.WriteFrames([]frame.Frame{{Buf: make([]byte, 60), N: 60}}); !errors.Is(err, hostif.ErrDown) {
		t.Errorf("WriteFrames() after ip link del = %v, want hostif.ErrDown", err)
	}
	for _, st := range sw.Ports() {
		if st.Name == keep.Info().Name && !st.Up {
			t.Errorf("the other port %s went down too", st.Name)
		}
	}
}

// testHostIfDownUp sets an attached interface down and up again: traffic stops, then
// flows again through the same port, which never goes down on the switch.
func testHostIfDownUp(t *testing.T, noRing bool) {
	l := newHostIfLabWith(t, hostif.Options{Offload: true, Ring: !noRing})
	if err := ping(l.a, "10.96.0.2"); err != nil {
		t.Fatalf("ping before: %v", err)
	}
	inNetns(t, l.v, "ip", "link", "set", "hpa", "down")
	if err := ping(l.a, "10.96.0.2"); err == nil {
		t.Errorf("ping across a down interface succeeded")
	}
	inNetns(t, l.v, "ip", "link", "set", "hpa", "up")
	var err error
	for range 5 { // the veth's carrier comes back after a moment
		if err = ping(l.a, "10.96.0.2"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("ping after the interface came back up: %v", err)
	}
	if l.pa.Downs.Load() == 0 {
		t.Errorf("Downs = 0 after ip link set down, want > 0")
	}
	for _, st := range l.sw.Ports() {
		if !st.Up {
			t.Errorf("switch port %s down after a down/up cycle", st.Name)
		}
	}
	transferTCP(t, l.a, l.b, "10.96.0.2:5013", "10.96.0.2:5013", 2<<20)
}

// The kernel takes the 802.1Q tag out of every frame it receives; the port must put it
// back so a trunk port works. Netns A sends tagged frames on a trunk (VLANs 10) port;
// netns B, on an access port of VLAN 10, must get VLAN 10's frame untagged and intact,
// and never VLAN 20's.
func TestHostIfVLANTagRestored(t *testing.T) {
	needRoot(t)
	for _, noRing := range []bool{false, true} {
		t.Run(fmt.Sprintf("ring=%v", !noRing), func(t *testing.T) {
			a, b, v := newNetns(t, "ha"), newNetns(t, "hb"), newNetns(t, "hv")
			hostifVeth(t, v, "hpa", a, "eth0")
			hostifVeth(t, v, "hpb", b, "eth0")
			pa := openHostIf(t, v, "hpa", hostif.Options{Offload: true, Ring: !noRing})
			pb := openHostIf(t, v, "hpb", hostif.Options{Offload: true, Ring: !noRing})
			sw := l2switch.New(l2switch.Config{Name: "vlansw", Logger: slog.New(slog.DiscardHandler)})
			t.Cleanup(func() { sw.Close() })
			if err := sw.AddPort(pa, l2switch.PortConfig{Trunk: []uint16{10}}); err != nil {
				t.Fatalf("AddPort(trunk) = %v", err)
			}
			if err := sw.AddPort(pb, l2switch.PortConfig{VLAN: 10}); err != nil {
				t.Fatalf("AddPort(access) = %v", err)
			}
			payload := []byte("hostif-vlan-tag-restored-0123456789-0123456789")
			tagged := func(vlan uint16) []byte {
				f := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0xaa, 0x81, 0x00, byte(vlan >> 8), byte(vlan), 0x88, 0xb5}
				return append(f, payload...)
			}
			// Listen in B first.
			var rfd int
			if err := doInNetns(t, b, func() (err error) {
				rfd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(hostifHtons(0x88b5)))
				if err != nil {
					return err
				}
				ifc, err := net.InterfaceByName("eth0")
				if err != nil {
					return err
				}
				if err := unix.Bind(rfd, &unix.SockaddrLinklayer{Protocol: hostifHtons(0x88b5), Ifindex: ifc.Index}); err != nil {
					return err
				}
				tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
				return unix.SetsockoptTimeval(rfd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
			}); err != nil {
				t.Fatalf("listening socket in B: %v", err)
			}
			defer unix.Close(rfd)
			if err := doInNetns(t, a, func() error {
				fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					return err
				}
				defer unix.Close(fd)
				ifc, err := net.InterfaceByName("eth0")
				if err != nil {
					return err
				}
				sa := &unix.SockaddrLinklayer{Ifindex: ifc.Index, Protocol: hostifHtons(unix.ETH_P_8021Q), Halen: 6}
				for _, vlan := range []uint16{20, 10} { // VLAN 20 first: it must never show up
					if err := unix.Sendto(fd, tagged(vlan), 0, sa); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatalf("send tagged frames from A: %v", err)
			}
			want := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0xaa, 0x88, 0xb5}, payload...)
			got := 0
			buf := make([]byte, 2048)
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
				n, _, err := unix.Recvfrom(rfd, buf, 0)
				if err != nil {
					if got > 0 {
						break
					}
					continue
				}
				if n < len(want) || !bytes.Equal(buf[:len(want)], want) {
					t.Errorf("B received % x, want % x (VLAN 10's frame untagged)", buf[:min(n, 64)], want)
				}
				got++
			}
			if got != 1 {
				t.Errorf("B received %d frames of EtherType 0x88b5, want exactly 1 (VLAN 10's)", got)
			}
			var drops uint64
			for _, st := range sw.Ports() {
				drops += st.Drops[l2switch.DropVLANNotAllowed]
			}
			if drops == 0 {
				t.Errorf("switch dropped no frame as vlan_not_allowed: the VLAN 20 frame was not seen tagged")
			}
		})
	}
}

func hostifHtons(v uint16) uint16 { return v<<8 | v>>8 }

// qemuTAP stands in for QEMU's tap backend: it creates a TAP with a virtio-net header and
// checksum/TSO offloads, brings it up, and moves frames through its file descriptor. It
// is a frame.Port so a vnetd namespace can play the guest behind it.
type qemuTAP struct {
	f    *os.File
	name string
	rbuf []byte
	wmu  sync.Mutex
	wbuf []byte
}

func newQemuTAP(t *testing.T, ns, name string) *qemuTAP {
	t.Helper()
	var q *qemuTAP
	if err := doInNetns(t, ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return err
		}
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, unix.TUN_F_CSUM|unix.TUN_F_TSO4|unix.TUN_F_TSO6); err != nil {
			unix.Close(fd)
			return err
		}
		q = &qemuTAP{f: os.NewFile(uintptr(fd), "tun:"+name), name: name,
			rbuf: make([]byte, 10+frame.MaxSuperFrame), wbuf: make([]byte, 10+frame.MaxSuperFrame)}
		return nil
	}); err != nil {
		t.Fatalf("create TAP %s as QEMU does: %v", name, err)
	}
	t.Cleanup(func() { q.Close() })
	inNetns(t, ns, "ip", "link", "set", name, "up")
	return q
}

func (q *qemuTAP) Info() frame.Info {
	return frame.Info{Name: "qemu:" + q.name, MTU: 1500, MaxFrame: frame.MaxSuperFrame, Caps: frame.CapCsum | frame.CapTSO4 | frame.CapTSO6}
}

func (q *qemuTAP) Close() error { return q.f.Close() }

// ReadFrames reads one frame (what the guest receives).
func (q *qemuTAP) ReadFrames(fs []frame.Frame) (int, error) {
	for {
		n, err := q.f.Read(q.rbuf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return 0, net.ErrClosed
			}
			return 0, err
		}
		if n < 10+frame.EthHeaderLen || n-10 > len(fs[0].Buf) {
			continue
		}
		h := q.rbuf[:10]
		m := frame.Meta{NeedsCsum: h[0]&1 != 0, CsumValid: h[0]&2 != 0}
		switch h[1] &^ 0x80 {
		case 1:
			m.GSO = frame.GSOTCPv4
		case 4:
			m.GSO = frame.GSOTCPv6
		case 0:
		default:
			continue
		}
		if m.GSO != frame.GSONone {
			m.HdrLen, m.GSOSize = binary.LittleEndian.Uint16(h[2:]), binary.LittleEndian.Uint16(h[4:])
		}
		if m.NeedsCsum {
			m.CsumStart, m.CsumOffset = binary.LittleEndian.Uint16(h[6:]), binary.LittleEndian.Uint16(h[8:])
		}
		fs[0].N = copy(fs[0].Buf, q.rbuf[10:n])
		fs[0].Meta = m
		return 1, nil
	}
}

// WriteFrames writes frames (what the guest sends), each after its virtio-net header.
func (q *qemuTAP) WriteFrames(fs []frame.Frame) (int, error) {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	for i := range fs {
		f := &fs[i]
		h := q.wbuf[:10]
		clear(h)
		if f.Meta.NeedsCsum {
			h[0] = 1
			binary.LittleEndian.PutUint16(h[6:], f.Meta.CsumStart)
			binary.LittleEndian.PutUint16(h[8:], f.Meta.CsumOffset)
		}
		switch f.Meta.GSO {
		case frame.GSOTCPv4:
			h[1] = 1
		case frame.GSOTCPv6:
			h[1] = 4
		}
		if h[1] != 0 {
			binary.LittleEndian.PutUint16(h[2:], f.Meta.HdrLen)
			binary.LittleEndian.PutUint16(h[4:], f.Meta.GSOSize)
		}
		n := copy(q.wbuf[10:], f.Bytes())
		if _, err := q.f.Write(q.wbuf[:10+n]); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return i, net.ErrClosed
			}
			if errors.Is(err, unix.EAGAIN) {
				continue // the TAP's queue is full: drop, as QEMU would stall
			}
			return i, err
		}
	}
	return len(fs), nil
}
