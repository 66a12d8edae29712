package impair

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/frame/frametest"
	"github.com/vnetd/vnetd/nsstack"
	l2switch "github.com/vnetd/vnetd/switch"
)

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDelayAccuracy sends b.N frames about 1 ms apart through a port delaying
// them 10 ms (the real clock) and reports the error of the measured latency: median
// and p99, in µs, and the process CPU time per frame. Every frame waits alone, the
// worst case for the release timer. Run with -benchtime=2000x.
func BenchmarkDelayAccuracy(b *testing.B) {
	const delay = 10 * time.Millisecond
	near, far := frametest.NewPair(frametest.PairOptions{QueueLen: 8192})
	w := Wrap(near, Options{})
	defer w.Close()
	if err := w.Set(Out, Params{Delay: delay}); err != nil {
		b.Fatal(err)
	}
	lat := make(chan time.Duration, b.N)
	go func() {
		readAll(far, func(p []byte) {
			lat <- time.Duration(time.Now().UnixNano() - int64(binary.BigEndian.Uint64(p[14:])))
		})
		close(lat)
	}()
	buf := frameN(0, 64)
	cpu0 := cpuTime()
	b.ResetTimer()
	for range b.N {
		binary.BigEndian.PutUint64(buf[14:], uint64(time.Now().UnixNano()))
		w.WriteFrames([]frame.Frame{{Buf: buf, N: len(buf)}})
		time.Sleep(time.Millisecond)
	}
	errs := make([]time.Duration, 0, b.N)
	for range b.N {
		select {
		case l := <-lat:
			errs = append(errs, l-delay)
		case <-time.After(5 * time.Second):
			b.Fatalf("%d of %d frames arrived", len(errs), b.N)
		}
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	slices.Sort(errs)
	b.ReportMetric(float64(errs[len(errs)/2].Microseconds()), "median_err_us")
	b.ReportMetric(float64(errs[len(errs)*99/100].Microseconds()), "p99_err_us")
	b.ReportMetric(float64(errs[0].Microseconds()), "min_err_us")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu_ns/frame")
}

// BenchmarkWaitingCPU reports the CPU the process burns per second while 1000 frames
// wait out a 1 s delay: it shows the release goroutine sleeps instead of spinning.
func BenchmarkWaitingCPU(b *testing.B) {
	near, far := frametest.NewPair(frametest.PairOptions{QueueLen: 8192})
	defer far.Close()
	w := Wrap(near, Options{})
	defer w.Close()
	for range b.N {
		if err := w.Set(Out, Params{Delay: time.Second}); err != nil {
			b.Fatal(err)
		}
		fs := make([]frame.Frame, 1000)
		for i := range fs {
			p := frameN(i, 64)
			fs[i] = frame.Frame{Buf: p, N: len(p)}
		}
		w.WriteFrames(fs)
		cpu0, t0 := cpuTime(), time.Now()
		time.Sleep(900 * time.Millisecond)
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/time.Since(t0).Seconds(), "cpu_us/s_waiting")
	}
}

// BenchmarkRateTCP streams TCP from namespace a to namespace b across a switch whose
// port toward b is limited to each rate, and reports the goodput measured at b over
// the last 3/4 of the run against the rate. Run with -benchtime=1x.
func BenchmarkRateTCP(b *testing.B) {
	for _, rate := range []uint64{10e6, 100e6, 1000e6} {
		b.Run(FormatRate(rate), func(b *testing.B) {
			for range b.N {
				got := tcpRun(b, true, rate, 3*time.Second)
				b.ReportMetric(got/1e6, "Mbit/s")
				b.ReportMetric(100*(got-float64(rate))/float64(rate), "err_%")
			}
		})
	}
}

// BenchmarkPassThroughTCP is TCP namespace to namespace across a switch with both
// ports bare and with both wrapped with nothing set (as the daemon attaches every
// port): the cost of the pass-through. Run with -benchtime=1x; noisy on a shared host.
func BenchmarkPassThroughTCP(b *testing.B) {
	for _, wrap := range []bool{false, true} {
		b.Run(fmt.Sprintf("wrapped=%v", wrap), func(b *testing.B) {
			for range b.N {
				b.ReportMetric(tcpRun(b, wrap, 0, 2*time.Second)/1e9, "Gbit/s")
			}
		})
	}
}

