package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/vnetd/vnetd/daemon"
)

func init() {
	register(command{"link", "[NS NIC | SWITCH PORT] [up|down] [--json]",
		"set a namespace NIC or switch port up or down (a down link drops both ways, counted); no arguments: every port's link state and port security",
		func(ctx context.Context, args []string, stdout, _ io.Writer) error {
			return cmdLink(ctx, args, stdout)
		}})
}

// cmdLink runs `vnetd link` (list) or `vnetd link A B up|down`: A is a namespace when
// one of that name runs (B its NIC), else a switch (B its port).
func cmdLink(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("link")
	sock := fs.String("s", "", "control socket path")
	asJSON := fs.Bool("json", false, "JSON output")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	cl := dialControl(*sock)
	defer cl.Close()
	switch len(pos) {
	case 0:
		links, err := cl.Links(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(links)
		}
		tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "TARGET\tSTATE\tSECURITY\tDROPS")
		for _, l := range links {
			printLink(tw, l)
		}
		return tw.Flush()
	case 3:
	default:
		return usageError{"link takes no arguments (list), or NS NIC|SWITCH PORT and up|down"}
	}
	if pos[2] != "up" && pos[2] != "down" {
		return usageError{fmt.Sprintf("link state %q: want up or down", pos[2])}
	}
	var st daemon.Status
	if err := cl.Get(ctx, "/v1/status", &st); err != nil {
		return err
	}
	spec := daemon.LinkSpec{Switch: pos[0], Port: pos[1], State: pos[2]}
	for _, n := range st.Namespaces {
		if n.Name == pos[0] {
			spec = daemon.LinkSpec{Namespace: pos[0], NIC: pos[1], State: pos[2]}
		}
	}
	ls, err := cl.SetLink(ctx, spec)
	if err != nil {
		return badRequestIsUsage(err)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(ls)
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	printLink(tw, ls)
	return tw.Flush()
}

func printLink(w io.Writer, l daemon.LinkStatus) {
	state := "up"
	if !l.Status.Up {
		state = "down"
	}
	if l.Status.PeerUp != nil && !*l.Status.PeerUp {
		state += " (peer down)"
	}
	var drops []string
	for reason, n := range l.Status.Drops {
		drops = append(drops, fmt.Sprintf("%s %d", reason, n))
	}
	sort.Strings(drops)
	if l.Status.PeerUp != nil {
		drops = append(drops, fmt.Sprintf("tx_dropped %d", l.Status.TxDropped))
	}
	sec := l.Security
	for _, le := range l.Status.Learned {
		sec += " leased " + le.Addr.String()
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", l.Target, state, sec, strings.Join(drops, ", "))
}
