package main

import (
	"fmt"
	"log/slog"
	"runtime"
	"syscall"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/tap"
)

// writeCost measures the CPU time WriteFrames spends per 60-byte frame, for batches of
// 1, 4, 16 and 64 frames, with one io_uring submission per call and with one writev
// per frame, alternating the two for rounds rounds. The frames are addressed to
// another host, so the kernel drops them right after taking them. Run it in a network
// namespace of its own (ip netns exec): it creates two TAPs there.
func writeCost(rounds int, log *slog.Logger) {
	var taps [2]*tap.TAP
	for i, writev := range []bool{false, true} {
		t, err := tap.Open(tap.Options{Name: fmt.Sprintf("wcost%d", i), Create: true, MTU: 1500, Offload: true, WritevOnly: writev, Logger: log})
		if err != nil {
			fail(err)
		}
		defer t.Close()
		taps[i] = t
	}
	f := make([]byte, 60)
	copy(f, []byte{0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0, 0, 0x0a, 0x88, 0xb5}) // local experimental EtherType
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu := func() int64 {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_THREAD, &ru)
		return ru.Utime.Nano() + ru.Stime.Nano()
	}
	const perRound = 100000
	for _, batch := range []int{1, 4, 16, 64} {
		frames := make([]frame.Frame, batch)
		for i := range frames {
			frames[i] = frame.Frame{Buf: f, N: len(f)}
		}
		fmt.Printf("batch %2d, CPU ns per frame:", batch)
		var sum [2]int64
		for range rounds {
			for i, t := range taps {
				c := cpu()
				for n := 0; n < perRound; n += batch {
					if _, err := t.WriteFrames(frames); err != nil {
						fail(err)
					}
				}
				sum[i] += cpu() - c
			}
		}
		fmt.Printf(" io_uring %d, writev %d\n", sum[0]/int64(rounds*perRound), sum[1]/int64(rounds*perRound))
	}
}
