package nsstack

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"sort"
	"testing"
	"time"
)

// BenchmarkNamespaceCreate creates N dual-stack namespaces (loopback plus one NIC with an
// IPv4 and an IPv6 address) and reports the memory and goroutines each one costs and the
// time to create it. Run with -benchtime=1x: one op is the whole batch.
func BenchmarkNamespaceCreate(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for range b.N {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				g0 := runtime.NumGoroutine()
				start := time.Now()
				all := make([]*Namespace, n)
				for i := range all {
					ns, err := New(Options{Name: fmt.Sprint("n", i)})
					if err != nil {
						b.Fatal(err)
					}
					if _, err := ns.AddNIC(NICConfig{Name: "eth0"}); err != nil {
						b.Fatal(err)
					}
					ns.AddAddress("eth0", netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 8))
					ns.AddAddress("eth0", netip.MustParsePrefix(fmt.Sprintf("fd00::%x/64", i+1)))
					all[i] = ns
				}
				elapsed := time.Since(start)
				runtime.GC()
				runtime.ReadMemStats(&after)
				g1 := runtime.NumGoroutine()
				used := (after.HeapInuse + after.StackInuse) - (before.HeapInuse + before.StackInuse)
				b.ReportMetric(float64(used)/float64(n), "bytes/ns")
				b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/ns")
				b.ReportMetric(float64(elapsed.Microseconds())/float64(n), "µs/ns")
				for _, ns := range all {
					ns.Close()
				}
			}
		})
	}
}

// BenchmarkSwitchedTCP measures ns↔ns TCP throughput through a vnetd switch.
func BenchmarkSwitchedTCP(b *testing.B) {
	for _, mtu := range []int{1500, 9000, 65520} {
		b.Run(fmt.Sprint("mtu", mtu), func(b *testing.B) {
			sw := newSwitch(b, "lan0")
			a, z := newNS(b, "a"), newNS(b, "b")
			plug(b, a, sw, mtu, "10.0.0.1/24")
			plug(b, z, sw, mtu, "10.0.0.2/24")
			l, err := z.Listen("tcp", ":5001")
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			done := make(chan int64, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					done <- 0
					return
				}
				n, _ := io.Copy(io.Discard, c)
				c.Close()
				done <- n
			}()
			c, err := a.Dial(context.Background(), "tcp", "10.0.0.2:5001")
			if err != nil {
				b.Fatal(err)
			}
			chunk := make([]byte, 1<<20)
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			c.Close()
			<-done
			b.ReportMetric(float64(b.N)*float64(len(chunk))*8/b.Elapsed().Seconds()/1e9, "Gbit/s")
		})
	}
}

// BenchmarkRequestResponse measures 64-byte TCP round trips through a switch and
// reports their p50 and p99.
func BenchmarkRequestResponse(b *testing.B) {
	sw := newSwitch(b, "lan0")
	a, z := newNS(b, "a"), newNS(b, "b")
	plug(b, a, sw, 1500, "10.0.0.1/24")
	plug(b, z, sw, 1500, "10.0.0.2/24")
	l, err := z.Listen("tcp", ":7")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	c, err := a.Dial(context.Background(), "tcp", "10.0.0.2:7")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 64)
	rtts := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		c.Write(msg)
		if _, err := io.ReadFull(c, msg); err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(rtts[len(rtts)*99/100].Microseconds()), "p99-µs")
}
