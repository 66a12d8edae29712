// Command tapswitch runs one vnetd switch with two host TAPs, for bench/tap.sh. It
// creates the TAPs in its own network namespace (run it with `ip netns exec`), prints
// "ready" once both are attached, and exits (removing them) on SIGINT/SIGTERM.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	l2switch "github.com/vnetd/vnetd/switch"
	"github.com/vnetd/vnetd/tap"
)

func main() {
	a := flag.String("a", "tapA", "first TAP name")
	b := flag.String("b", "tapB", "second TAP name")
	mtu := flag.Int("mtu", 1500, "TAP MTU")
	offload := flag.Bool("offload", true, "open the TAPs with virtio-net header offloads")
	batch := flag.Int("batch", 0, "frames per ReadFrames call (0: switch default)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sw := l2switch.New(l2switch.Config{Name: "bench", Batch: *batch, Logger: log})
	defer sw.Close()
	for _, name := range []string{*a, *b} {
		t, err := tap.Open(tap.Options{Name: name, Create: true, MTU: *mtu, Offload: *offload, Logger: log})
		if err != nil {
			fmt.Fprintln(os.Stderr, "tapswitch:", err)
			os.Exit(1)
		}
		defer t.Close()
		if err := sw.AddPort(t, l2switch.PortConfig{}); err != nil {
			fmt.Fprintln(os.Stderr, "tapswitch:", err)
			os.Exit(1)
		}
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}
