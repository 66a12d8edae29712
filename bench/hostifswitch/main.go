// Command hostifswitch runs one vnetd switch with two host interfaces attached through
// package hostif, for bench/hostif.sh. Run it inside the network namespace that holds
// the interfaces (`ip netns exec`); it prints "ready" once both are attached and exits
// (detaching them, leaving the interfaces in place) on SIGINT/SIGTERM, printing the
// ports' counters.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/vnetd/vnetd/hostif"
	l2switch "github.com/vnetd/vnetd/switch"
)

func main() {
	a := flag.String("a", "ha", "first interface")
	b := flag.String("b", "hb", "second interface")
	offload := flag.Bool("offload", true, "let offload metadata cross the ports")
	batch := flag.Int("batch", 0, "frames per ReadFrames call (0: switch default)")
	blockKiB := flag.Int("block", 0, "ring block size in KiB (0: default)")
	blocks := flag.Int("blocks", 0, "ring blocks (0: default)")
	tov := flag.Duration("tov", 0, "ring block timeout (0: default)")
	bypass := flag.Bool("bypass", false, "PACKET_QDISC_BYPASS")
	ring := flag.Bool("ring", false, "read through the TPACKET_V3 ring instead of recvmmsg")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "hostifswitch:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "hostifswitch:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sw := l2switch.New(l2switch.Config{Name: "bench", Batch: *batch, Logger: log})
	defer sw.Close()
	var ports []*hostif.Port
	for _, name := range []string{*a, *b} {
		p, err := hostif.Open(hostif.Options{Name: name, Offload: *offload, SetUp: true, Logger: log,
			BlockSize: *blockKiB << 10, Blocks: *blocks, BlockTimeout: *tov, QdiscBypass: *bypass, Ring: *ring})
		if err != nil {
			fmt.Fprintln(os.Stderr, "hostifswitch:", err)
			os.Exit(1)
		}
		defer p.Close()
		if err := sw.AddPort(p, l2switch.PortConfig{}); err != nil {
			fmt.Fprintln(os.Stderr, "hostifswitch:", err)
			os.Exit(1)
		}
		ports = append(ports, p)
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	time.Sleep(10 * time.Millisecond)
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		var fwd uint64
		for _, p := range ports {
			fwd += p.Counters.TxBytes.Load()
		}
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		fmt.Fprintf(os.Stderr, "cpu %.2fs for %.2f GB forwarded: %.3f cpu-s/GB\n", cpu.Seconds(), float64(fwd)/1e9, cpu.Seconds()/max(float64(fwd)/1e9, 1e-9))
	}
	for _, p := range ports {
		c := p.Counters.Snapshot()
		fmt.Fprintf(os.Stderr, "%s: rx %d frames %d bytes (%d dropped), tx %d frames %d bytes (%d dropped), outgoing %d, segmented %d, faults %d\n",
			p.Name(), c.RxFrames, c.RxBytes, c.RxDropped, c.TxFrames, c.TxBytes, c.TxDropped, p.Outgoing.Load(), p.Segmented.Load(), p.Faults.Load())
	}
}
