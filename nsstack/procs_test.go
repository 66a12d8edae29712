package nsstack

import (
	"runtime"
	"testing"
	"time"

	"github.com/vnetd/vnetd/internal/testwait"
)

// TestTCPProcessorsIndependentOfCores: a namespace runs as many TCP processor
// goroutines as its Options ask (capped by GOMAXPROCS), whatever the core count, and
// GOMAXPROCS is back to the program's setting shortly after creation.
func TestTCPProcessorsIndependentOfCores(t *testing.T) {
	orig := runtime.GOMAXPROCS(8) // as on an 8-core host
	t.Cleanup(func() { runtime.GOMAXPROCS(orig) })
	// Processor goroutines, running or not yet started, by their creator; counted
	// once steady, as closed namespaces' ones may still be on their way out.
	processors := func() int {
		n := -1
		for range 100 {
			k := countStacks(goroutineStacks(), "tcp.(*dispatcher).startLocked")
			if k == n {
				break
			}
			n = k
			time.Sleep(5 * time.Millisecond)
		}
		return n
	}
	for _, c := range []struct{ ask, want int }{{0, 1}, {1, 1}, {3, 3}, {16, 8}} {
		before := processors()
		ns, err := New(Options{Name: "p", TCPProcessors: c.ask})
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		got := processors() - before
		if got != c.want {
			t.Errorf("TCPProcessors %d on GOMAXPROCS 8: %d processor goroutines, want %d", c.ask, got, c.want)
		}
	}
	testwait.Until(2*time.Second, func() bool { return runtime.GOMAXPROCS(0) == 8 })
	if p := runtime.GOMAXPROCS(0); p != 8 {
		t.Fatalf("GOMAXPROCS is %d after creating namespaces, want the program's 8 back", p)
	}
}
