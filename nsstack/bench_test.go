package nsstack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sort"
	"testing"
	"time"

	"github.com/vnetd/vnetd/internal/procstat"
	l2switch "github.com/vnetd/vnetd/switch"
)

// BenchmarkNamespaceCreate creates N namespaces and reports what each one costs: heap
// and stack bytes (after GC), resident memory (VmRSS growth, after returning freed
// pages to the OS), goroutines, and creation time. "bare" is a new dual-stack
// namespace, loopback with 127.0.0.1/8 and ::1 (the target: 10,000 in at most
// 1.3 GB and 5 s); "nic" adds one NIC with an IPv4 and an IPv6 address, "l3" the same
// NIC of kind l3 (no neighbour caches). One op is the
// whole batch, so run with -benchtime=1x; -short skips the 10,000 case.
func BenchmarkNamespaceCreate(b *testing.B) {
	for _, kind := range []string{"bare", "nic", "l3", "switched"} {
		for _, n := range []int{1000, 10000} {
			b.Run(fmt.Sprintf("%s/%d", kind, n), func(b *testing.B) {
				if n > 1000 && testing.Short() {
					b.Skip("10,000 namespaces: not in -short")
				}
				for range b.N {
					benchCreate(b, n, kind)
				}
			})
		}
	}
}

