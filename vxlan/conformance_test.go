package vxlan

import (
	"testing"

	"github.com/vnetd/vnetd/frame/frametest"
)

// TestPortContract runs the frame.Port conformance suite against a tunnel end, the far
// side being a second tunnel end (on 127.0.0.2) whose remote it is.
func TestPortContract(t *testing.T) {
	frametest.TestPort(t, func(t *testing.T) frametest.Harness {
		a, b := pair(t, nil)
		inject, receive := frametest.PortFarSide(b)
		return frametest.Harness{Port: a, Inject: inject, Receive: receive, Cleanup: func() { b.Close() },
			ReadDrops: func() uint64 { return a.Counters.Snapshot().RxDropped }}
	})
}
