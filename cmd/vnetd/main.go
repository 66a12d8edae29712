// Command vnetd runs the userspace virtual network lab and talks to a running one.
// See /work/shared/spec/cli.md (docs/daemon.md) for the commands.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/vnetd/vnetd"
	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/control"
	"github.com/vnetd/vnetd/daemon"
	l2switch "github.com/vnetd/vnetd/switch"
)

// Exit codes per the CLI contract.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

var version = "dev"

func main() {
	os.Exit(Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// command is one `vnetd CMD`. Its run function parses its own flags with newFlags and
// parse, so `vnetd CMD -h` can print them (see helpError).
type command struct {
	name    string
	args    string // the synopsis after the name, e.g. "SWITCH [--json]"
	summary string // one line for `vnetd help`
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is every vnetd command in the order `vnetd help` lists them. A new command
// is one entry here (see register) and a cmd_TOPIC.go file holding its run function.
var commands []command

// register adds commands to the table; cmd_TOPIC.go files call it from init. Commands
// registered this way are listed after the built-in ones, before version and help,
// in the order of their files' names.
func register(cs ...command) { extra = append(extra, cs...) }

var extra []command

func init() {
	client := func(name string) func(context.Context, []string, io.Writer, io.Writer) error {
		return func(ctx context.Context, args []string, stdout, _ io.Writer) error {
			return cmdClient(ctx, name, args, stdout)
		}
	}
	commands = []command{
		{"run", "[-c FILE] [-s SOCKET]", "run the daemon in the foreground (no -c: the embedded default lab); Ctrl-C stops it", cmdRun},
		{"validate", "FILE", "check a config without touching the host; errors as FILE:LINE:COL: message",
			func(_ context.Context, args []string, stdout, _ io.Writer) error { return cmdValidate(args, stdout) }},
		{"status", "[--json]", "switches, ports, namespaces, routers, forwards and their counters", client("status")},
		{"fdb", "SWITCH [--json]", "a switch's learned MACs: VLAN, MAC, port, age", client("fdb")},
		{"ns", "NAME addr|route|neigh|sockets|leases [--json]", "a namespace's addresses, routes, neighbours, sockets or DHCP leases", client("ns")},
		{"ping", "NS ADDR [-c N] [--json]", "ping from inside a namespace, printing replies and ICMP errors like ping(8)", client("ping")},
		{"capture", "SWITCH [FILTER] [--port P] [-c N] [-w FILE] [--format pcapng|pcap] [--ring SECONDS]",
			"live pcapng (or pcap) of a switch or one port, pcap-filter FILTER ('tcp port 80'); --ring: the last SECONDS from the capture rings (stdout: pipe it into tcpdump -nr -)",
			func(ctx context.Context, args []string, stdout, _ io.Writer) error {
				return cmdCapture(ctx, args, stdout)
			}},
		{"forward", "add LISTEN NAMESPACE TARGET [-p tcp|udp] [--max-conns N] [--max-flows N] [--udp-idle D] | del LISTEN [-p tcp|udp] | list [--json]",
			"add, remove or list host port forwards at run time, without a reload", cmdForward},
		{"impair", "SWITCH PORT [--dir in|out|both] [--delay D] [--jitter D] [--loss PCT] [--rate R] ... | --clear  (or --ns NS --nic NIC for a pair end)",
			"impair a port's link (delay, jitter, loss, rate, reorder, duplicate, corrupt), live",
			func(ctx context.Context, args []string, stdout, _ io.Writer) error {
				return cmdImpair(ctx, args, stdout)
			}},
	}
}

// allCommands is the built-in commands, the registered ones, then the meta commands.
func allCommands() []command {
	meta := []command{
		{"version", "[--json]", "version, Go and gVisor versions",
			func(_ context.Context, args []string, stdout, _ io.Writer) error { return cmdVersion(args, stdout) }},
		{"help", "[CMD]", "this list, or one command's synopsis and flags",
			func(_ context.Context, args []string, stdout, _ io.Writer) error { return cmdHelp(args, stdout) }},
	}
	out := append(append([]command(nil), commands...), extra...)
	return append(out, meta...)
}

func lookup(name string) (command, bool) {
	for _, c := range allCommands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// Main runs one command and returns the exit code; tests call it directly.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// Global options may come before the command: vnetd -s PATH status.
	var global []string
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-h", "-help", "--help":
			cmdHelp(nil, stdout)
			return exitOK
		case "-s", "--s", "-c", "--c":
			if len(args) > 1 {
				global, args = append(global, args[0], args[1]), args[2:]
				continue
			}
		}
		global, args = append(global, args[0]), args[1:]
	}
	name := "run"
	if len(args) > 0 {
		name, args = args[0], args[1:]
	}
	args = append(global, args...)
	cmd, ok := lookup(name)
	var err error
	if ok {
		err = cmd.run(ctx, args, stdout, stderr)
	} else {
		err = usageError{fmt.Sprintf("unknown command %q (vnetd help lists them)", name)}
	}
	var ue usageError
	var ce config.Errors
	var he helpError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &he):
		printCommandHelp(stdout, cmd, he.fs)
		return exitOK
	case errors.As(err, &ce):
		fmt.Fprintln(stderr, ce.Error())
		return exitUsage
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "vnetd: %v\n", err)
		if ok {
			fmt.Fprintf(stderr, "usage: vnetd %s %s  (vnetd %s -h for help)\n", cmd.name, cmd.args, cmd.name)
		}
		return exitUsage
	default:
		fmt.Fprintf(stderr, "vnetd: %v\n", err)
		return exitFail
	}
}