// benchCreate creates n namespaces of a kind: "bare" (loopback only), "nic" (a NIC
// with an IPv4 and an IPv6 address), "l3" (that NIC of kind l3) or "switched" (that NIC plugged into a switch, 100
// namespaces per switch, as a lab would have them).
func benchCreate(b *testing.B, n int, kind string) {
	withNIC := kind != "bare"
	var switches []*l2switch.Switch
	defer func() {
		for _, sw := range switches {
			sw.Close()
		}
	}()
	quiet := slog.New(slog.DiscardHandler)
	settle := func() { runtime.GC(); debug.FreeOSMemory() }
	settle()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rss0 := vmRSS(b)
	g0 := runtime.NumGoroutine()
	cpu0 := cpuTime(b)
	start := time.Now()
	all := make([]*Namespace, n)
	for i := range all {
		ns, err := New(Options{Name: fmt.Sprint("n", i), Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		all[i] = ns
		if !withNIC {
			continue
		}
		c := NICConfig{Name: "eth0"}
		if kind == "l3" {
			c.Kind = NICL3
		}
		nic, err := ns.AddNIC(c)
		if err != nil {
			b.Fatal(err)
		}
		if kind == "switched" {
			if i%100 == 0 {
				switches = append(switches, l2switch.New(l2switch.Config{Name: fmt.Sprint("sw", i/100), Logger: quiet}))
			}
			if err := switches[len(switches)-1].AddPort(nic, l2switch.PortConfig{}); err != nil {
				b.Fatal(err)
			}
		}
		if err := ns.AddAddress("eth0", netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 8)); err != nil {
			b.Fatal(err)
		}
		if err := ns.AddAddress("eth0", netip.MustParsePrefix(fmt.Sprintf("fd00::%x/64", i+1))); err != nil {
			b.Fatal(err)
		}
	}
	elapsed, cpu := time.Since(start), cpuTime(b)-cpu0
	settle()
	runtime.ReadMemStats(&after)
	rss1 := vmRSS(b)
	g1 := runtime.NumGoroutine()
	used := int64(after.HeapInuse+after.StackInuse) - int64(before.HeapInuse+before.StackInuse)
	b.ReportMetric(float64(used)/float64(n), "bytes/ns")
	b.ReportMetric(float64(rss1-rss0)/float64(n), "rss-bytes/ns")
	b.ReportMetric(float64(rss1)/1e6, "rss-MB")
	b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/ns")
	b.ReportMetric(elapsed.Seconds()*1e3/float64(n), "ms/ns")
	b.ReportMetric(elapsed.Seconds(), "create-s")
	// Process CPU (GC included) while creating: on a shared machine the wall time
	// varies with others' load, this far less.
	b.ReportMetric(cpu.Seconds(), "create-cpu-s")
	start = time.Now()
	for _, ns := range all {
		ns.Close()
	}
	b.ReportMetric(time.Since(start).Seconds()*1e3/float64(n), "close-ms/ns")
}

// vmRSS returns the process's resident set size in bytes.
func vmRSS(t testing.TB) int64 {
	t.Helper()
	n, err := procstat.RSS()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// BenchmarkSwitchedTCP measures ns↔ns TCP throughput through a vnetd switch.
func BenchmarkSwitchedTCP(b *testing.B) {
	for _, mtu := range []int{1500, 9000, 65520} {
		b.Run(fmt.Sprint("mtu", mtu), func(b *testing.B) {
			sw := newSwitch(b, "lan0")
			a, z := newNS(b, "a"), newNS(b, "b")
			plug(b, a, sw, mtu, "10.0.0.1/24")
			plug(b, z, sw, mtu, "10.0.0.2/24")
			b.ReportMetric(tcpStream(b, a, z, "10.0.0.2:5001"), "Gbit/s")
		})
	}
}

// BenchmarkLoopbackTCP measures one TCP stream over a namespace's own loopback
// (127.0.0.1): gVisor's TCP with no NIC, queue or switch in the way. It bounds what
// BenchmarkSwitchedTCP can reach, since a switched stream runs the same TCP code on
// both ends plus the NIC hand-offs.
func BenchmarkLoopbackTCP(b *testing.B) {
	ns := newNS(b, "lo")
	b.ReportMetric(tcpStream(b, ns, ns, "127.0.0.1:5001"), "Gbit/s")
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

// busyAmongIdleGbps and busyAmongIdleCPU are BenchmarkBusyAmongIdle/idle=0's latest
// results, for the other cases' ratios. The testing package calls a benchmark with
// growing b.N and the largest last, so after idle=0 they hold its real run.
var busyAmongIdleGbps, busyAmongIdleCPU float64

// scope collects cleanups to run at a time of the caller's choosing (a benchmark's
// setup outlives the b.N rounds, which run their own cleanups each).
type scope struct {
	testing.TB
	fns []func()
}

func (s *scope) Cleanup(f func()) { s.fns = append(s.fns, f) }

func (s *scope) close() {
	for i := len(s.fns) - 1; i >= 0; i-- {
		s.fns[i]()
	}
	s.fns = nil
}

// BenchmarkBusyAmongIdle measures one busy namespace pair (a TCP transfer through a
// switch, MTU 1500) alone (idle=0) and among 1,000 idle namespaces (each with a NIC on
// a switch, addresses, a listener, neighbour entries; see newIdleSet): sharing the
// first idle group's switch (idle=1000), and on a switch of its own
// (idle=1000/own-switch), which separates what idle namespaces cost from what a
// switch with more ports costs; idle=0/again repeats idle=0 last, a control for drift
// over the run (other load, heap left behind). Each case reports throughput and
// process CPU per MiB, and the ratios to idle=0 (run the cases in one invocation; on a
// shared machine compare several runs). Namespaces are built once per case.
func BenchmarkBusyAmongIdle(b *testing.B) {
	for _, c := range []struct {
		name   string
		idle   int
		shared bool
	}{{"idle=0", 0, false}, {"idle=1000", 1000, true}, {"idle=1000/own-switch", 1000, false}, {"idle=0/again", 0, false}} {
		var a, z *Namespace
		sc := &scope{TB: b}
		b.Cleanup(sc.close)
		b.Run(c.name, func(sb *testing.B) {
			if a == nil {
				sw := newSwitch(sc, "busy")
				if c.idle > 0 {
					set := newIdleSet(sc, c.idle)
					if c.shared {
						sw = set.switches[0]
					}
				}
				a, z = newNS(sc, "busy-a"), newNS(sc, "busy-b")
				plug(sc, a, sw, 1500, "10.9.1.1/16")
				plug(sc, z, sw, 1500, "10.9.1.2/16")
				if c.idle > 0 {
					settle(sc)
				}
			}
			cpu0, gc0 := cpuTime(sb), gcCPU()
			gbps := tcpStream(sb, a, z, "10.9.1.2:5001")
			cpu, gc := cpuTime(sb)-cpu0, gcCPU()-gc0
			cpuPerMiB := cpu.Seconds() * 1e6 / float64(sb.N)
			sb.ReportMetric(gbps, "Gbit/s")
			// Process CPU per MiB moved: unlike throughput, little moved by other
			// processes on a shared machine, and what idle namespaces would add to.
			sb.ReportMetric(cpuPerMiB, "cpu-µs/MiB")
			// The Go runtime's estimate of its GC's share of that CPU: idle
			// namespaces are live heap that every GC cycle marks.
			sb.ReportMetric(100*gc/cpu.Seconds(), "gc-cpu-%")
			if c.name == "idle=0" {
				busyAmongIdleGbps, busyAmongIdleCPU = gbps, cpuPerMiB
			} else if busyAmongIdleGbps > 0 {
				sb.ReportMetric(gbps/busyAmongIdleGbps, "ratio-vs-idle0")
				sb.ReportMetric(cpuPerMiB/busyAmongIdleCPU, "cpu-ratio-vs-idle0")
			}
		})
		sc.close()
	}
}

// gcCPU returns the CPU seconds the Go runtime estimates its GC has used.
func gcCPU() float64 {
	sample := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(sample)
	return sample[0].Value.Float64()
}

// tcpStream writes b.N MiB over a new connection from a to z's dial address and
// returns the throughput in Gbit/s.
func tcpStream(b *testing.B, a, z *Namespace, dial string) float64 {
	l, err := z.Listen("tcp", dial)
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
		// Read 128 KiB at a time, as iperf3 does (io.Discard would read 8 KiB).
		buf := make([]byte, 128<<10)
		var n int64
		for {
			k, err := c.Read(buf)
			n += int64(k)
			if err != nil {
				break
			}
		}
		c.Close()
		done <- n
	}()
	c, err := a.Dial(context.Background(), "tcp", dial)
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
	if got := <-done; got != int64(b.N)*int64(len(chunk)) {
		b.Fatalf("receiver got %d bytes, want %d", got, int64(b.N)*int64(len(chunk)))
	}
	b.StopTimer()
	return float64(b.N) * float64(len(chunk)) * 8 / b.Elapsed().Seconds() / 1e9
}
