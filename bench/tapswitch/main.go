// Command tapswitch is bench/tap.sh's helper. Modes:
//
//   - default: one vnetd switch with two host TAPs (-a, -b). It creates the TAPs in its
//     own network namespace (run it with `ip netns exec`), prints "ready" once both are
//     attached, and exits (removing them) on SIGINT/SIGTERM.
//   - -ns: one host TAP (-a) and an in-process vnetd namespace (nsstack) on the same
//     switch, address -nsaddr, running a TCP sink (port 5001) and a TCP source (port
//     5002) for the client below. Prints "ready" and runs until SIGINT/SIGTERM. With
//     -hostif NAME the switch attaches the existing interface NAME (a veth end) through
//     package hostif instead of creating a TAP (bench/hostif.sh).
//   - -serve: the same sink and source on kernel sockets of the current network
//     namespace, for the veth + bridge baseline.
//   - -writecost n: WriteFrames' CPU per frame with and without io_uring batching
//     (two TAPs in the current network namespace), then exit.
//   - -client send|recv: connects to -host's sink or source from the current network
//     namespace, measures for -t at the receiving end with -P connections, and prints
//     the total in Gbit/s.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/gateway"
	"github.com/vnetd/vnetd/hostif"
	"github.com/vnetd/vnetd/nsstack"
	l2switch "github.com/vnetd/vnetd/switch"
	"github.com/vnetd/vnetd/tap"
	"github.com/vnetd/vnetd/vxlan"
)

