package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/vnetd/vnetd/daemon"
)

func init() {
	register(command{"check", "[--json]", "run every [[expect]] reachability check in parallel: a matrix; exit 1 when any fails",
		func(ctx context.Context, args []string, stdout, _ io.Writer) error {
			return cmdCheck(ctx, args, stdout)
		}})
}

// errChecksFailed makes `vnetd check` exit 1 after printing its matrix.
var errChecksFailed = errors.New("reachability checks failed")

// cmdCheck runs `vnetd check [--json]`: every [[expect]] of the running lab, in
// parallel, printed as a matrix of namespaces (rows) by targets (columns) and then
// one line per failure. It exits 1 when any check fails.
func cmdCheck(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("check")
	sock := fs.String("s", "", "control socket path")
	asJSON := fs.Bool("json", false, "JSON output")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError{"check takes no arguments"}
	}
	cl := dialControl(*sock)
	defer cl.Close()
	rs, err := cl.Check(ctx)
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range rs {
		if !r.Pass {
			failed++
		}
	}
	if *asJSON {
		if err := json.NewEncoder(stdout).Encode(rs); err != nil {
			return err
		}
	} else {
		printChecks(stdout, rs, failed)
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d", errChecksFailed, failed, len(rs))
	}
	return nil
}

// printChecks prints rs as a matrix: a cell is "ok" or "FAIL", with "reach" or
// "no reach" saying what was expected.
func printChecks(w io.Writer, rs []daemon.CheckResult, failed int) {
	if len(rs) == 0 {
		fmt.Fprintln(w, "no [[expect]] checks configured")
		return
	}
	var froms, tos []string
	cells := map[[2]string]string{}
	seen := map[string]bool{}
	for _, r := range rs {
		if !seen["f"+r.From] {
			seen["f"+r.From] = true
			froms = append(froms, r.From)
		}
		if !seen["t"+r.To] {
			seen["t"+r.To] = true
			tos = append(tos, r.To)
		}
		want := "reach"
		if !r.Want {
			want = "no reach"
		}
		verdict := "ok"
		if !r.Pass {
			verdict = "FAIL"
		}
		cells[[2]string{r.From, r.To}] = verdict + " (" + want + ")"
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "FROM \\ TO\t%s\n", strings.Join(tos, "\t"))
	for _, f := range froms {
		row := make([]string, len(tos))
		for i, t := range tos {
			if row[i] = cells[[2]string{f, t}]; row[i] == "" {
				row[i] = "-"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\n", f, strings.Join(row, "\t"))
	}
	tw.Flush()
	for _, r := range rs {
		if !r.Pass {
			fmt.Fprintf(w, "FAIL %s -> %s: want reached=%v, got %s after %.1f ms\n", r.From, r.To, r.Want, r.Detail, r.Ms)
		}
	}
	fmt.Fprintf(w, "%d of %d checks passed\n", len(rs)-failed, len(rs))
}
