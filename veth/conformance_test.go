package veth

import (
	"testing"

	"github.com/vnetd/vnetd/frame/frametest"
)

// TestPortContract runs the frame.Port conformance suite against one end of a pair,
// the other end being its far side.
func TestPortContract(t *testing.T) {
	frametest.TestPort(t, func(t *testing.T) frametest.Harness {
		a, b := NewPair(Options{})
		inject, receive := frametest.PortFarSide(b)
		return frametest.Harness{Port: a, Inject: inject, Receive: receive, KeepsMeta: true,
			ReadDrops: func() uint64 { return a.Counters().Snapshot().RxDropped }}
	})
}
