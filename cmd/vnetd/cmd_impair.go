package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/control"
	"github.com/vnetd/vnetd/daemon"
)

// cmdImpair runs `vnetd impair SWITCH PORT [--delay D ...] | --clear`, or with
// --ns NS --nic NIC for a pass-through pair end. The parameters given replace those
// of the directions named (--dir, default both). A request the daemon refuses as
// invalid exits 2, an unknown port 1.
func cmdImpair(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("impair")
	sock := fs.String("s", "", "control socket path")
	var spec config.ImpairSpec
	fs.StringVar(&spec.Namespace, "ns", "", "namespace of a pass-through pair end (with --nic) instead of SWITCH PORT")
	fs.StringVar(&spec.NIC, "nic", "", "NIC of the pair end")
	fs.StringVar(&spec.Direction, "dir", "both", "direction seen from the port: in, out or both")
	fs.StringVar(&spec.Delay, "delay", "", "added delay, e.g. 20ms")
	fs.StringVar(&spec.Jitter, "jitter", "", "delay jitter, e.g. 2ms")
	fs.StringVar(&spec.Distribution, "distribution", "", "jitter distribution: uniform or normal")
	fs.Float64Var(&spec.Correlation, "correlation", 0, "jitter correlation, percent")
	fs.Float64Var(&spec.Loss, "loss", 0, "random loss, percent")
	ge := fs.String("loss-ge", "", "Gilbert-Elliott loss P,R[,BAD[,GOOD]] in percent")
	fs.StringVar(&spec.Rate, "rate", "", "rate limit, e.g. 10mbit")
	fs.IntVar(&spec.Limit, "limit", 0, "frames waiting at most (default 1000)")
	fs.Float64Var(&spec.Reorder, "reorder", 0, "frames sent at once, skipping the delay, percent")
	fs.Float64Var(&spec.Duplicate, "duplicate", 0, "duplicated frames, percent")
	fs.Float64Var(&spec.Corrupt, "corrupt", 0, "frames with one bit flipped, percent")
	fs.Int64Var(&spec.Seed, "seed", 0, "random seed (0: from the clock)")
	clear := fs.Bool("clear", false, "remove the impairment")
	asJSON := fs.Bool("json", false, "JSON output")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case spec.Namespace != "" || spec.NIC != "":
		if len(pos) != 0 {
			return usageError{"impair takes SWITCH PORT or --ns NS --nic NIC, not both"}
		}
	case len(pos) == 2:
		spec.Switch, spec.Port = pos[0], pos[1]
	default:
		return usageError{"impair needs SWITCH PORT (or --ns NS --nic NIC)"}
	}
	set := 0
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "s", "ns", "nic", "dir", "json", "clear":
		default:
			set++
		}
	})
	if *clear == (set > 0) {
		return usageError{"impair needs parameters (--delay, --loss, --rate ...) or --clear, not both"}
	}
	if *ge != "" {
		g, err := parseGE(*ge)
		if err != nil {
			return usageError{err.Error()}
		}
		spec.GilbertElliott = g
	}
	cl := dialControl(*sock)
	defer cl.Close()
	st, err := cl.SetImpair(ctx, spec)
	if err != nil {
		return badRequestIsUsage(err)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(st)
	}
	printImpair(stdout, st)
	return nil
}

func printImpair(w io.Writer, st daemon.ImpairStatus) {
	fmt.Fprintf(w, "%s\tin: %s\tout: %s\n", st.Target, orNone(st.In), orNone(st.Out))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// parseGE parses P,R[,BAD[,GOOD]].
func parseGE(s string) (*config.GESpec, error) {
	parts := strings.Split(s, ",")
	if len(parts) < 2 || len(parts) > 4 {
		return nil, fmt.Errorf("--loss-ge %q: want P,R[,BAD[,GOOD]] in percent", s)
	}
	v := make([]float64, len(parts))
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return nil, fmt.Errorf("--loss-ge %q: %q is not a number", s, p)
		}
		v[i] = f
	}
	g := &config.GESpec{P: v[0], R: v[1]}
	if len(v) > 2 {
		g.Bad = &v[2]
	}
	if len(v) > 3 {
		g.Good = v[3]
	}
	return g, nil
}

// dialControl returns a client for the socket at path, or the default one.
func dialControl(path string) *control.Client {
	if path == "" {
		path = control.DefaultPath()
	}
	return control.NewClient(path)
}

// badRequestIsUsage turns the daemon's 400 (a request failing its checks) into a
// usage error (exit 2); other errors stay runtime failures (exit 1).
func badRequestIsUsage(err error) error {
	var ae *control.APIError
	if errors.As(err, &ae) && ae.Status == 400 {
		return usageError{ae.Msg}
	}
	return err
}
