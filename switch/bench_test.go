package l2switch

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
)

// benchForward measures the forwarding core on one goroutine: batches of known-unicast
// frames of size n from port a to port b, the egress queue drained in the same
// goroutine (as the writer would, minus the port's own write).
func benchForward(b *testing.B, n int) { benchForwardRing(b, n, false) }

// benchForwardRing is benchForward, with the ingress port keeping a 1 MiB capture ring
// when ring is set (the egress side's ring costs the same again in writeFrames, which
// this loop does not run).
func benchForwardRing(b *testing.B, n int, ring bool) {
	d := newDirect(b, PortConfig{}, PortConfig{})
	a, z := d.ports[0], d.ports[1]
	if ring {
		a.ring = newRing(RingConfig{Bytes: 1 << 20})
	}
	src, dst := mac(1), mac(2)
	now := time.Now().UnixNano()
	d.sw.fdb.learn(keyOf(DefaultVLAN, src[:]), a, now)
	d.sw.fdb.learn(keyOf(DefaultVLAN, dst[:]), z, now)
	pkt := eth(dst, src, "bench")
	pkt = append(pkt, make([]byte, n-len(pkt))...)
	const batchN = 64
	var out [batchN]*frame.Buf
	b.SetBytes(int64(n))
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += batchN {
		for i := 0; i < batchN; i++ {
			d.b.frames[i].N = copy(d.b.frames[i].Buf, pkt) // stands in for ReadFrames
		}
		d.sw.forwardBatch(a, d.b, batchN)
		k := z.out.TryPop(out[:])
		frame.ReleaseBufs(out[:k]) // as the writer does
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

func BenchmarkForward64(b *testing.B)   { benchForward(b, 64) }
func BenchmarkForward1500(b *testing.B) { benchForward(b, 1514) }

func BenchmarkForward64Ring(b *testing.B)   { benchForwardRing(b, 64, true) }
func BenchmarkForward1500Ring(b *testing.B) { benchForwardRing(b, 1514, true) }

// BenchmarkForward64Mixed is BenchmarkForward64 with a different source and destination
// MAC in every frame of a batch, so the per-batch last-source/last-destination short-cut
// never hits and every frame pays a full FDB learn check and lookup.
func BenchmarkForward64Mixed(b *testing.B) {
	d := newDirect(b, PortConfig{}, PortConfig{})
	a, z := d.ports[0], d.ports[1]
	const batchN = 64
	now := time.Now().UnixNano()
	var pkts [batchN][]byte
	for i := range pkts {
		src, dst := mac(1000+i), mac(2000+i)
		d.sw.fdb.learn(keyOf(DefaultVLAN, src[:]), a, now)
		d.sw.fdb.learn(keyOf(DefaultVLAN, dst[:]), z, now)
		pkt := eth(dst, src, "mixed")
		pkts[i] = append(pkt, make([]byte, 64-len(pkt))...)
	}
	var out [batchN]*frame.Buf
	b.SetBytes(64)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += batchN {
		for i := 0; i < batchN; i++ {
			d.b.frames[i].N = copy(d.b.frames[i].Buf, pkts[i])
		}
		d.sw.forwardBatch(a, d.b, batchN)
		k := z.out.TryPop(out[:])
		frame.ReleaseBufs(out[:k])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkForwardParallel forwards 64-byte known unicast on all cores at once: one
// goroutine per pair of ports, every pair on the same switch and FDB, each goroutine
// reading its own batches and draining its own egress queue.
func BenchmarkForwardParallel(b *testing.B) {
	const pairs = 64
	pcs := make([]PortConfig, 2*pairs)
	for i := range pcs {
		pcs[i].Name = fmt.Sprint("p", i)
	}
	d := newDirect(b, pcs...)
	now := time.Now().UnixNano()
	for i, p := range d.ports {
		m := mac(i + 1)
		d.sw.fdb.learn(keyOf(DefaultVLAN, m[:]), p, now)
	}
	var next atomic.Int32
	b.SetBytes(64)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)-1) % pairs
		in, out := d.ports[2*i], d.ports[2*i+1]
		rb := newBatch(64, frame.MaxFrameFor(1500, false))
		defer rb.release()
		pkt := eth(mac(2*i+2), mac(2*i+1), "par")
		var drained [64]*frame.Buf
		for {
			for k := 0; k < 64; k++ {
				if !pb.Next() {
					d.sw.forwardBatch(in, rb, k)
					frame.ReleaseBufs(drained[:out.out.TryPop(drained[:])])
					return
				}
				rb.frames[k].N = copy(rb.frames[k].Buf, pkt)
			}
			d.sw.forwardBatch(in, rb, 64)
			frame.ReleaseBufs(drained[:out.out.TryPop(drained[:])])
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkFlood broadcasts 64-byte frames from one port to 8 others.
func BenchmarkFlood(b *testing.B) {
	pcs := make([]PortConfig, 9)
	d := newDirect(b, pcs...)
	pkt := eth(frame.Broadcast, mac(1), "flood")
	const batchN = 64
	var out [batchN]*frame.Buf
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += batchN {
		for i := 0; i < batchN; i++ {
			d.b.frames[i].N = copy(d.b.frames[i].Buf, pkt)
		}
		d.sw.forwardBatch(d.ports[0], d.b, batchN)
		for _, p := range d.ports[1:] {
			k := p.out.TryPop(out[:])
			frame.ReleaseBufs(out[:k])
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(8*float64(b.N)/b.Elapsed().Seconds(), "egress_frames/s")
}
