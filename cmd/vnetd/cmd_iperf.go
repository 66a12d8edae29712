package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/vnetd/vnetd/daemon"
	"github.com/vnetd/vnetd/iperf"
)

func init() {
	register(command{"iperf", "NS ADDR [-p 5201] [-t 3] [-R] [-u] [-b RATE] [-P N] [-l LEN] [--json]",
		"measure throughput from inside a namespace with an iperf3 client (vnetd's iperf3 service or a real iperf3 -s)",
		func(ctx context.Context, args []string, stdout, _ io.Writer) error {
			return cmdIperf(ctx, args, stdout)
		}})
}

// cmdIperf runs `vnetd iperf NS ADDR ...`: the daemon runs the client inside the
// namespace for the test's length and answers both sides' results.
func cmdIperf(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("iperf")
	sock := fs.String("s", "", "control socket path")
	var spec daemon.IperfSpec
	fs.IntVar(&spec.Port, "p", iperf.DefaultPort, "server port")
	fs.IntVar(&spec.Time, "t", 3, "seconds to transmit (1-3600)")
	fs.BoolVar(&spec.Reverse, "R", false, "reverse: the server sends, the client receives")
	fs.BoolVar(&spec.UDP, "u", false, "UDP instead of TCP")
	rate := fs.String("b", "", "target rate per stream in bit/s, with K, M or G (x1000); UDP default 1M, TCP unlimited")
	fs.IntVar(&spec.Parallel, "P", 1, "parallel streams (1-128)")
	fs.IntVar(&spec.Len, "l", 0, "block size in bytes (default 128 KiB for TCP, 1460 for UDP)")
	asJSON := fs.Bool("json", false, "JSON output")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError{"iperf needs NS ADDR"}
	}
	spec.Namespace, spec.Addr = pos[0], pos[1]
	if *rate != "" {
		if spec.Rate, err = parseRate(*rate); err != nil {
			return usageError{err.Error()}
		}
	}
	cl := dialControl(*sock)
	defer cl.Close()
	rep, err := cl.Iperf(ctx, spec)
	if err != nil {
		return badRequestIsUsage(err)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(rep)
	}
	printIperf(stdout, spec, rep)
	return nil
}

// parseRate reads "20M", "1.5G", "500k", "1000000" as bit/s (decimal units, as iperf3).
func parseRate(s string) (int64, error) {
	mult := 1.0
	num := s
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		mult, num = 1e3, s[:len(s)-1]
	case "M":
		mult, num = 1e6, s[:len(s)-1]
	case "G":
		mult, num = 1e9, s[:len(s)-1]
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("bad rate %q (want e.g. 100M, 1G, 500K)", s)
	}
	return int64(f * mult), nil
}

// printIperf prints the results as iperf3 summarises them: each stream's sender and
// receiver lines, then their sum when there are several.
func printIperf(w io.Writer, spec daemon.IperfSpec, rep *iperf.Report) {
	dir := spec.Namespace + " -> " + rep.Server
	if rep.Reverse {
		dir = rep.Server + " -> " + spec.Namespace
	}
	fmt.Fprintf(w, "%s %s, %d stream(s), from namespace %s\n", strings.ToUpper(rep.Protocol), dir, rep.Parallel, spec.Namespace)
	if rep.Protocol == "udp" {
		fmt.Fprintf(w, "[ ID] Interval        Transfer     Bitrate          Jitter     Lost/Total\n")
	} else {
		fmt.Fprintf(w, "[ ID] Interval        Transfer     Bitrate\n")
	}
	line := func(id string, s iperf.StreamReport) {
		fmt.Fprintf(w, "[%3s] 0.00-%-6.2f sec  %-11s  %-15s  sender\n", id, s.Seconds, bytesString(s.SentBytes), bpsString(s.SentBps))
		if rep.Protocol == "udp" {
			pct := 0.0
			if s.Packets > 0 {
				pct = 100 * float64(s.Lost) / float64(s.Packets)
			}
			fmt.Fprintf(w, "[%3s] 0.00-%-6.2f sec  %-11s  %-15s  %6.3f ms  %d/%d (%.2g%%)  receiver\n", id, s.Seconds, bytesString(s.ReceivedBytes), bpsString(s.ReceivedBps), s.JitterMs, s.Lost, s.Packets, pct)
			return
		}
		fmt.Fprintf(w, "[%3s] 0.00-%-6.2f sec  %-11s  %-15s  receiver\n", id, s.Seconds, bytesString(s.ReceivedBytes), bpsString(s.ReceivedBps))
	}
	for _, s := range rep.Streams {
		line(strconv.Itoa(s.ID), s)
	}
	if len(rep.Streams) > 1 {
		line("SUM", rep.Sum)
	}
}

func bytesString(b int64) string {
	switch f := float64(b); {
	case f >= 1<<30:
		return fmt.Sprintf("%.2f GBytes", f/(1<<30))
	case f >= 1<<20:
		return fmt.Sprintf("%.2f MBytes", f/(1<<20))
	default:
		return fmt.Sprintf("%.2f KBytes", f/(1<<10))
	}
}

func bpsString(bps float64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.2f Gbits/sec", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.2f Mbits/sec", bps/1e6)
	default:
		return fmt.Sprintf("%.2f Kbits/sec", bps/1e3)
	}
}
