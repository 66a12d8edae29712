package frametest

import (
	"testing"
)

// TestPortContract runs the frame.Port conformance suite against one end of a pair,
// the other end being its far side.
func TestPortContract(t *testing.T) {
	TestPort(t, func(t *testing.T) Harness {
		a, b := NewPair(PairOptions{})
		inject, receive := PortFarSide(b)
		return Harness{Port: a, Inject: inject, Receive: receive, KeepsMeta: true,
			ReadDrops: func() uint64 { return a.Counters().Snapshot().RxDropped }}
	})
}
