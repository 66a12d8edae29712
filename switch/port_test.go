package l2switch

import (
	"sync/atomic"
	"testing"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/frame/frametest"
)

// deviceWrap is a decorator whose device can be gone (as a TAP being reopened).
type deviceWrap struct {
	frame.Port
	up atomic.Bool
}

func (w *deviceWrap) Inner() frame.Port { return w.Port }
func (w *deviceWrap) Up() bool          { return w.up.Load() }

// outer is a decorator that knows nothing of the device (as the impairment one).
type outer struct{ frame.Port }

func (o outer) Inner() frame.Port { return o.Port }

// TestPortStatusShowsDeviceGone: a port whose device is gone behind a decorator (a
// deleted TAP its reopen wrapper waits for) is listed as down, and up again once the
// device is back, though the switch's own reader never failed.
func TestPortStatusShowsDeviceGone(t *testing.T) {
	sw := newSwitch(t, Config{})
	a, b := frametest.NewPair(frametest.PairOptions{})
	defer b.Close()
	w := &deviceWrap{Port: a}
	w.up.Store(true)
	if err := sw.AddPort(outer{w}, PortConfig{Name: "tap"}); err != nil {
		t.Fatal(err)
	}
	up := func() bool {
		for _, p := range sw.Ports() {
			if p.Name == "tap" {
				return p.Up
			}
		}
		t.Fatal("port tap not listed")
		return false
	}
	if !up() {
		t.Fatal("a port whose device is there is listed down")
	}
	w.up.Store(false)
	if up() {
		t.Fatal("a port whose device is gone is listed up")
	}
	w.up.Store(true)
	if !up() {
		t.Fatal("a port whose device came back is listed down")
	}
}
