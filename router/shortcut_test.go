package router

import (
	"bytes"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/vnetd/vnetd/frame"
)

// sink is an in-process NIC stand-in: WriteFrames keeps copies (or only counts).
type sink struct {
	keep   bool
	frames [][]byte
	metas  []frame.Meta
	n      atomic.Uint64
}

func (s *sink) ReadFrames([]frame.Frame) (int, error) { return 0, net.ErrClosed }
func (s *sink) WriteFrames(fs []frame.Frame) (int, error) {
	for k := range fs {
		if s.keep {
			s.frames = append(s.frames, append([]byte(nil), fs[k].Bytes()...))
			s.metas = append(s.metas, fs[k].Meta)
		}
	}
	s.n.Add(uint64(len(fs)))
	return len(fs), nil
}
func (s *sink) Info() frame.Info {
	return frame.Info{Name: "sink", MTU: 1500, MaxFrame: frame.MaxSuperFrame, Caps: frame.CapsAll}
}
func (s *sink) Close() error { return nil }

var _ frame.Port = (*sink)(nil)

func TestShortcutMatchesFullPath(t *testing.T) {
	full := newLab(t, Options{})
	full.resolve(t)
	s := &sink{keep: true}
	var asked []string
	short := newLab(t, Options{Shortcut: func(ifc string, vlan uint16, dst frame.MAC) (frame.Port, bool) {
		asked = append(asked, ifc)
		return s, dst == hostB
	}})
	short.resolve(t)
	if short.lan0.mac != full.lan0.mac || short.lan1.mac != full.lan1.mac {
		t.Fatalf("labs differ in MACs")
	}
	meta := frame.Meta{GSO: frame.GSOUDPL4, HdrLen: 42, GSOSize: 1300, NeedsCsum: true, CsumStart: 34, CsumOffset: 6}
	inputs := []struct {
		b []byte
		m frame.Meta
	}{
		{udp4(full.lan0.mac, hostA, ipA, ipB, 64, 100, true), frame.Meta{}},
		{udp4(full.lan0.mac, hostA, ipA, ipB, 2, 1000, false), frame.Meta{}},
		{udp4(full.lan0.mac, hostA, ipA, ipB, 64, 8000, true), meta},
	}
	for _, in := range inputs {
		write(t, full.lan0, append([]byte(nil), in.b...), in.m)
		write(t, short.lan0, append([]byte(nil), in.b...), in.m)
	}
	got := drain(full.lan1)
	defer frame.ReleaseBufs(got)
	if len(got) != len(inputs) || len(s.frames) != len(inputs) {
		t.Fatalf("full path gave %d frames, shortcut %d; want %d each", len(got), len(s.frames), len(inputs))
	}
	if o := drain(short.lan1); len(o) != 0 {
		t.Errorf("shortcut lab queued %d frames on lan1, want 0", len(o))
	}
	for k := range got {
		if !bytes.Equal(got[k].Bytes(), s.frames[k]) || got[k].Meta != s.metas[k] {
			t.Errorf("frame %d: full path % x (%+v), shortcut % x (%+v)", k, got[k].Bytes()[:40], got[k].Meta, s.frames[k][:40], s.metas[k])
		}
	}
	if len(asked) == 0 || asked[0] != "lan1" {
		t.Errorf("Shortcut asked for %v, want lan1", asked)
	}
	if sc := short.r.Interfaces()[1].Shortcut; sc != uint64(len(inputs)) {
		t.Errorf("lan1 shortcut counter = %d, want %d", sc, len(inputs))
	}
}

func benchLab(b *testing.B, shortcut bool) (*lab, *sink) {
	s := &sink{}
	o := Options{QueueLen: 4096}
	if shortcut {
		o.Shortcut = func(string, uint16, frame.MAC) (frame.Port, bool) { return s, true }
	}
	l := newLab(b, o)
	l.resolve(b)
	return l, s
}

func benchRoute(b *testing.B, shortcut bool) {
	l, _ := benchLab(b, shortcut)
	const batch = 64
	fs := make([]frame.Frame, batch)
	for k := range fs {
		buf := udp4(l.lan0.mac, hostA, ipA, ipB, 64, 64-42, true)
		fs[k] = frame.Frame{Buf: buf, N: len(buf)}
	}
	out := make([]*frame.Buf, batch)
	b.ReportAllocs()
	b.ResetTimer()
	pkts := 0
	for b.Loop() {
		l.lan0.WriteFrames(fs)
		pkts += batch
		if !shortcut {
			n := l.lan1.q.TryPop(out)
			frame.ReleaseBufs(out[:n])
		}
	}
	b.ReportMetric(float64(pkts)/b.Elapsed().Seconds(), "pkts/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(pkts), "ns/pkt")
}

// BenchmarkRoute64 routes 64-byte IPv4 frames in batches of 64 through the full path
// (egress queue).
func BenchmarkRoute64(b *testing.B) { benchRoute(b, false) }

// BenchmarkRoute64Shortcut is BenchmarkRoute64 with the short-cut to an in-process NIC.
func BenchmarkRoute64Shortcut(b *testing.B) { benchRoute(b, true) }

var _ = netip.Addr{}