// cmdHelp prints every command, or one command's synopsis and flags.
func cmdHelp(args []string, stdout io.Writer) error {
	args, err := parse(newFlags("help"), args)
	if err != nil {
		return err
	}
	if len(args) > 1 {
		return usageError{"help takes at most one command"}
	}
	if len(args) == 1 {
		cmd, ok := lookup(args[0])
		if !ok {
			return usageError{fmt.Sprintf("help: unknown command %q", args[0])}
		}
		// Running the command with -h makes parse hand back its own flag set.
		err := cmd.run(context.Background(), []string{"-h"}, stdout, io.Discard)
		var he helpError
		if errors.As(err, &he) {
			printCommandHelp(stdout, cmd, he.fs)
			return nil
		}
		return err
	}
	fmt.Fprintln(stdout, "vnetd: a userspace virtual network lab (switches, namespaces, routers, TAPs, VM sockets)")
	fmt.Fprintln(stdout, "\nusage: vnetd [-s SOCKET] COMMAND [ARGS]\n\ncommands:")
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	for _, c := range allCommands() {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.args, c.summary)
	}
	tw.Flush()
	fmt.Fprintln(stdout, "\n-s PATH picks the control socket for every command; vnetd CMD -h describes one command.")
	return nil
}

func printCommandHelp(w io.Writer, cmd command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: vnetd %s %s\n\n%s\n", cmd.name, cmd.args, cmd.summary)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintln(w, "\nflags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// helpError is what parse returns for -h or --help: Main prints the command's flags
// and exits 0.
type helpError struct{ fs *flag.FlagSet }

func (helpError) Error() string { return "help requested" }

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parse accepts flags anywhere among the positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, helpError{fs}
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func loadConfig(path string) (*config.Config, string, error) {
	if path == "" {
		c, err := config.Parse("config.toml.example (embedded)", vnetd.DefaultConfig)
		return c, "embedded default lab", err
	}
	c, err := config.Load(path)
	return c, path, err
}

func cmdValidate(args []string, stdout io.Writer) error {
	pos, err := parse(newFlags("validate"), args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"validate needs exactly one FILE"}
	}
	c, err := config.Load(pos[0])
	if err != nil {
		// config.Errors exit 2; a file that cannot be read is a runtime failure (1),
		// as it is for run -c.
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%s)\n", pos[0], configCounts(c))
	return nil
}

func versionInfo() control.Version {
	v := control.Version{Version: version, Go: runtime.Version(), GVisor: "unknown"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == "gvisor.dev/gvisor" {
				v.GVisor = d.Version
			}
		}
	}
	return v
}

