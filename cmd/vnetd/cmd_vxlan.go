package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/vnetd/vnetd/control"
)

func init() {
	register(command{"vxlan", "SWITCH [--json]",
		"a switch's VXLAN tunnels: local address, VNI, remotes with counters, learned MACs", cmdVXLAN})
}

// cmdVXLAN lists a switch's tunnels as `bridge fdb show dev vx0` and `ip -s link` would.
func cmdVXLAN(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("vxlan")
	sock := fs.String("s", "", "control socket path")
	asJSON := fs.Bool("json", false, "JSON output")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"vxlan needs SWITCH"}
	}
	cl := control.NewClient(socketPath(*sock))
	defer cl.Close()
	vs, err := cl.VXLAN(ctx, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(vs)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	if len(vs) == 0 {
		fmt.Fprintf(tw, "no vxlan tunnels on %s\n", pos[0])
	}
	for _, v := range vs {
		s := v.Stats
		fmt.Fprintf(tw, "vxlan %s\tport %s\tlocal %s\tvni %d\tdstport %d\tmtu %d (underlay %d)\tsource ports %v\n",
			v.Name, v.Port, v.Local, v.VNI, v.DstPort, v.MTU, v.UnderlayMTU, v.SourcePorts)
		fmt.Fprintf(tw, "  rx %d\ttx %d\tflooded %d\tmacs %d/%d\tlearned %d moved %d aged %d limited %d\n",
			s.Counters.RxFrames, s.Counters.TxFrames, s.TxFlooded, s.MACs, s.MaxMACs, s.Learned, s.Moved, s.Aged, s.LearnLimited)
		fmt.Fprintf(tw, "  drops rx %d (malformed %d, bad_vni %d, oversize %d, unknown_remote %d)\ttx %d (oversize %d, no_remote %d, errors %d, queue_full %d)\n",
			s.Counters.RxDropped, s.RxMalformed, s.RxBadVNI, s.RxOversize, s.RxUnknownRemote,
			s.Counters.TxDropped, s.TxOversize, s.TxNoRemote, s.TxErrors, s.TxQueueFull)
		fmt.Fprintln(tw, "  REMOTE\tKIND\tRX\tRX BYTES\tTX\tTX BYTES\tTX ERRORS")
		for _, r := range v.Remotes {
			kind := "learned"
			if r.Static {
				kind = "static"
			}
			c := r.Counters
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\t%d\n", r.Addr, kind, c.RxFrames, c.RxBytes, c.TxFrames, c.TxBytes, c.TxDropped)
		}
		fmt.Fprintln(tw, "  MAC\tREMOTE\tAGE")
		for _, m := range v.MACs {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", m.MAC, m.Remote, m.Age.Round(time.Second))
		}
	}
	return nil
}
