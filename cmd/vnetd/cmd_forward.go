package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/control"
	"github.com/vnetd/vnetd/daemon"
)

// cmdForward runs `vnetd forward add|del|list`. A request the daemon refuses as
// invalid (the config's own forward checks) exits 2; one it cannot carry out (the
// port in use, no such forward) exits 1.
func cmdForward(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("forward")
	sock := fs.String("s", "", "control socket path")
	proto := fs.String("p", "tcp", "protocol: tcp or udp")
	maxConns := fs.Int("max-conns", 0, "tcp: connections relayed at once (default 1024)")
	maxFlows := fs.Int("max-flows", 0, "udp: client flows at once (default 1024)")
	udpIdle := fs.String("udp-idle", "", "udp: close a flow idle this long (default 60s)")
	asJSON := fs.Bool("json", false, "JSON output")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageError{"forward needs add, del or list"}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cl := control.NewClient(socketPath(*sock))
	defer cl.Close()
	switch verb, pos := pos[0], pos[1:]; verb {
	case "add":
		if len(pos) != 3 {
			return usageError{"forward add needs LISTEN NAMESPACE TARGET"}
		}
		spec := config.ForwardSpec{Listen: pos[0], Namespace: pos[1], Target: pos[2], Protocol: *proto, UDPIdle: *udpIdle}
		if set["max-conns"] {
			spec.MaxConns = maxConns
		}
		if set["max-flows"] {
			spec.MaxFlows = maxFlows
		}
		st, err := cl.AddForward(ctx, spec)
		if err != nil {
			return forwardErr("forward add", err)
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(st)
		}
		fmt.Fprintf(stdout, "added %s -> %s in %s (limit %d)\n", st.Name, st.Target, st.Namespace, st.Stats.Limit)
		return nil
	case "del":
		if len(pos) != 1 {
			return usageError{"forward del needs LISTEN (or PROTO/LISTEN)"}
		}
		name := pos[0]
		if !strings.Contains(name, "/") {
			name = *proto + "/" + name
		}
		if err := cl.RemoveForward(ctx, name); err != nil {
			return forwardErr("forward del", err)
		}
		fmt.Fprintf(stdout, "removed %s\n", name)
		return nil
	case "list":
		if len(pos) != 0 {
			return usageError{"forward list takes no arguments"}
		}
		if *asJSON {
			b, err := cl.Raw(ctx, "/v1/forwards")
			if err != nil {
				return err
			}
			_, err = stdout.Write(b)
			return err
		}
		var list []daemon.ForwardStatus
		if err := cl.Get(ctx, "/v1/forwards", &list); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tORIGIN\tNAMESPACE\tTARGET\tACCEPTED\tACTIVE/LIMIT\tREFUSED\tIN\tOUT\tDIAL ERRORS")
		for _, f := range list {
			s := f.Stats
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d/%d\t%d\t%dB\t%dB\t%d\n", f.Name, f.Origin, f.Namespace, f.Target, s.Accepted, s.Active, s.Limit, s.Refused, s.BytesIn, s.BytesOut, s.DialErrors)
		}
		return tw.Flush()
	default:
		return usageError{fmt.Sprintf("forward: unknown verb %q (want add, del or list)", verb)}
	}
}

// forwardErr makes the daemon's 400 (the request failed the forward checks) a usage
// error, exit 2; anything else stays a runtime failure, exit 1.
func forwardErr(what string, err error) error {
	var ae *control.APIError
	if errors.As(err, &ae) && ae.Status == 400 {
		return usageError{what + ": " + ae.Msg}
	}
	return fmt.Errorf("%s: %w", what, err)
}
