package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vnetd/vnetd/control"
	"github.com/vnetd/vnetd/daemon"
)

func init() {
	register(command{"router", "NAME [addr|route|neigh] [--json]",
		"a router's interfaces (addresses, MAC, MTU, VLAN, state, counters), routing table or neighbour cache", cmdRouter})
}

// cmdRouter shows a router as `ip addr`, `ip route` and `ip neigh` would; with no view
// it shows all three.
func cmdRouter(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("router")
	sock := fs.String("s", "", "control socket path")
	asJSON := fs.Bool("json", false, "JSON output")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usageError{"router needs NAME and optionally one of addr, route, neigh"}
	}
	view := ""
	if len(pos) == 2 {
		view = pos[1]
		switch view {
		case "addr", "route", "neigh":
		default:
			return usageError{fmt.Sprintf("router: unknown view %q (want addr, route or neigh)", view)}
		}
	}
	cl := control.NewClient(socketPath(*sock))
	defer cl.Close()
	p := "/v1/router/" + url.PathEscape(pos[0])
	if view != "" {
		p += "/" + view
	}
	if *asJSON {
		b, err := cl.Raw(ctx, p)
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	}
	var rs daemon.RouterStatus
	if err := cl.Get(ctx, "/v1/router/"+url.PathEscape(pos[0]), &rs); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	if view == "" || view == "addr" {
		for _, i := range rs.Interfaces {
			printRouterLeg(tw, i)
		}
	}
	if view == "" || view == "route" {
		if view == "" {
			fmt.Fprintln(tw)
		}
		fmt.Fprintln(tw, "TO\tVIA\tIFACE\tCONNECTED")
		for _, r := range rs.Routes {
			via := "-"
			if r.Via.IsValid() {
				via = r.Via.String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", r.To, via, r.Iface, r.Connected)
		}
	}
	if view == "" || view == "neigh" {
		if view == "" {
			fmt.Fprintln(tw)
		}
		fmt.Fprintln(tw, "ADDR\tMAC\tIFACE\tSTATE\tAGE")
		for _, n := range rs.Neighbors {
			state := "REACHABLE"
			if !n.Complete {
				state = fmt.Sprintf("INCOMPLETE (%d waiting)", n.Pending)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Addr, n.MAC, n.Iface, state, time.Since(n.Updated).Round(time.Second))
		}
	}
	return nil
}

// printRouterLeg is one router interface: its addresses and counters, then its drops
// by reason when there are any.
func printRouterLeg(w io.Writer, i daemon.RouterInterface) {
	state := "down"
	if i.Up {
		state = "up"
	}
	addrs := make([]string, len(i.Addresses))
	for k, a := range i.Addresses {
		addrs[k] = a.String()
	}
	where := "vlan " + vlanString(i.VLAN) + "\ton " + i.Switch
	if i.Peer != "" {
		where = "l3 leg to " + i.Peer // no VLAN: a point-to-point link
	}
	fmt.Fprintf(w, "  iface %s\t%s\t%s\tmtu %d\t%s\t%s\n", i.Name, state, i.MAC, i.MTU, where, strings.Join(addrs, " "))
	fmt.Fprintf(w, "    rx %d\ttx %d\tforwarded %d\ticmp errors %d\tdrops %s\n", i.Counters.RxFrames, i.Counters.TxFrames, i.Forwarded, i.ICMPErrors, dropList(i.Dropped))
}

// dropList is "0", or "3 (no_route 2, ttl 1)" sorted by reason.
func dropList(m map[string]uint64) string {
	var total uint64
	var parts []string
	for reason, n := range m {
		total += n
		parts = append(parts, fmt.Sprintf("%s %d", reason, n))
	}
	if total == 0 {
		return "0"
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}
