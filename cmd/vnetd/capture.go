package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/vnetd/vnetd/control"
)

// cmdCapture streams a live pcap of a switch to a file or stdout:
//
//	vnetd capture lan0 -w lan0.pcap          # every frame entering lan0, until Ctrl-C
//	vnetd capture lan0 --port alpha.eth0 -c 10 | tcpdump -nr -
func cmdCapture(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("capture")
	sock := fs.String("s", "", "control socket path")
	port := fs.String("port", "", "capture one port (in and out) instead of the whole switch")
	count := fs.Int("c", 0, "stop after this many frames (0 = until interrupted)")
	file := fs.String("w", "", "write the pcap to this file instead of stdout")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"capture needs SWITCH"}
	}
	if *count < 0 {
		return usageError{"capture -c must not be negative"}
	}
	path := *sock
	if path == "" {
		path = control.DefaultPath()
	}
	w := stdout
	if *file != "" {
		f, err := os.Create(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	} else if f, ok := stdout.(*os.File); ok && isTerminal(f) {
		return usageError{"capture writes binary pcap: give -w FILE or pipe it (| tcpdump -nr -)"}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cl := control.NewClient(path)
	defer cl.Close()
	if err := cl.Capture(ctx, pos[0], *port, *count, w); err != nil {
		return fmt.Errorf("capture %s: %w", pos[0], err)
	}
	return nil
}

// isTerminal reports whether f is a character device (a terminal), where binary
// output would only garble the screen.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
