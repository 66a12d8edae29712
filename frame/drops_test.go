package frame

import (
	"reflect"
	"testing"
)

type reporter struct {
	Port
	c *Counters
}

func (r reporter) Drops() map[string]uint64 { return r.c.Drops() }

type decorator struct{ inner Port }

func (d decorator) ReadFrames([]Frame) (int, error)  { return 0, nil }
func (d decorator) WriteFrames([]Frame) (int, error) { return 0, nil }
func (d decorator) Info() Info                       { return Info{} }
func (d decorator) Close() error                     { return nil }
func (d decorator) Inner() Port                      { return d.inner }

func TestDropsByReason(t *testing.T) {
	var c Counters
	if m := c.Drops(); m != nil {
		t.Errorf("Drops() of fresh counters = %v, want nil", m)
	}
	c.DropRx(DropTooShort, 2)
	c.DropRx(DropBadLength, 1)
	c.DropTx(DropQueueFull, 3)
	want := map[string]uint64{"too_short": 2, "bad_length": 1, "queue_full": 3}
	if m := c.Drops(); !reflect.DeepEqual(m, want) {
		t.Errorf("Drops() = %v, want %v", m, want)
	}
	if c.RxDropped.Load() != 3 || c.TxDropped.Load() != 3 {
		t.Errorf("RxDropped, TxDropped = %d, %d; want 3, 3", c.RxDropped.Load(), c.TxDropped.Load())
	}
	// Through two decorators to the port that counts.
	p := decorator{decorator{reporter{c: &c}}}
	if m := PortDrops(p); !reflect.DeepEqual(m, want) {
		t.Errorf("PortDrops(decorated) = %v, want %v", m, want)
	}
	if m := PortDrops(decorator{}); m != nil {
		t.Errorf("PortDrops(no reporter) = %v, want nil", m)
	}
	for r := DropReason(0); r < numDropReasons; r++ {
		if r.Name() == "" {
			t.Errorf("DropReason(%d) has no name", r)
		}
	}
}
