// Command netnsscale is bench/peers.sh's kernel side of the scale rows: it creates -n
// kernel network namespaces, each with a veth whose other end is on a Linux bridge (one
// bridge per -per hosts, in a hub namespace of their own; the kernel bridge takes at most
// 1,024 ports), an IPv4 and an IPv6 address and the link up, the kernel counterpart of
// nsstack's BenchmarkNamespaceCreate/switched. It does this through netlink from one
// process, the fastest way the kernel offers (no ip(8) process per command).
//
// The namespaces are unnamed: the process holds one descriptor per namespace and no
// mount, so they all disappear (the kernel tears them down in the background) when it
// exits, however it exits. Nothing is created in the namespace it was started in.
//
// It prints one line: hosts created, seconds, and the growth of the kernel's memory
// (/proc/meminfo Slab + Percpu + VmallocUsed + KernelStack + PageTables, and
// MemAvailable's drop) in MB. It stops early when -budget seconds have passed and says
// so ("partial"), so that a slow kernel bounds the run.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func main() {
	n := flag.Int("n", 1000, "hosts to create")
	per := flag.Int("per", 100, "hosts per bridge")
	budget := flag.Float64("budget", 180, "stop creating after this many seconds")
	settle := flag.Duration("settle", 2*time.Second, "wait this long after creating before reading memory")
	flag.Parse()
	runtime.LockOSThread()
	raiseFileLimit(*n + 1000)
	orig, err := netns.Get()
	check(err)
	mem0 := meminfo()
	start := time.Now()
	hub := newNS(orig)
	hh, err := netlink.NewHandleAt(hub)
	check(err)
	deadline := start.Add(time.Duration(*budget * float64(time.Second)))
	var keep []netns.NsHandle
	var br netlink.Link
	made := 0
	for i := range *n {
		if time.Now().After(deadline) {
			break
		}
		if i%*per == 0 {
			name := fmt.Sprint("br", i / *per)
			check(hh.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}))
			br, err = hh.LinkByName(name)
			check(err)
			check(hh.LinkSetUp(br))
		}
		ns := newNS(orig)
		keep = append(keep, ns)
		v := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: fmt.Sprint("h", i), MasterIndex: br.Attrs().Index},
			PeerName:      "eth0",
			PeerNamespace: netlink.NsFd(ns),
		}
		check(hh.LinkAdd(v))
		check(hh.LinkSetUp(v))
		check(configure(ns, i))
		made++
	}
	elapsed := time.Since(start)
	time.Sleep(*settle)
	mem1 := meminfo()
	kernel := 0.0
	parts := []string{}
	for _, k := range []string{"Slab", "Percpu", "VmallocUsed", "KernelStack", "PageTables"} {
		d := float64(mem1[k]-mem0[k]) / 1e3
		kernel += d
		parts = append(parts, fmt.Sprintf("%s %+.0f", k, d))
	}
	state := "complete"
	if made < *n {
		state = "partial"
	}
	fmt.Printf("%s hosts=%d seconds=%.2f kernel_mb=%.0f memavail_drop_mb=%.0f (%s)\n", state, made, elapsed.Seconds(),
		kernel, float64(mem0["MemAvailable"]-mem1["MemAvailable"])/1e3, strings.Join(parts, ", "))
	hh.Close()
	for _, ns := range keep {
		ns.Close()
	}
	hub.Close()
}

// newNS returns a new network namespace, leaving the thread in orig.
func newNS(orig netns.NsHandle) netns.NsHandle {
	ns, err := netns.New()
	check(err)
	check(netns.Set(orig))
	return ns
}

// configure gives host i's eth0 (in ns) 10.x.y.z/8 and fd00::i+1/64, and sets it and
// lo up.
func configure(ns netns.NsHandle, i int) error {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	eth, err := h.LinkByName("eth0")
	if err != nil {
		return err
	}
	for _, p := range []netip.Prefix{
		netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 8),
		netip.MustParsePrefix(fmt.Sprintf("fd00::%x/64", i+1)),
	} {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			a.Flags = syscall.IFA_F_NODAD // vnetd's namespaces run no DAD either
		}
		if err := h.AddrAdd(eth, a); err != nil {
			return err
		}
	}
	if err := h.LinkSetUp(lo); err != nil {
		return err
	}
	return h.LinkSetUp(eth)
}

// meminfo returns /proc/meminfo's fields in kB.
func meminfo() map[string]int64 {
	f, err := os.Open("/proc/meminfo")
	check(err)
	defer f.Close()
	m := map[string]int64{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err == nil {
			m[k] = n
		}
	}
	return m
}

func raiseFileLimit(n int) {
	var l syscall.Rlimit
	check(syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l))
	if l.Cur < uint64(n) {
		l.Cur = min(max(uint64(n), l.Cur), l.Max)
		check(syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l))
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "netnsscale:", err)
		os.Exit(1)
	}
}
