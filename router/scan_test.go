package router

import (
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
)

// TestScanOfASlash16Bounded has a host on lan0 scan every address of a /16 behind
// lan1, none of which answers ARP: the neighbour cache stays at MaxNeighbors (default
// 1024), each incomplete entry queues at most MaxPending (default 8) frames, the rest
// are dropped and counted by reason, and the heap does not grow with the scan.
func TestScanOfASlash16Bounded(t *testing.T) {
	// The clock is read by the router's janitor goroutine too (race detector).
	var now atomic.Int64
	now.Store(time.Unix(1000, 0).UnixNano())
	r := New(Options{Name: "r", Now: func() time.Time { return time.Unix(0, now.Load()) }, ICMPRate: -1})
	t.Cleanup(func() { r.Close() })
	p0, err := r.AddInterface(IfaceConfig{Name: "lan0", Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}})
	if err != nil {
		t.Fatalf("AddInterface(lan0) = %v", err)
	}
	p1, err := r.AddInterface(IfaceConfig{Name: "lan1", Addresses: []netip.Prefix{netip.MustParsePrefix("10.1.0.1/16")}})
	if err != nil {
		t.Fatalf("AddInterface(lan1) = %v", err)
	}
	lan0, lan1 := p0.(*iface), p1.(*iface)
	write(t, lan0, arp(1, bcast, hostA, ipA, rtr0), frame.Meta{})
	frame.ReleaseBufs(drain(lan0))

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	scanned, limit := 0, 1<<16
	if testing.Short() {
		limit = 1 << 14 // the race run: a /18 still overflows the cache 16 times
	}
	pkt := udp4(lan0.mac, hostA, ipA, netip.MustParseAddr("10.1.0.2"), 64, 20, true)
	for a := netip.MustParseAddr("10.1.0.2"); a != netip.MustParseAddr("10.1.255.255") && scanned < limit; a = a.Next() {
		b := a.As4()
		copy(pkt[14+16:14+20], b[:])
		fixIPv4Csum(pkt[14:34])
		// Three probes of each address: the queue of one entry must stay capped too.
		for range 3 {
			write(t, lan0, pkt, frame.Meta{})
		}
		scanned++
		if scanned%256 == 0 {
			now.Add(int64(time.Millisecond))
			frame.ReleaseBufs(drain(lan1)) // the ARP probes the router sent
			frame.ReleaseBufs(drain(lan0))
		}
	}
	// One address probed 20 times: its queue stops at MaxPending.
	copy(pkt[14+16:14+20], []byte{10, 1, 0, 2})
	fixIPv4Csum(pkt[14:34])
	for range 20 {
		write(t, lan0, pkt, frame.Meta{})
	}

	ns := r.Neighbors()
	pending := 0
	for _, n := range ns {
		pending += n.Pending
		if n.Pending > 8 {
			t.Errorf("neighbour %v holds %d frames, want <= MaxPending 8", n.Addr, n.Pending)
		}
	}
	if len(ns) > 1024 {
		t.Errorf("after scanning %d addresses: %d neighbour entries, want <= 1024", scanned, len(ns))
	}
	drops := r.Interfaces()[1].Dropped
	if drops["neigh_evicted"] < uint64(scanned-1024)*3*9/10 {
		t.Errorf("neigh_evicted = %d, want about %d (3 frames of each evicted entry)", drops["neigh_evicted"], (scanned-1024)*3)
	}
	if drops["neigh_queue_full"] < 20-8 {
		t.Errorf("neigh_queue_full = %d, want >= 12", drops["neigh_queue_full"])
	}
	frame.ReleaseBufs(drain(lan1))
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grow := int64(after.HeapInuse) - int64(before.HeapInuse); grow > 32<<20 {
		t.Errorf("heap in use grew by %d MiB during the scan, want < 32 MiB", grow>>20)
	}
	t.Logf("scan of %d addresses: %d neighbours, %d frames pending, drops %v, heap %+d KiB",
		scanned, len(ns), pending, drops, (int64(after.HeapInuse)-int64(before.HeapInuse))>>10)
}

// fixIPv4Csum recomputes an IPv4 header's checksum.
func fixIPv4Csum(h []byte) {
	h[10], h[11] = 0, 0
	var s uint32
	for i := 0; i < len(h); i += 2 {
		s += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	c := ^uint16(s)
	h[10], h[11] = byte(c>>8), byte(c)
}
