package main

import (
	"context"
	"fmt"
	"io"

	"github.com/vnetd/vnetd/control"
	"github.com/vnetd/vnetd/daemon"
)

func init() {
	register(command{"graph", "[--format dot|mermaid]", "print the lab's topology as Graphviz DOT (default) or a Mermaid flowchart", cmdGraph})
}

// cmdGraph prints the running lab's topology: `vnetd graph | dot -Tsvg > lab.svg`.
func cmdGraph(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("graph")
	sock := fs.String("s", "", "control socket path")
	format := fs.String("format", "dot", "dot or mermaid")
	aggregate := fs.Int("aggregate", control.DefaultAggregate, "fold namespaces into one node per switch above this many (0: never)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError{"graph takes no arguments"}
	}
	if *format != "dot" && *format != "mermaid" {
		return usageError{fmt.Sprintf("graph: unknown format %q (dot or mermaid)", *format)}
	}
	if *aggregate < 0 {
		return usageError{"graph --aggregate must not be negative"}
	}
	cl := control.NewClient(socketPath(*sock))
	defer cl.Close()
	var t daemon.Topology
	if err := cl.Get(ctx, fmt.Sprintf("/v1/topology?aggregate=%d", *aggregate), &t); err != nil {
		return err
	}
	if *format == "mermaid" {
		_, err = io.WriteString(stdout, t.Mermaid())
	} else {
		_, err = io.WriteString(stdout, t.DOT())
	}
	return err
}
