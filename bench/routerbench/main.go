// Command routerbench measures TCP throughput between two in-process namespaces
// through one switch, and through two switches joined by the router (full path and
// short-cut), and prints the routed/switched ratio as its last line.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/netip"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/nsstack"
	"github.com/vnetd/vnetd/router"
	l2switch "github.com/vnetd/vnetd/switch"
)

var gso bool

func main() {
	mib := flag.Int("mib", 256, "MiB to send per run")
	runs := flag.Int("runs", 3, "rounds; each runs every setup once, the best per setup is reported")
	flag.BoolVar(&gso, "gso", true, "namespace NICs send TCP superframes (as the daemon's do); false: MTU-sized segments")
	flag.Parse()
	// Rounds interleave the setups so load from other processes hits them alike.
	var sw, full, sc float64
	for range *runs {
		sw = max(sw, run(*mib, "switched"))
		full = max(full, run(*mib, "routed"))
		sc = max(sc, run(*mib, "shortcut"))
	}
	fmt.Printf("switched  %.0f MB/s (best of %d)\n", sw, *runs)
	fmt.Printf("routed    %.0f MB/s\n", full)
	fmt.Printf("shortcut  %.0f MB/s\n", sc)
	fmt.Printf("ratio=%.2f (routed full path / switched; shortcut/switched %.2f)\n", full/sw, sc/sw)
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func newNS(name string, sw *l2switch.Switch, addr, gw string) (*nsstack.Namespace, func()) {
	ns, err := nsstack.New(nsstack.Options{Name: name})
	must(err)
	nic, err := ns.AddNIC(nsstack.NICConfig{Name: "eth0", NoGSO: !gso})
	must(err)
	must(sw.AddPort(nic, l2switch.PortConfig{}))
	must(ns.AddAddress("eth0", netip.MustParsePrefix(addr)))
	if gw != "" {
		must(ns.AddRoute(nsstack.Route{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr(gw)}))
	}
	return ns, func() { ns.Close() }
}

// run moves mib MiB from a to b and returns MB/s.
func run(mib int, mode string) float64 {
	var a, b *nsstack.Namespace
	var dst string
	var cleanup []func()
	defer func() {
		for k := len(cleanup) - 1; k >= 0; k-- {
			cleanup[k]()
		}
	}()
	if mode == "switched" {
		sw := l2switch.New(l2switch.Config{Name: "lan0"})
		cleanup = append(cleanup, func() { sw.Close() })
		var c func()
		a, c = newNS("a", sw, "10.0.0.2/24", "")
		cleanup = append(cleanup, c)
		b, c = newNS("b", sw, "10.0.0.3/24", "")
		cleanup = append(cleanup, c)
		dst = "10.0.0.3:9000"
	} else {
		sws := map[string]*l2switch.Switch{}
		o := router.Options{Name: "r"}
		if mode == "shortcut" {
			o.Shortcut = func(ifc string, vlan uint16, m frame.MAC) (frame.Port, bool) { return sws[ifc].LookupPort(vlan, m) }
		}
		r := router.New(o)
		cleanup = append(cleanup, func() { r.Close() })
		for k, name := range []string{"lan0", "lan1"} {
			sw := l2switch.New(l2switch.Config{Name: name})
			sws[name] = sw
			cleanup = append(cleanup, func() { sw.Close() })
			gw := fmt.Sprintf("10.0.%d.1", k)
			p, err := r.AddInterface(router.IfaceConfig{Name: name, Addresses: []netip.Prefix{netip.MustParsePrefix(gw + "/24")}})
			must(err)
			must(sw.AddPort(p, l2switch.PortConfig{}))
			ns, c := newNS(fmt.Sprintf("n%d", k), sw, fmt.Sprintf("10.0.%d.2/24", k), gw)
			cleanup = append(cleanup, c)
			if k == 0 {
				a = ns
			} else {
				b = ns
			}
		}
		dst = "10.0.1.2:9000"
	}
	ln, err := b.Listen("tcp", dst)
	must(err)
	defer ln.Close()
	done := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- 0
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		done <- n
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := a.Dial(ctx, "tcp", dst)
	must(err)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, 64<<10)
	start := time.Now()
	total := int64(mib) << 20
	for sent := int64(0); sent < total; sent += int64(len(buf)) {
		if _, err := c.Write(buf); err != nil {
			log.Fatalf("%s: write: %v", mode, err)
		}
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	got := <-done
	el := time.Since(start)
	c.Close()
	if got != total {
		log.Fatalf("%s: received %d of %d bytes", mode, got, total)
	}
	return float64(total) / el.Seconds() / 1e6
}
