package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/vnetd/vnetd/daemon"
)

func init() {
	register(command{"trace", "SWITCH PORT --src ADDR --dst ADDR [--proto icmp|tcp|udp --dport N] [--ttl N] [--size N] [--df] [--src-mac M] [--dst-mac M] [--json]",
		"push a synthetic packet through the real lookup code (nothing sent) and print each decision",
		func(ctx context.Context, args []string, stdout, _ io.Writer) error {
			return cmdTrace(ctx, args, stdout)
		}})
}

// cmdTrace runs `vnetd trace SWITCH PORT --src ... --dst ...`.
func cmdTrace(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("trace")
	sock := fs.String("s", "", "control socket path")
	var spec daemon.TraceSpec
	fs.StringVar(&spec.Src, "src", "", "source IPv4 address")
	fs.StringVar(&spec.Dst, "dst", "", "destination IPv4 address")
	fs.StringVar(&spec.SrcMAC, "src-mac", "", "source MAC (default: the port's own)")
	fs.StringVar(&spec.DstMAC, "dst-mac", "", "destination MAC (default: the next hop the sending namespace resolves)")
	fs.StringVar(&spec.Proto, "proto", "icmp", "icmp (echo request), tcp or udp")
	fs.IntVar(&spec.DPort, "dport", 0, "tcp/udp destination port")
	fs.IntVar(&spec.TTL, "ttl", 64, "IP TTL")
	fs.IntVar(&spec.Size, "size", 84, "IP packet length (for MTU decisions)")
	fs.BoolVar(&spec.DF, "df", false, "set don't-fragment")
	asJSON := fs.Bool("json", false, "JSON output")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || spec.Src == "" || spec.Dst == "" {
		return usageError{"trace needs SWITCH PORT --src ADDR --dst ADDR"}
	}
	spec.Switch, spec.Port = pos[0], pos[1]
	cl := dialControl(*sock)
	defer cl.Close()
	t, err := cl.Trace(ctx, spec)
	if err != nil {
		return badRequestIsUsage(err)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(t)
	}
	for _, s := range t.Steps {
		fmt.Fprintf(stdout, "%-22s %s\n", s.Where, s.What)
	}
	if len(t.Final) == 0 {
		fmt.Fprintln(stdout, "final: no port (dropped or ends at a router)")
	} else {
		fmt.Fprintf(stdout, "final: %v\n", t.Final)
	}
	return nil
}