func cmdVersion(args []string, stdout io.Writer) error {
	fs := newFlags("version")
	asJSON := fs.Bool("json", false, "JSON output")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	v := versionInfo()
	if *asJSON {
		return json.NewEncoder(stdout).Encode(v)
	}
	fmt.Fprintf(stdout, "vnetd %s\ngo %s\ngvisor %s\n", v.Version, v.Go, v.GVisor)
	return nil
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run")
	cfgPath := fs.String("c", "", "config file (default: the embedded lab)")
	sock := fs.String("s", "", "control socket path (overrides the config)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("run takes no arguments, got %q", pos)}
	}
	cfg, src, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	stopWithGoRun()
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Daemon.LogLevel))
	lv := new(slog.LevelVar)
	lv.Set(level)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))

	d := daemon.New(daemon.Options{Logger: log})
	defer d.Close()
	path := *sock
	if path == "" {
		path = cfg.Daemon.Control
	}
	if path == "" {
		path = control.DefaultPath()
	}
	reloadFile := func() error { return reload(d, *cfgPath, lv, log) }
	up := make(chan struct{})
	srv, err := control.Listen(control.ServerOptions{Path: path, Daemon: d, Version: versionInfo(), Logger: log, Reload: reloadFile, Ready: up})
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := d.Apply(cfg); err != nil {
		return fmt.Errorf("start %s: %w", src, err)
	}
	close(up) // the control API answers from now on
	if cfg.Daemon.Web != "" {
		ws, err := control.ServeWeb(cfg.Daemon.Web, d, log)
		if err != nil {
			return err
		}
		defer ws.Close()
		fmt.Fprintf(stdout, "topology page: http://%s/\n", ws.Addr())
	}
	if cfg.Daemon.Metrics != "" {
		m, err := control.ServeMetrics(cfg.Daemon.Metrics, d, log)
		if err != nil {
			return err
		}
		defer m.Close()
		fmt.Fprintf(stdout, "metrics: http://%s/metrics\n", m.Addr())
	}
	printSummary(stdout, cfg, src, path, selfCommand())
	if err := sdNotify("READY=1"); err != nil {
		log.Warn("sd_notify failed", "err", err)
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down", "reason", ctx.Err())
			return nil
		case s := <-sigs:
			if s != syscall.SIGHUP {
				log.Info("shutting down", "signal", s.String())
				sdNotify("STOPPING=1")
				return nil
			}
			sdNotify("RELOADING=1")
			if err := reloadFile(); err != nil {
				log.Error("reload rejected; the previous config keeps running", "err", err)
			}
			sdNotify("READY=1")
		}
	}
}

func reload(d *daemon.Daemon, path string, lv *slog.LevelVar, log *slog.Logger) error {
	cfg, src, err := loadConfig(path)
	if err != nil {
		return err
	}
	if err := d.Apply(cfg); err != nil {
		return err
	}
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Daemon.LogLevel))
	lv.Set(level)
	log.Info("reloaded", "config", src)
	return nil
}

// selfCommand is how the user runs this binary again: "vnetd", or "go run ./cmd/vnetd"
// when it was built by go run (into a go-build temporary directory), so the hints the
// banner prints work as they are.
func selfCommand() string {
	exe, err := os.Executable()
	if err == nil && strings.Contains(exe, string(os.PathSeparator)+"go-build") {
		return "go run ./cmd/vnetd"
	}
	return "vnetd"
}

func printSummary(w io.Writer, c *config.Config, src, sock, self string) {
	fmt.Fprintf(w, "vnetd is up (%s): %s\n", src, configCounts(c))
	for _, ns := range c.Namespaces {
		var addrs, svcs []string
		for _, n := range ns.NICs {
			for _, a := range n.Addresses {
				addrs = append(addrs, a.String())
			}
		}
		for _, s := range ns.Services {
			svcs = append(svcs, daemon.ServiceString(s))
		}
		fmt.Fprintf(w, "  namespace %-8s %s  %s\n", ns.Name, strings.Join(addrs, " "), strings.Join(svcs, " "))
	}
	for _, f := range c.Forwards {
		fmt.Fprintf(w, "  forward   %s %s -> %s in %s\n", f.Protocol, f.Listen, f.Target, f.Namespace)
	}
	fmt.Fprintf(w, "try:\n")
	for _, f := range c.Forwards {
		if f.Protocol == "tcp" && f.Target.Port() == 80 {
			fmt.Fprintf(w, "  curl http://%s/\n", f.Listen)
			break
		}
	}
	if n := len(c.Namespaces); n > 1 && len(c.Namespaces[n-1].NICs) > 0 && len(c.Namespaces[n-1].NICs[0].Addresses) > 0 {
		fmt.Fprintf(w, "  %s -s %s ping %s %s -c 3\n", self, sock, c.Namespaces[0].Name, c.Namespaces[n-1].NICs[0].Addresses[0].Addr())
	}
	if len(c.Switches) > 0 {
		fmt.Fprintf(w, "  %s -s %s fdb %s\n", self, sock, c.Switches[0].Name)
	}
	fmt.Fprintf(w, "  %s -s %s status\n", self, sock)
	fmt.Fprintf(w, "Ctrl-C stops vnetd.\n")
}

