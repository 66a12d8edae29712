package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vnetd/vnetd/control"
	"github.com/vnetd/vnetd/pcapfilter"
)

// cmdCapture streams a live capture of a switch to a file or stdout, or dumps the
// last seconds of its ports' capture rings:
//
//	vnetd capture lan0 -w lan0.pcapng                 # every frame entering lan0, until Ctrl-C
//	vnetd capture lan0 'tcp port 80' -c 10 | tcpdump -nr -
//	vnetd capture lan0 --port alpha.eth0 --format pcap -w alpha.pcap
//	vnetd capture lan0 --ring 30 -w last30s.pcapng    # what lan0's rings hold of the last 30 s
func cmdCapture(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("capture")
	sock := fs.String("s", "", "control socket path")
	port := fs.String("port", "", "capture one port (in and out) instead of the whole switch")
	count := fs.Int("c", 0, "stop after this many frames (0 = until interrupted; with --ring: the newest N)")
	file := fs.String("w", "", "write the capture to this file instead of stdout")
	format := fs.String("format", control.FormatPcapNG, "pcapng (one interface per port, named for it) or pcap")
	ring := fs.Int("ring", 0, "dump the last SECONDS from the ports' capture rings instead of capturing live")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return usageError{"capture needs SWITCH"}
	}
	// The filter is the rest of the line, as tcpdump takes it: quoted or not.
	expr := strings.Join(pos[1:], " ")
	if _, err := pcapfilter.Compile(expr); err != nil {
		var se *pcapfilter.SyntaxError
		if errors.As(err, &se) {
			return usageError{fmt.Sprintf("capture filter, column %d: %s\n  %s", se.Col, se.Msg, strings.ReplaceAll(se.Caret(), "\n", "\n  "))}
		}
		return usageError{err.Error()}
	}
	if *count < 0 {
		return usageError{"capture -c must not be negative"}
	}
	if *format != control.FormatPcap && *format != control.FormatPcapNG {
		return usageError{fmt.Sprintf("capture --format %q: pcap or pcapng", *format)}
	}
	if *ring < 0 || *ring > control.MaxRingSeconds {
		return usageError{fmt.Sprintf("capture --ring %d: seconds, 1-%d", *ring, control.MaxRingSeconds)}
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
		return usageError{"capture writes a binary capture: give -w FILE or pipe it (| tcpdump -nr -)"}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cl := control.NewClient(path)
	defer cl.Close()
	o := control.CaptureOptions{Port: *port, Count: *count, Filter: expr, Format: *format, Ring: time.Duration(*ring) * time.Second}
	if err := cl.Capture(ctx, pos[0], o, w); err != nil {
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
