package daemon

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/frame/frametest"
)

// queuedTAP stands in for a multi-queue TAP: one port that counts per queue.
type queuedTAP struct {
	*frametest.End
	n int
}

func (q queuedTAP) QueueCounts() []frame.QueueCounts {
	out := make([]frame.QueueCounts, q.n)
	for i := range out {
		out[i] = frame.QueueCounts{RxFrames: uint64(i + 1), TxFrames: uint64(10 * (i + 1))}
	}
	return out
}

// TestTAPQueuesOnePort: a [[tap]] with queues = 4 reaches OpenTAP with Queues 4 and is
// one switch port, tap:NAME, whose status lists the four queues' counts through the
// decorators the daemon puts around it (port security, MAC limit).
func TestTAPQueuesOnePort(t *testing.T) {
	var got []int
	d := New(Options{Logger: quiet(), OpenTAP: func(c config.TAP, _ *slog.Logger) (frame.Port, error) {
		got = append(got, c.Queues)
		a, _ := frametest.NewPair(frametest.PairOptions{NameA: "tap:" + c.Name})
		if c.Queues == 1 {
			return a, nil // as tap.Open's single-queue TAP: no per-queue counts
		}
		return queuedTAP{a, c.Queues}, nil
	}})
	defer d.Close()
	if err := d.Apply(parse(t, `
[[switch]]
name = "lan0"
[[tap]]
name = "t0"
switch = "lan0"
queues = 4
allow_macs = ["52:54:00:00:00:01"]
[[tap]]
name = "t1"
switch = "lan0"
`)); err != nil {
		t.Fatalf("Apply() = %v", err)
	}
	if !slices.Equal(got, []int{4, 1}) {
		t.Errorf("OpenTAP got queues %v, want [4 1]", got)
	}
	ports := d.Status().Switches[0].Ports
	var names []string
	for _, p := range ports {
		names = append(names, p.Name)
		switch p.Name {
		case "tap:t0":
			want := []frame.QueueCounts{{RxFrames: 1, TxFrames: 10}, {RxFrames: 2, TxFrames: 20}, {RxFrames: 3, TxFrames: 30}, {RxFrames: 4, TxFrames: 40}}
			if !slices.Equal(p.Queues, want) {
				t.Errorf("tap:t0 status queues = %+v, want %+v", p.Queues, want)
			}
		case "tap:t1":
			if p.Queues != nil {
				t.Errorf("tap:t1 status queues = %+v, want none", p.Queues)
			}
		}
	}
	if !slices.Equal(names, []string{"tap:t0", "tap:t1"}) {
		t.Errorf("lan0 ports = %v, want [tap:t0 tap:t1]: one port per TAP whatever its queues", names)
	}
}
