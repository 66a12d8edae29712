package l2switch

import (
	"sync"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/frame/frametest"
)

// TestFDBConcurrentReadersAndWriters learns, moves, ages and flushes while readers look
// up the same keys; run under -race it checks the copy-on-write shards, and the counts
// must agree at the end.
func TestFDBConcurrentReadersAndWriters(t *testing.T) {
	f := newFDB(1 << 16)
	mk := func(name string) *swPort {
		a, b := frametest.NewPair(frametest.PairOptions{NameA: name})
		t.Cleanup(func() { a.Close(); b.Close() })
		return newSwPort(a, PortConfig{}, 8, 1<<30, 0)
	}
	p1, p2 := mk("p1"), mk("p2")
	const n = 2000
	keys := make([]fdbKey, n)
	for i := range keys {
		m := frame.MAC{0x02, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		keys[i] = keyOf(DefaultVLAN, m[:])
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := 0; r < 2; r++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				for _, k := range keys {
					select {
					case <-stop:
						return
					default:
					}
					if p := f.lookup(k); p != nil && p != p1 && p != p2 {
						t.Errorf("lookup(%x) = %p, a port never learned", uint64(k), p)
						return
					}
				}
			}
		}()
	}
	base := time.Unix(1000, 0)
	for i, k := range keys {
		f.learn(k, p1, base.UnixNano())
		if i%2 == 0 {
			f.learn(k, p2, base.Add(time.Minute).UnixNano()) // move, refreshed later
		}
	}
	close(stop)
	readers.Wait()

	if got := f.size.Load(); got != n {
		t.Fatalf("size = %d after learning %d keys, want %d", got, n, n)
	}
	if got := f.moved.Load(); got != n/2 {
		t.Fatalf("moved = %d, want %d", got, n/2)
	}
	if p1.macs.Load() != n/2 || p2.macs.Load() != n/2 {
		t.Fatalf("macs p1=%d p2=%d, want %d each", p1.macs.Load(), p2.macs.Load(), n/2)
	}
	// Aging at base+90s with 60s aging forgets the p1 entries (last seen at base) only.
	f.age(base.Add(90*time.Second), time.Minute)
	if got := f.aged.Load(); got != n/2 {
		t.Fatalf("aged = %d, want %d", got, n/2)
	}
	if f.lookup(keys[1]) != nil || f.lookup(keys[0]) != p2 {
		t.Fatalf("after age: lookup(odd) = %v, lookup(even) = %v; want nil, p2", f.lookup(keys[1]), f.lookup(keys[0]))
	}
	f.flushPort(p2)
	if got := f.size.Load(); got != 0 || len(f.snapshot(base)) != 0 || p2.macs.Load() != 0 {
		t.Fatalf("after flushPort(p2): size %d, snapshot %d, p2 macs %d; want all 0", got, len(f.snapshot(base)), p2.macs.Load())
	}
}
