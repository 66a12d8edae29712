package main

import (
	"context"
	"fmt"
	"io"

	"github.com/vnetd/vnetd/control"
)

func init() {
	register(command{"reload", "", "make the running daemon re-read its config file (as SIGHUP does)", cmdReload})
}

// cmdReload asks the running daemon to re-read its config file and apply the
// differences, as SIGHUP does, and reports the outcome: a rejected config prints its
// FILE:LINE:COL errors and exits 1, the previous config still running.
func cmdReload(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("reload")
	sock := fs.String("s", "", "control socket path")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError{"reload takes no arguments"}
	}
	cl := control.NewClient(socketPath(*sock))
	defer cl.Close()
	if err := cl.Call(ctx, "POST", "/v1/reload", nil, nil); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	fmt.Fprintln(stdout, "reloaded")
	return nil
}

// socketPath is the -s flag's value, or the default control socket.
func socketPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	return control.DefaultPath()
}
