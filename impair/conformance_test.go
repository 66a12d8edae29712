package impair

import (
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame/frametest"
)

// TestPortContract runs the frame.Port conformance suite against the decorator around
// one end of a pair, as attached with nothing set (pass-through) and with a delay both
// ways (frames wait in its queues and its goroutines carry them).
func TestPortContract(t *testing.T) {
	for _, c := range []struct {
		name  string
		delay time.Duration
	}{{"passthrough", 0}, {"delayed", time.Millisecond}} {
		t.Run(c.name, func(t *testing.T) {
			frametest.TestPort(t, func(t *testing.T) frametest.Harness {
				a, b := frametest.NewPair(frametest.PairOptions{})
				w := Wrap(a, Options{})
				if c.delay > 0 {
					if err := w.Set(Both, Params{Delay: c.delay}); err != nil {
						t.Fatal(err)
					}
				}
				inject, receive := frametest.PortFarSide(b)
				h := frametest.Harness{Port: w, Inject: inject, Receive: receive, KeepsMeta: true}
				if c.delay == 0 {
					h.ReadDrops = func() uint64 { return a.Counters().Snapshot().RxDropped }
				}
				return h
			})
		})
	}
}