// sdNotify sends one datagram to $NOTIFY_SOCKET (systemd's readiness protocol); it
// does nothing when the variable is unset.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %q: %w", path, err)
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

func cmdClient(ctx context.Context, cmd string, args []string, stdout io.Writer) error {
	fs := newFlags(cmd)
	sock := fs.String("s", "", "control socket path")
	asJSON := fs.Bool("json", false, "JSON output")
	count := new(int)
	if cmd == "ping" {
		count = fs.Int("c", 4, "number of echo requests, one a second")
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	path := *sock
	if path == "" {
		path = control.DefaultPath()
	}
	cl := control.NewClient(path)
	defer cl.Close()
	var p string
	switch cmd {
	case "status":
		if len(pos) != 0 {
			return usageError{"status takes no arguments"}
		}
		p = "/v1/status"
	case "fdb":
		if len(pos) != 1 {
			return usageError{"fdb needs SWITCH"}
		}
		p = control.FDBPath(pos[0])
	case "ns":
		if len(pos) != 2 {
			return usageError{"ns needs NAME and one of addr, route, neigh, sockets, leases"}
		}
		switch pos[1] {
		case "addr", "route", "neigh", "sockets", "leases":
		default:
			return usageError{fmt.Sprintf("ns: unknown view %q (want addr, route, neigh, sockets or leases)", pos[1])}
		}
		p = control.NSPath(pos[0], pos[1])
	case "ping":
		if len(pos) != 2 {
			return usageError{"ping needs NS and ADDR"}
		}
		if *count < 1 {
			return usageError{"ping -c must be at least 1"}
		}
		return ping(ctx, cl, pos[0], pos[1], *count, *asJSON, stdout)
	}
	if *asJSON {
		b, err := cl.Raw(ctx, p)
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	switch cmd {
	case "status":
		var st daemon.Status
		if err := cl.Get(ctx, p, &st); err != nil {
			return err
		}
		printStatus(tw, st)
	case "fdb":
		var fdb []struct {
			VLAN uint16        `json:"vlan"`
			MAC  string        `json:"mac"`
			Port string        `json:"port"`
			Age  time.Duration `json:"age_ns"`
		}
		if err := cl.Get(ctx, p, &fdb); err != nil {
			return err
		}
		fmt.Fprintln(tw, "VLAN\tMAC\tPORT\tAGE")
		for _, e := range fdb {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", e.VLAN, e.MAC, e.Port, e.Age.Round(time.Second))
		}
	case "ns":
		var rows []map[string]any
		if err := cl.Get(ctx, p, &rows); err != nil {
			return err
		}
		printRows(tw, pos[1], rows)
	}
	return nil
}

func ping(ctx context.Context, cl *control.Client, ns, addr string, count int, asJSON bool, w io.Writer) error {
	sent, got, errs := 0, 0, 0
	var rtts []float64
	if !asJSON {
		fmt.Fprintf(w, "PING %s from namespace %s: 56 data bytes\n", addr, ns)
	}
	err := cl.Ping(ctx, ns, addr, count, func(p daemon.PingResult) {
		sent++
		if asJSON {
			json.NewEncoder(w).Encode(p)
		} else if p.ICMPError != "" {
			fmt.Fprintf(w, "From %s icmp_seq=%d %s\n", p.From, p.Seq, p.ICMPError)
		} else if p.Error != "" {
			fmt.Fprintf(w, "no reply from %s: icmp_seq=%d: %s\n", addr, p.Seq, p.Error)
		} else {
			fmt.Fprintf(w, "64 bytes from %s: icmp_seq=%d time=%.3f ms\n", addr, p.Seq, p.RTTms)
		}
		if p.ICMPError != "" {
			errs++
		}
		if p.Error == "" {
			got++
			rtts = append(rtts, p.RTTms)
		}
	})
	if err != nil {
		return err
	}
	if !asJSON {
		errText := ""
		if errs > 0 {
			errText = fmt.Sprintf(", +%d errors", errs)
		}
		fmt.Fprintf(w, "\n--- %s ping statistics ---\n%d packets transmitted, %d received%s, %.0f%% packet loss\n", addr, sent, got, errText, 100*float64(sent-got)/float64(max(sent, 1)))
		if len(rtts) > 0 {
			sort.Float64s(rtts)
			sum := 0.0
			for _, r := range rtts {
				sum += r
			}
			fmt.Fprintf(w, "rtt min/avg/max = %.3f/%.3f/%.3f ms\n", rtts[0], sum/float64(len(rtts)), rtts[len(rtts)-1])
		}
	}
	if got == 0 {
		return fmt.Errorf("ping %s from %s: no replies", addr, ns)
	}
	return nil
}

func printStatus(w io.Writer, st daemon.Status) {
	for _, s := range st.Switches {
		fmt.Fprintf(w, "switch %s\tfdb %d/%d\tports %d\n", s.Name, s.Stats.FDBSize, s.Stats.MaxMACs, len(s.Ports))
		for _, p := range s.Ports {
			state := "down"
			if p.Up {
				state = "up"
			}
			drops := dropsString(p.Drops)
			macs := strconv.FormatInt(p.MACs, 10)
			if p.MaxMACs > 0 {
				macs += "/" + strconv.FormatInt(p.MaxMACs, 10)
			}
			if p.MACLimited > 0 {
				macs += fmt.Sprintf(" (limited %d)", p.MACLimited)
			}
			fmt.Fprintf(w, "  port %s\t%s\tvlan %s\tmacs %s\trx %d\ttx %d\tdrops %s\n", p.Name, state, vlanString(p.VLAN), macs, p.Counters.RxFrames, p.Counters.TxFrames, drops)
			if len(p.Queues) > 0 {
				var rx, tx []string
				for _, q := range p.Queues {
					rx, tx = append(rx, strconv.FormatUint(q.RxFrames, 10)), append(tx, strconv.FormatUint(q.TxFrames, 10))
				}
				fmt.Fprintf(w, "    queues %d\trx %s\ttx %s\n", len(p.Queues), strings.Join(rx, "/"), strings.Join(tx, "/"))
			}
			if r := p.Ring; r != nil {
				fmt.Fprintf(w, "    capture ring %d/%d bytes, %d frames, %d overwritten\n", r.Bytes, r.CapBytes, r.Frames, r.Overwritten)
			}
		}
	}
	for _, n := range st.Namespaces {
		var addrs []string
		for _, i := range n.Interfaces {
			if i.Name == "lo" {
				continue
			}
			for _, a := range i.Addresses {
				if a.Addr() == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
					continue
				}
				addrs = append(addrs, i.Name+" "+a.String())
			}
		}
		fmt.Fprintf(w, "namespace %s\t%s\n", n.Name, strings.Join(addrs, ", "))
		for _, i := range n.Interfaces {
			if c := i.Counters; c != nil {
				fmt.Fprintf(w, "  nic %s\t%s\trx %d\ttx %d\tdrops %d\n", i.Name, i.Kind, c.RxFrames, c.TxFrames, c.RxDropped+c.TxDropped)
			}
		}
		if len(n.Services) > 0 {
			fmt.Fprintf(w, "  services\t%s\n", strings.Join(n.Services, ", "))
		}
		for _, e := range n.Echo {
			fmt.Fprintf(w, "  echo %s udp\tanswered %d\tdropped_reflector %d\trate_limited %d\tsources %d\n", e.Listen, e.Echoed, e.DroppedReflector, e.RateLimited, e.Sources)
		}
		for _, ds := range n.DNS {
			if f := ds.Forward; f != nil {
				fmt.Fprintf(w, "  dns %s forward\tto %s\tforwarded %d\terrors %d\tdropped %d\tin flight %d\n", ds.Listen, strings.Join(f.Upstreams, " "), f.Forwarded, f.Errors, f.Dropped, f.InFlight)
			}
		}
	}
	for _, so := range st.Sockets {
		fmt.Fprintf(w, "socket %s\ton %s\t%s\tdrops %s\n", so.Path, so.Switch, so.Protocol, dropsString(so.Drops))
	}
	for _, r := range st.Routers {
		fmt.Fprintf(w, "router %s\tinterfaces %d\n", r.Name, len(r.Interfaces))
		for _, i := range r.Interfaces {
			printRouterLeg(w, i)
		}
	}
	for _, g := range st.Gateways {
		s := g.Stats
		fmt.Fprintf(w, "gateway %s\ton %s\tflows %d active, %d tcp, %d udp, %d icmp\tto host %dB\tfrom host %dB\trefused %d\tdenied %d\tdropped at cap %d\ticmp unsupported %d\n",
			g.Name, g.Switch, s.FlowsActive, s.FlowsTCP, s.FlowsUDP, s.FlowsICMP, s.BytesToHost, s.BytesFromHost, s.Refused, s.Denied, s.DroppedAtCap, s.ICMPUnsupported)
	}
	for _, l := range st.Links {
		if !l.Status.Up || len(l.Status.Drops) > 0 || l.Status.TxDropped > 0 {
			fmt.Fprint(w, "link ")
			printLink(w, l)
		}
	}
	for _, so := range st.Sockets {
		s := so.Stats
		fmt.Fprintf(w, "socket %s	%s on %s	ports %d/%d	refused %d	stalled %d	malformed %d	peers expired %d	gone %d\n",
			so.Path, so.Protocol, so.Switch, s.Ports, s.Limit, s.Refused, s.Stalled, s.Malformed, s.Expired, s.Gone)
	}
	for _, im := range st.Impairments {
		fmt.Fprintf(w, "impair %s\tin: %s\tout: %s\tdelayed %d\tlost %d\toverlimit %d\tduplicated %d\tcorrupted %d\n", im.Target, orNone(im.In), orNone(im.Out),
			im.Status.InStats.Delayed+im.Status.OutStats.Delayed, im.Status.InStats.Lost+im.Status.OutStats.Lost,
			im.Status.InStats.Overlimit+im.Status.OutStats.Overlimit, im.Status.InStats.Duplicated+im.Status.OutStats.Duplicated,
			im.Status.InStats.Corrupted+im.Status.OutStats.Corrupted)
	}
	for _, f := range st.Forwards {
		fmt.Fprintf(w, "forward %s\t-> %s in %s\t%s\taccepted %d\tactive %d/%d\trefused %d\tin %dB\tout %dB\tdial errors %d\n", f.Name, f.Target, f.Namespace, f.Origin, f.Stats.Accepted, f.Stats.Active, f.Stats.Limit, f.Stats.Refused, f.Stats.BytesIn, f.Stats.BytesOut, f.Stats.DialErrors)
	}
	if len(st.API.Refused) > 0 { // the control API's caps hit: see docs/daemon.md, Limits
		fmt.Fprintf(w, "api\trefused %s\n", dropsString(st.API.Refused))
	}
}

// dropsString is a drop count with its reasons: "0", or "5 (queue_full 2, too_short 3)".
func dropsString(m map[string]uint64) string {
	var total uint64
	reasons := make([]string, 0, len(m))
	for r, n := range m {
		total += n
		reasons = append(reasons, r)
	}
	if total == 0 {
		return "0"
	}
	sort.Strings(reasons)
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%s %d", r, m[r])
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

// vlanString shows the switch's default VLAN, which carries untagged frames, as
// "untagged" rather than its internal number.
func vlanString(v uint16) string {
	if v == 0 || v == l2switch.DefaultVLAN {
		return "untagged"
	}
	return strconv.Itoa(int(v))
}

var viewColumns = map[string][]string{
	"addr":    {"name", "mac", "mtu", "addresses"},
	"route":   {"to", "via", "nic", "connected"},
	"neigh":   {"nic", "addr", "mac", "state"},
	"sockets": {"proto", "state", "local", "remote"},
	"leases":  {"nic", "mac", "address", "expires", "static"},
}

func printRows(w io.Writer, view string, rows []map[string]any) {
	cols := viewColumns[view]
	fmt.Fprintln(w, strings.ToUpper(strings.Join(cols, "\t")))
	for _, r := range rows {
		vals := make([]string, len(cols))
		for i, c := range cols {
			switch v := r[c].(type) {
			case nil:
				vals[i] = "-"
			case []any:
				s := make([]string, len(v))
				for j := range v {
					s[j] = fmt.Sprint(v[j])
				}
				vals[i] = strings.Join(s, " ")
			default:
				vals[i] = fmt.Sprint(v)
			}
		}
		fmt.Fprintln(w, strings.Join(vals, "\t"))
	}
}

// configCounts is "2 switches, 3 namespaces, 1 router, 2 forwards" for c.
func configCounts(c *config.Config) string {
	count := func(n int, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	return strings.Join([]string{count(len(c.Switches), "switch", "switches"), count(len(c.Namespaces), "namespace", "namespaces"),
		count(len(c.Routers), "router", "routers"), count(len(c.Forwards), "forward", "forwards")}, ", ")
}
