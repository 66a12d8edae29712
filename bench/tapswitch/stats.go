package main

import (
	"fmt"
	"io"
	"sync/atomic"

	"github.com/vnetd/vnetd/frame"
)

// countingPort counts a port's ReadFrames/WriteFrames calls and frames, to see how many
// frames each call moves (-stats).
type countingPort struct {
	frame.Port
	reads, readFrames   atomic.Uint64
	writes, writeFrames atomic.Uint64
}

func (p *countingPort) ReadFrames(f []frame.Frame) (int, error) {
	n, err := p.Port.ReadFrames(f)
	if n > 0 {
		p.reads.Add(1)
		p.readFrames.Add(uint64(n))
	}
	return n, err
}

func (p *countingPort) WriteFrames(f []frame.Frame) (int, error) {
	p.writes.Add(1)
	p.writeFrames.Add(uint64(len(f)))
	return p.Port.WriteFrames(f)
}

func (p *countingPort) report(w io.Writer) {
	per := func(n, calls uint64) float64 { return float64(n) / float64(max(calls, 1)) }
	fmt.Fprintf(w, "%s: %d frames read in %d calls (%.2f per call), %d written in %d calls (%.2f per call)\n",
		p.Info().Name, p.readFrames.Load(), p.reads.Load(), per(p.readFrames.Load(), p.reads.Load()),
		p.writeFrames.Load(), p.writes.Load(), per(p.writeFrames.Load(), p.writes.Load()))
}
