package integration

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd/internal/testwait"
)

// floodLabTOML is the lab most flood tests run: switch lan0 (FDB capped at 2048), a
// TAP vnetd creates (its own MAC cap lifted, so the switch's cap is what a flood
// meets), and namespaces alpha (iperf3 server) and beta, whose UDP flow is the legit
// traffic measured before and during a flood. %s is for extra sections.
const floodLabTOML = `metrics = "127.0.0.1:9109"
[[switch]]
name = "lan0"
max_macs = 2048
[[tap]]
name = %q
switch = "lan0"
max_macs = 1000000
[[namespace]]
name = "alpha"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.10/24"]
  [[namespace.service]]
  kind = "iperf3"
[[namespace]]
name = "beta"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.20/24"]
%s`

// legitRate is the UDP rate of the legit flow beta -> alpha: about 4,300 frames a
// second, a steady offered load whose received share shows what a flood takes away.
const legitRate = "50M"

// startTAPFloodLab runs vnetd with floodLabTOML inside a new netns and brings the TAP
// up there with a queue long enough (16384 frames) for a paced flood to never
// overflow it; it returns the daemon and the TAP's name.
func startTAPFloodLab(t *testing.T, prefix, extra string) (*floodLab, string) {
	t.Helper()
	bin := buildVnetd(t)
	ns := newNetns(t, prefix)
	tapDev := tapName(t, "fl")
	d := startFloodLab(t, bin, ns, fmt.Sprintf(floodLabTOML, tapDev, extra))
	inNetns(t, ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	inNetns(t, ns, "ip", "link", "set", "dev", tapDev, "up", "txqueuelen", "16384")
	return d, tapDev
}

// macofFrame writes into f a 60-byte frame from a random source MAC to a random
// unknown unicast MAC (what macof sends): each one a new FDB entry to learn and a
// frame to flood.
func macofFrame(f []byte, rng *rand.Rand) {
	binary.BigEndian.PutUint64(f[0:8], rng.Uint64())
	binary.BigEndian.PutUint32(f[8:12], rng.Uint32())
	f[0] = f[0]&^1 | 2 // unicast, locally administered
	f[6] = f[6]&^1 | 2
	binary.BigEndian.PutUint16(f[12:14], rawEtherType)
}

// TestMACFloodIntoTAP writes 1,000,000 frames from random source MACs (to random
// unknown unicast MACs) into a TAP attached to the real daemon while beta sends a
// steady UDP flow to alpha on the same switch: the FDB stops at its cap (2048) with
// the rest counted as limited, alpha's and beta's MACs stay learned, vnetd's RSS grows
// by less than 64 MiB in all and less than 32 MiB over the last 750,000 frames (the
// queues and pools fill during the first 250,000; measured on a loaded 2-core host:
// +31 to +45 MiB in all, flat at about 68 MiB from 400,000 to 1,100,000 frames), and the
// legit flow keeps >= 90% of the rate it had before.
//
// The flood is paced by what vnetd read from the TAP (at most 3072 frames in flight,
// a fifth of the TAP's queue), so the kernel drops none of it: the frame counts are exact,
// not a race against a loaded host. Bounded: 1,000,000 frames or 40 s.
func TestMACFloodIntoTAP(t *testing.T) {
	needRoot(t)
	d, tapDev := startTAPFloodLab(t, "macf", "")
	port := "tap:" + tapDev
	before := d.iperfUDP(t, "beta", "10.0.0.10", legitRate, 2)
	if before <= 0 {
		t.Fatalf("the legit flow received nothing before the flood")
	}
	rss0 := d.rss(t)
	rx0 := d.status(t).port(t, "lan0", port).Counters.RxFrames

	const flood = 1_000_000
	const inFlight = 3072
	s := openFrameSender(t, d.ns, tapDev)
	type result struct {
		sent   int
		err    error
		dur    time.Duration
		rssMid int64 // RSS once a quarter of the flood was read
	}
	done := make(chan result, 1)
	go func() {
		rng := rand.New(rand.NewPCG(1, 18))
		f := make([]byte, 60)
		start := time.Now()
		deadline := start.Add(40 * time.Second)
		sent := 0
		var rssMid int64
		for sent < flood && time.Now().Before(deadline) {
			for range 1024 {
				macofFrame(f, rng)
				if err := s.send(f); err != nil {
					done <- result{sent, fmt.Errorf("send frame %d: %w", sent, err), time.Since(start), 0}
					return
				}
				sent++
			}
			// Wait until vnetd has read all but inFlight of them.
			for time.Now().Before(deadline) {
				rx, err := d.portRx("lan0", port)
				if err != nil {
					done <- result{sent, err, time.Since(start), 0}
					return
				}
				if int(rx-rx0) >= sent-inFlight {
					if rssMid == 0 && int(rx-rx0) >= flood/4 {
						if rssMid, err = d.readRSS(); err != nil {
							done <- result{sent, err, time.Since(start), 0}
							return
						}
					}
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		done <- result{sent, nil, time.Since(start), rssMid}
	}()
	time.Sleep(300 * time.Millisecond) // the flood is on
	during := d.iperfUDP(t, "beta", "10.0.0.10", legitRate, 2)
	r := <-done
	if r.err != nil {
		t.Fatalf("flood: %v", r.err)
	}
	t.Logf("flood: %d frames in %v (%.0f frames/s)", r.sent, r.dur.Round(time.Millisecond), float64(r.sent)/r.dur.Seconds())
	if r.dur < 2300*time.Millisecond {
		t.Logf("the flood ended before the legit measurement did: part of it ran without the flood")
	}

	var st floodStatus
	if !testwait.Until(10*time.Second, func() bool {
		st = d.status(t)
		return st.port(t, "lan0", port).Counters.RxFrames-rx0 >= uint64(r.sent)
	}) {
		t.Fatalf("vnetd read %d of the %d flood frames from the TAP", st.port(t, "lan0", port).Counters.RxFrames-rx0, r.sent)
	}
	rss1 := d.rss(t)
	sw := st.Switches[0]
	p := st.port(t, "lan0", port)
	t.Logf("fdb %d/%d, limited %d, TAP port rx %d macs %d drops %v; RSS %d MiB, %d at a quarter of the flood, %d at its end",
		sw.Stats.FDBSize, sw.Stats.MaxMACs, sw.Stats.Limited, p.Counters.RxFrames, p.MACs, p.Drops, rss0>>20, r.rssMid>>20, rss1>>20)
	for _, n := range []string{"alpha.eth0", "beta.eth0"} {
		t.Logf("port %s: rx %d tx %d drops %v", n, st.port(t, "lan0", n).Counters.RxFrames, st.port(t, "lan0", n).Counters.TxFrames, st.port(t, "lan0", n).Drops)
	}
	if r.sent < 10*sw.Stats.MaxMACs {
		t.Fatalf("only %d flood frames sent in 40 s: not enough to show a cap of %d holds", r.sent, sw.Stats.MaxMACs)
	}
	if sw.Stats.FDBSize != sw.Stats.MaxMACs {
		t.Errorf("FDB holds %d entries after %d source MACs, want its cap %d", sw.Stats.FDBSize, r.sent, sw.Stats.MaxMACs)
	}
	if want := uint64(r.sent - sw.Stats.MaxMACs); sw.Stats.Limited < want {
		t.Errorf("limited = %d after %d new source MACs into an FDB of %d, want >= %d", sw.Stats.Limited, r.sent, sw.Stats.MaxMACs, want)
	}
	for _, ns := range []string{"alpha", "beta"} {
		var fdb []struct {
			Port string `json:"port"`
		}
		d.getJSON(t, "/v1/fdb/lan0", &fdb)
		found := false
		for _, e := range fdb {
			found = found || e.Port == ns+".eth0"
		}
		if !found {
			t.Errorf("after the flood the FDB has no entry on %s.eth0: the flood pushed it out", ns)
		}
	}
	if grew := rss1 - rss0; grew > 64<<20 {
		t.Errorf("vnetd's RSS grew %d MiB (%d -> %d) during the flood, want < 64 MiB", grew>>20, rss0>>20, rss1>>20)
	}
	if grew := rss1 - r.rssMid; r.rssMid == 0 || grew > 32<<20 {
		t.Errorf("vnetd's RSS grew %d MiB during the last 750,000 frames of the flood (%d -> %d), want < 32 MiB: memory is not flat", grew>>20, r.rssMid>>20, rss1>>20)
	}
	if during < 0.9*before {
		t.Errorf("legit flow during the flood: %.1f Mbit/s, before: %.1f Mbit/s; want >= 90%%", during/1e6, before/1e6)
	}
	if m := d.metrics(t, "127.0.0.1:9109"); !strings.Contains(m, fmt.Sprintf("vnetd_fdb_entries{switch=\"lan0\"} %d", sw.Stats.MaxMACs)) {
		t.Errorf("/metrics does not show vnetd_fdb_entries{switch=\"lan0\"} %d", sw.Stats.MaxMACs)
	}
}