// tcpRun streams TCP from namespace a to b across a switch for d and returns the
// goodput at b over the last 3/4 of it; with wrap, both ports are wrapped, and the
// one toward b limited to rate (0: nothing set).
func tcpRun(b *testing.B, wrap bool, rate uint64, d time.Duration) float64 {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sw := l2switch.New(l2switch.Config{Name: "lan", Logger: log})
	defer sw.Close()
	var nss [2]*nsstack.Namespace
	var wb *Port
	for i, name := range []string{"a", "b"} {
		ns, err := nsstack.New(nsstack.Options{Name: name, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		defer ns.Close()
		nic, err := ns.AddNIC(nsstack.NICConfig{Name: "eth0"})
		if err != nil {
			b.Fatal(err)
		}
		if err := ns.AddAddress("eth0", netip.MustParsePrefix(fmt.Sprintf("10.0.0.%d/24", i+1))); err != nil {
			b.Fatal(err)
		}
		var p frame.Port = nic
		if wrap {
			wb = Wrap(nic, Options{})
			p = wb.Attach()
		}
		if err := sw.AddPort(p, l2switch.PortConfig{Name: name + ".eth0"}); err != nil {
			b.Fatal(err)
		}
		nss[i] = ns
	}
	if rate != 0 {
		if err := wb.Set(Out, Params{Rate: rate}); err != nil {
			b.Fatal(err)
		}
	}
	l, err := nss[1].Listen("tcp", "10.0.0.2:5001")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d+5*time.Second)
	defer cancel()
	go func() {
		c, err := nss[0].Dial(ctx, "tcp", "10.0.0.2:5001")
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		for ctx.Err() == nil {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write(buf)
		}
	}()
	c, err := l.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	start := time.Now()
	var t1 time.Time
	var n1 int64
	var total int64
	for time.Since(start) < d {
		c.SetReadDeadline(time.Now().Add(time.Second))
		k, err := c.Read(buf)
		if err != nil {
			b.Fatalf("read: %v", err)
		}
		total += int64(k)
		if t1.IsZero() && time.Since(start) > d/4 {
			t1, n1 = time.Now(), total
		}
	}
	cancel()
	return float64(total-n1) * 8 / time.Since(t1).Seconds()
}

// BenchmarkWriteBatch is the cost per frame of a 64-frame WriteFrames through the
// decorator and on to a veth pair whose far end is drained: with nothing set
// (pass-through) and with a 1 ms delay (every frame copied, queued, released by the
// timer goroutine). ns/op and allocs/op are per frame.
func BenchmarkWriteBatch(b *testing.B) {
	for _, tc := range []struct {
		name string
		p    Params
	}{{"passthrough", Params{}}, {"delay1ms", Params{Delay: time.Millisecond, Limit: MaxLimit}}} {
		b.Run(tc.name, func(b *testing.B) {
			near, far := frametest.NewPair(frametest.PairOptions{QueueLen: 1 << 16})
			w := Wrap(near, Options{})
			if err := w.Set(Out, tc.p); err != nil {
				b.Fatal(err)
			}
			got := make(chan int, 1)
			go func() {
				n := 0
				readAll(far, func([]byte) { n++ })
				got <- n
			}()
			fs := make([]frame.Frame, 64)
			for i := range fs {
				p := frameN(i, 1500)
				fs[i] = frame.Frame{Buf: p, N: len(p)}
			}
			b.ReportAllocs()
			b.SetBytes(1500)
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i += len(fs) {
				w.WriteFrames(fs[:min(len(fs), b.N-i)])
				if w.Status().OutStats.Waiting > MaxLimit/2 {
					time.Sleep(time.Millisecond)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu_ns/frame")
			time.Sleep(5 * time.Millisecond)
			w.Close()
			<-got
		})
	}
}
