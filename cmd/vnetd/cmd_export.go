package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/vnetd/vnetd/control"
)

func init() {
	register(command{"export", "NS [-s SOCKET]",
		"write a namespace's config and state (DHCP leases, neighbours, snooping learnings) as JSON to stdout", cmdExport})
	register(command{"import", "FILE [--as NAME] [--json]",
		"recreate an exported namespace in the running lab, its leases intact (a runtime namespace: see docs/daemon.md)", cmdImport})
}

func cmdExport(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("export")
	sock := fs.String("s", "", "control socket path")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"export needs NS"}
	}
	cl := control.NewClient(socketPath(*sock))
	defer cl.Close()
	b, err := cl.Export(ctx, pos[0])
	if err != nil {
		return fmt.Errorf("export %s: %w", pos[0], err)
	}
	_, err = stdout.Write(b)
	return err
}

// cmdImport exits 2 for a document the daemon refuses as invalid (the config
// checks, at JSON paths) and 1 for a name that is running (409) or another failure.
func cmdImport(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("import")
	sock := fs.String("s", "", "control socket path")
	as := fs.String("as", "", "import under this name instead of the exported one")
	asJSON := fs.Bool("json", false, "JSON output")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"import needs FILE (- for stdin)"}
	}
	var doc []byte
	if pos[0] == "-" {
		doc, err = io.ReadAll(io.LimitReader(os.Stdin, 8<<20))
	} else {
		doc, err = os.ReadFile(pos[0])
	}
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	cl := control.NewClient(socketPath(*sock))
	defer cl.Close()
	res, err := cl.Import(ctx, doc, pos[0], *as)
	if err != nil {
		return forwardErr("import", err)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "imported %s: %d leases, %d neighbours, %d snooped leases\n", res.Namespace, res.Leases, res.Neighbors, res.Learned)
	for _, s := range res.Skipped {
		fmt.Fprintf(stdout, "  not restored: %s\n", s)
	}
	return nil
}
