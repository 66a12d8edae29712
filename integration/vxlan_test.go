package integration

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/nsstack"
	l2switch "github.com/vnetd/vnetd/switch"
	"github.com/vnetd/vnetd/vxlan"
)

// TestVXLANKernelInterop: a vnetd switch with a gVisor namespace (10.9.0.1) and a VXLAN
// port in netns u; a Linux kernel vxlan device in netns k, on a bridge with netns h
// (10.9.0.2) behind a veth; u and k joined by a veth (the underlay). Ping and TCP both
// ways, every byte checked; the kernel learns the namespace's MAC behind vnetd's address
// and vnetd learns h's behind the kernel's. The kernel finds vnetd by its remote or by
// a static all-zeros FDB entry; IPv4 and IPv6 underlays.
func TestVXLANKernelInterop(t *testing.T) {
	needRoot(t)
	for _, c := range []struct {
		name        string
		local, peer string // vnetd's and the kernel's underlay address
		plen        int
		staticFDB   bool
		dstport     int
		gro         bool // GRO on vnetd's underlay veth: datagrams arrive coalesced (UDP_GRO)
	}{
		{"v4-remote", "10.200.0.1", "10.200.0.2", 24, false, 4789, false},
		{"v4-static-fdb-8472", "10.200.0.1", "10.200.0.2", 24, true, 8472, false},
		{"v6-remote", "fd20::1", "fd20::2", 64, false, 4789, false},
		{"v4-gro", "10.200.0.1", "10.200.0.2", 24, false, 4789, true},
		{"v6-gro", "fd20::1", "fd20::2", 64, false, 4789, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			u, k, h := newNetns(t, "vxu"), newNetns(t, "vxk"), newNetns(t, "vxh")
			inNetns(t, u, "ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul1")
			inNetns(t, u, "ip", "link", "set", "ul1", "netns", k)
			inNetns(t, u, "ip", "addr", "add", fmt.Sprintf("%s/%d", c.local, c.plen), "dev", "ul0", "nodad")
			inNetns(t, k, "ip", "addr", "add", fmt.Sprintf("%s/%d", c.peer, c.plen), "dev", "ul1", "nodad")
			inNetns(t, u, "ip", "link", "set", "ul0", "up")
			inNetns(t, k, "ip", "link", "set", "ul1", "up")
			// A veth hands partial checksums on as they are: the kernel's encapsulated
			// TCP would reach vnetd's socket with its inner checksum never completed,
			// which a NIC would have done. Make the kernel complete them itself.
			inNetns(t, k, "ethtool", "-K", "ul1", "tx", "off")
			if c.gro {
				inNetns(t, u, "ethtool", "-K", "ul0", "gro", "on")
			}
			args := []string{"ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", fmt.Sprint(c.dstport), "local", c.peer}
			if !c.staticFDB {
				args = append(args, "remote", c.local)
			}
			inNetns(t, k, args...)
			if c.staticFDB {
				inNetns(t, k, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vx0", "dst", c.local)
			}
			inNetns(t, k, "ip", "link", "add", "br0", "type", "bridge")
			inNetns(t, k, "ip", "link", "add", "kv0", "type", "veth", "peer", "name", "kv1")
			inNetns(t, k, "ip", "link", "set", "kv1", "netns", h)
			for _, l := range []string{"vx0", "kv0"} {
				inNetns(t, k, "ip", "link", "set", l, "master", "br0")
				inNetns(t, k, "ip", "link", "set", l, "up")
			}
			inNetns(t, k, "ip", "link", "set", "br0", "up")
			inNetns(t, h, "ip", "link", "set", "kv1", "mtu", "1400")
			inNetns(t, h, "ip", "addr", "add", "10.9.0.2/24", "dev", "kv1")
			inNetns(t, h, "ip", "link", "set", "kv1", "up")

			var tp *vxlan.Port
			if err := doInNetns(t, u, func() (err error) {
				tp, err = vxlan.Open(vxlan.Options{Name: "vx", Local: netip.AddrPortFrom(netip.MustParseAddr(c.local), 0), DstPort: uint16(c.dstport),
					VNI: 42, Remotes: []netip.Addr{netip.MustParseAddr(c.peer)}, Logger: slog.New(slog.DiscardHandler)})
				return err
			}); err != nil {
				t.Fatalf("vxlan.Open in %s: %v", u, err)
			}
			sw := l2switch.New(l2switch.Config{Name: "lan0", Logger: slog.New(slog.DiscardHandler)})
			t.Cleanup(func() { sw.Close() })
			ns, err := nsstack.New(nsstack.Options{Name: "g"})
			if err != nil {
				t.Fatalf("nsstack.New: %v", err)
			}
			t.Cleanup(func() { ns.Close() })
			nic, err := ns.AddNIC(nsstack.NICConfig{Name: "eth0", MTU: 1400})
			if err != nil {
				t.Fatalf("AddNIC: %v", err)
			}
			if err := ns.AddAddress("eth0", netip.MustParsePrefix("10.9.0.1/24")); err != nil {
				t.Fatalf("AddAddress: %v", err)
			}
			for _, p := range []frame.Port{nic, tp} {
				if err := sw.AddPort(p, l2switch.PortConfig{Name: p.Info().Name}); err != nil {
					t.Fatalf("AddPort: %v", err)
				}
			}

			if err := ping(h, "10.9.0.1"); err != nil {
				t.Fatalf("ping from the kernel side to the vnetd namespace: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err = ns.Ping(ctx, netip.MustParseAddr("10.9.0.2"), 1, make([]byte, 56))
			cancel()
			if err != nil {
				t.Fatalf("ping from the vnetd namespace to the kernel side: %v", err)
			}
			vxTCP(t, ns, h, 4<<20)

			fdb := inNetns(t, k, "bridge", "fdb", "show", "dev", "vx0")
			if want := fmt.Sprintf("%s dst %s", nic.MAC(), c.local); !strings.Contains(fdb, want) {
				t.Fatalf("the kernel did not learn %q; bridge fdb show dev vx0:\n%s", want, fdb)
			}
			learned := false
			for _, m := range tp.MACs() {
				learned = learned || m.Remote == netip.MustParseAddr(c.peer)
			}
			if !learned {
				t.Fatalf("vnetd learned no MAC behind %s: %+v", c.peer, tp.MACs())
			}
			if s := tp.Stats(); s.RxMalformed+s.RxBadVNI+s.RxOversize+s.TxOversize+s.TxErrors != 0 {
				t.Fatalf("tunnel drops: %+v", s)
			}
			if s := tp.Stats(); c.gro != (s.RxGRO > 0) {
				t.Fatalf("GRO on the underlay veth %v, coalesced receives %d", c.gro, s.RxGRO)
			}
			// The kernel's 4 MiB arrive as superframes: the tunnel merged TCP segments.
			if s := tp.Stats(); s.RxCoalesced == 0 {
				t.Fatalf("no received TCP segment was coalesced: %+v", s)
			}
		})
	}
}

// vxTCP moves n random bytes each way between the gVisor namespace ns (10.9.0.1) and
// the kernel netns h (10.9.0.2), checking SHA-256 digests.
func vxTCP(t *testing.T, ns *nsstack.Namespace, h string, n int) {
	t.Helper()
	serve := func(ln net.Listener, got chan<- [32]byte) {
		c, err := ln.Accept()
		if err != nil {
			got <- [32]byte{}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		hh := sha256.New()
		_, _ = io.Copy(hh, c)
		var s [32]byte
		copy(s[:], hh.Sum(nil))
		got <- s
	}
	// kernel -> namespace
	ln, err := ns.Listen("tcp", "10.9.0.1:5001")
	if err != nil {
		t.Fatalf("Listen in the namespace: %v", err)
	}
	defer ln.Close()
	for _, dir := range []string{"kernel->vnetd", "vnetd->kernel"} {
		got := make(chan [32]byte, 1)
		var c net.Conn
		if dir == "kernel->vnetd" {
			go serve(ln, got)
			if err := doInNetns(t, h, func() (err error) { c, err = net.DialTimeout("tcp", "10.9.0.1:5001", 5*time.Second); return err }); err != nil {
				t.Fatalf("%s: dial: %v", dir, err)
			}
		} else {
			var kl net.Listener
			if err := doInNetns(t, h, func() (err error) { kl, err = net.Listen("tcp", "10.9.0.2:5002"); return err }); err != nil {
				t.Fatalf("%s: listen: %v", dir, err)
			}
			defer kl.Close()
			go serve(kl, got)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, err = ns.Dial(ctx, "tcp", "10.9.0.2:5002")
			cancel()
			if err != nil {
				t.Fatalf("%s: dial: %v", dir, err)
			}
		}
		data := make([]byte, n)
		_, _ = rand.Read(data)
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Write(data); err != nil {
			t.Fatalf("%s: write %d bytes: %v", dir, n, err)
		}
		c.Close()
		select {
		case s := <-got:
			if s != sha256.Sum256(data) {
				t.Fatalf("%s: digest mismatch over %d bytes", dir, n)
			}
		case <-time.After(25 * time.Second):
			t.Fatalf("%s: transfer of %d bytes timed out", dir, n)
		}
	}
}