func main() {
	a := flag.String("a", "tapA", "first TAP name")
	b := flag.String("b", "tapB", "second TAP name")
	mtu := flag.Int("mtu", 1500, "TAP (and namespace NIC) MTU")
	offload := flag.Bool("offload", true, "open the TAPs with virtio-net header offloads")
	batch := flag.Int("batch", 0, "frames per ReadFrames call (0: switch default)")
	swQueue := flag.Int("swqueue", 0, "every switch port's output queue, namespace NICs' too, in frames (0: the switch's defaults; 512 was the default for all)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	ns := flag.Bool("ns", false, "one TAP (-a) and a vnetd namespace running the TCP sink and source")
	nsAddr := flag.String("nsaddr", "10.77.0.2/24", "the namespace's address (-ns)")
	serveKernel := flag.Bool("serve", false, "run the TCP sink and source on kernel sockets")
	client := flag.String("client", "", "send or recv: measure against -host's sink or source")
	host := flag.String("host", "10.77.0.2", "server address (-client)")
	secs := flag.Float64("t", 5, "seconds to measure (-client)")
	streams := flag.Int("P", 1, "parallel connections (-client)")
	queues := flag.Int("queues", 1, "queues per TAP (IFF_MULTI_QUEUE when > 1); each queue is a switch port, or with -direct queue i of -a is joined to queue i of -b")
	group := flag.Bool("group", false, "with -queues > 1: each TAP's queues are one switch port (tap.Group, as vnetd's [[tap]] queues) instead of a port each")
	direct := flag.Bool("direct", false, "no switch: each TAP's reader writes straight into the other TAP (measures the switch's hand-off)")
	writev := flag.Bool("writev", false, "write each frame with its own writev instead of one io_uring submission per batch")
	wcost := flag.Int("writecost", 0, "measure WriteFrames' CPU per frame, io_uring vs writev, over this many rounds, and exit (creates two TAPs in the current netns)")
	stats := flag.Bool("stats", false, "print frames per ReadFrames/WriteFrames call of each TAP port at exit")
	hostIf := flag.String("hostif", "", "with -ns: attach this existing interface through hostif instead of creating a TAP")
	vxNoGRO := flag.Bool("vxlan-nogro", false, "with -vxlan: no UDP GRO on the tunnel's receiving socket")
	vxNoCoalesce := flag.Bool("vxlan-nocoalesce", false, "with -vxlan: no merging of received TCP segments into superframes at the tunnel")
	vx := flag.String("vxlan", "", "with -ns: LOCAL=REMOTE: a VXLAN tunnel (VNI 42, port 4789) from underlay address LOCAL to REMOTE instead of a TAP")
	gwAddr := flag.String("gateway", "", "one TAP (-a) and an egress gateway with this address (e.g. 10.0.2.1/24) relaying to host sockets; its alias -alias is the host loopback")
	gwAlias := flag.String("alias", "10.0.2.2", "the gateway's host loopback alias (-gateway)")
	flag.Parse()
	if *gwAddr != "" {
		*ns = true
	}
	if *client != "" {
		bps, err := runClient(*client, *host, time.Duration(*secs*float64(time.Second)), *streams)
		if err != nil {
			fail(err)
		}
		fmt.Printf("%.2f\n", bps/1e9)
		return
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if *wcost > 0 {
		writeCost(*wcost, log)
		return
	}
	if *serveKernel {
		sink, err := net.Listen("tcp", fmt.Sprintf(":%d", sinkPort))
		if err != nil {
			fail(err)
		}
		source, err := net.Listen("tcp", fmt.Sprintf(":%d", sourcePort))
		if err != nil {
			fail(err)
		}
		go serve(sink, source)
		fmt.Println("ready")
		waitSignal()
		return
	}
	if *direct {
		runDirect(tap.Options{Name: *a, Create: true, MTU: *mtu, Offload: *offload, Queues: *queues, WritevOnly: *writev, Logger: log}, *b, *batch)
		return
	}
	sw := l2switch.New(l2switch.Config{Name: "bench", Batch: *batch, QueueLen: *swQueue, DirectQueueLen: *swQueue, Logger: log})
	defer sw.Close()
	taps := []string{*a, *b}
	if *ns {
		taps = taps[:1]
	}
	if *ns && *hostIf != "" {
		taps = nil
		p, err := hostif.Open(hostif.Options{Name: *hostIf, Offload: *offload, SetUp: true, Logger: log})
		if err != nil {
			fail(err)
		}
		defer p.Close()
		if err := sw.AddPort(p, l2switch.PortConfig{}); err != nil {
			fail(err)
		}
	}
	if *ns && *vx != "" {
		taps = nil
		local, remote, _ := strings.Cut(*vx, "=")
		p, err := vxlan.Open(vxlan.Options{Name: "vxlan", Local: netip.AddrPortFrom(netip.MustParseAddr(local), 0), VNI: 42,
			Remotes: []netip.Addr{netip.MustParseAddr(remote)}, NoGRO: *vxNoGRO, NoCoalesce: *vxNoCoalesce, Logger: log})
		if err != nil {
			fail(err)
		}
		defer p.Close()
		if err := sw.AddPort(p, l2switch.PortConfig{}); err != nil {
			fail(err)
		}
		if *stats {
			defer func() { fmt.Printf("vxlan: %+v %+v\n", p.Counters.Snapshot(), p.Stats()) }()
		}
	}
	if *stats {
		defer func() {
			for _, ps := range sw.Ports() {
				fmt.Printf("switch port %s: %+v drops %v\n", ps.Name, ps.Counters, ps.Drops)
			}
		}()
	}
	for _, name := range taps {
		if *group {
			g, err := tap.OpenGroup(tap.Options{Name: name, Create: true, MTU: *mtu, Offload: *offload, Queues: *queues, WritevOnly: *writev, Logger: log})
			if err != nil {
				fail(err)
			}
			defer g.Close()
			if *stats {
				defer func() { fmt.Printf("%s queues: %+v\n", g.Info().Name, g.QueueCounts()) }()
			}
			if err := sw.AddPort(g, l2switch.PortConfig{}); err != nil {
				fail(err)
			}
			continue
		}
		qs, err := tap.OpenQueues(tap.Options{Name: name, Create: true, MTU: *mtu, Offload: *offload, Queues: *queues, WritevOnly: *writev, Logger: log})
		if err != nil {
			fail(err)
		}
		for _, t := range qs {
			defer t.Close()
			var p frame.Port = t
			if *stats {
				cp := &countingPort{Port: t}
				defer cp.report(os.Stdout)
				p = cp
			}
			if err := sw.AddPort(p, l2switch.PortConfig{}); err != nil {
				fail(err)
			}
		}
	}
	if *gwAddr != "" {
		g, err := gateway.New(gateway.Options{Name: "gw", Logger: log, MTU: *mtu,
			Addresses: []netip.Prefix{netip.MustParsePrefix(*gwAddr)}, Host: netip.MustParseAddr(*gwAlias),
			Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
		if err != nil {
			fail(err)
		}
		defer g.Close()
		if err := sw.AddPort(g.Port(), l2switch.PortConfig{}); err != nil {
			fail(err)
		}
		defer func() { fmt.Fprintf(os.Stderr, "gateway: %+v\n", g.Stats()) }()
	} else if *ns {
		n, err := startNamespace(sw, *nsAddr, *mtu, log)
		if err != nil {
			fail(err)
		}
		defer n.Close()
	}
	fmt.Println("ready")
	waitSignal()
}

// startNamespace puts a vnetd namespace with address addr on sw and runs the sink and
// source in it.
// noGRO turns the namespace NIC's receive coalescing off (-ns), to measure what it gives.
var noGRO = flag.Bool("nogro", false, "with -ns: turn the namespace NIC's receive coalescing (GRO) off")

// nsQueue is the namespace NIC's queue length (-ns); 0 is nsstack's default.
var nsQueue = flag.Int("nsqueue", 0, "with -ns: the namespace NIC's queue length in frames (0: nsstack's default)")

func startNamespace(sw *l2switch.Switch, addr string, mtu int, log *slog.Logger) (*nsstack.Namespace, error) {
	p, err := netip.ParsePrefix(addr)
	if err != nil {
		return nil, err
	}
	n, err := nsstack.New(nsstack.Options{Name: "bench", Logger: log})
	if err != nil {
		return nil, err
	}
	nic, err := n.AddNIC(nsstack.NICConfig{Name: "eth0", MTU: mtu, NoGRO: *noGRO, QueueLen: *nsQueue})
	if err == nil {
		err = n.AddAddress("eth0", p)
	}
	if err == nil {
		err = sw.AddPort(nic, l2switch.PortConfig{})
	}
	var sink, source net.Listener
	if err == nil {
		sink, err = n.Listen("tcp", fmt.Sprintf("%s:%d", p.Addr(), sinkPort))
	}
	if err == nil {
		source, err = n.Listen("tcp", fmt.Sprintf("%s:%d", p.Addr(), sourcePort))
	}
	if err != nil {
		n.Close()
		return nil, err
	}
	go serve(sink, source)
	return n, nil
}

// runDirect joins two TAPs with one goroutine per queue and direction that reads a
// batch and writes it to the other TAP's queue of the same index, with no switch and
// no queue in between.
func runDirect(o tap.Options, b string, batch int) {
	var taps [2][]*tap.TAP
	for i, name := range []string{o.Name, b} {
		o.Name = name
		qs, err := tap.OpenQueues(o)
		if err != nil {
			fail(err)
		}
		for _, t := range qs {
			defer t.Close()
		}
		taps[i] = qs
	}
	if batch <= 0 {
		batch = 64
	}
	for i := range taps {
		for q := range taps[i] {
			src, dst := taps[i][q], taps[1-i][q]
			go func() {
				frames := make([]frame.Frame, batch)
				for j := range frames {
					frames[j].Buf = make([]byte, src.Info().MaxFrame)
				}
				for {
					n, err := src.ReadFrames(frames)
					if err != nil {
						return
					}
					if _, err := dst.WriteFrames(frames[:n]); err != nil {
						return
					}
				}
			}()
		}
	}
	fmt.Println("ready")
	waitSignal()
}

func waitSignal() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tapswitch:", err)
	os.Exit(1)
}
