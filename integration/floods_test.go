package integration

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/insomniacslk/dhcp/dhcpv4"

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
// +36 to +45 MiB in all, +15 to +22 over the last 750,000; a 3,000,000-frame run grew
// +48 MiB over the first half and +13 over the second), and the legit flow keeps >= 90%
// of the rate it had before (measured 94-99%).
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
	var r result
	got := false
	if during < 0.9*before {
		// A second 2 s window while the flood still runs, the better one counting: a
		// 2-core CI host's own scheduling costs a window 10% now and then; a real
		// slowdown from the flood shows in both.
		select {
		case r = <-done:
			got = true
		default:
			during = max(during, d.iperfUDP(t, "beta", "10.0.0.10", legitRate, 2))
		}
	}
	if !got {
		r = <-done
	}
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

// udpFrameTo is a size-byte IPv4/UDP frame from src to dst (10.0.0.1:4000 ->
// 10.0.0.99:4000), its payload's first 8 bytes the sequence number seq.
func udpFrameTo(t *testing.T, dst, src net.HardwareAddr, size int, seq uint64) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IPv4(10, 0, 0, 1), DstIP: net.IPv4(10, 0, 0, 99)}
	udp := &layers.UDP{SrcPort: 4000, DstPort: 4000}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatalf("udp.SetNetworkLayerForChecksum: %v", err)
	}
	payload := make([]byte, size-14-20-8)
	binary.BigEndian.PutUint64(payload, seq)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatalf("gopacket.SerializeLayers: %v", err)
	}
	return buf.Bytes()
}

// TestUDPOverloadFromTAP: a "VM" on a stream [[socket]] (the test, speaking QEMU's
// framing) drains 2,000 frames a second while a host behind a TAP sends it 1,000-byte
// UDP frames at 4,000 a second for 4 s. Every frame the TAP carried is either read by
// the VM or counted as queue_full on the VM's port (nothing else dropped, nothing
// lost uncounted), beta's UDP flow to alpha keeps >= 90% of its rate, and vnetd's RSS
// grows by less than 32 MiB.
func TestUDPOverloadFromTAP(t *testing.T) {
	needRoot(t)
	sockPath := filepath.Join(t.TempDir(), "vm.sock")
	d, tapDev := startTAPFloodLab(t, "udpo", fmt.Sprintf(`
[[socket]]
path = %q
switch = "lan0"
protocol = "stream"
`, sockPath))
	const drain = 2000              // frames a second the VM reads
	const rate, secs = 2 * drain, 4 // what the TAP sends
	vmMAC := net.HardwareAddr{2, 0, 0, 0, 0x99, 1}
	hostMAC := net.HardwareAddr{2, 0, 0, 0, 0x99, 2}

	vm, err := net.Dial("unix", sockPath)
	if err != nil {
		t.Fatalf("dial %s: %v", sockPath, err)
	}
	defer vm.Close()
	hello := rawFrame(vmMAC, 0, "hello from the VM")
	if _, err := vm.Write(binary.BigEndian.AppendUint32(nil, uint32(len(hello)))); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Write(hello); err != nil {
		t.Fatal(err)
	}
	vmPort := ""
	testwait.Eventually(t, 10*time.Second, func() bool {
		var fdb []struct {
			MAC  string `json:"mac"`
			Port string `json:"port"`
		}
		d.getJSON(t, "/v1/fdb/lan0", &fdb)
		for _, e := range fdb {
			if strings.EqualFold(e.MAC, vmMAC.String()) {
				vmPort = e.Port
			}
		}
		return vmPort != ""
	}, "the VM's MAC learned on its socket port")

	// The VM: reads frames (4-byte length, frame) no faster than drain a second.
	var got atomic.Int64
	readerDone := make(chan error, 1)
	paced := atomic.Bool{}
	paced.Store(true)
	go func() {
		r := bufio.NewReaderSize(vm, 64<<10)
		var start time.Time // the first flood frame's arrival
		var hdr [4]byte
		buf := make([]byte, 65536)
		for {
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				readerDone <- err
				return
			}
			n := binary.BigEndian.Uint32(hdr[:])
			if n > uint32(len(buf)) {
				readerDone <- fmt.Errorf("frame length %d", n)
				return
			}
			if _, err := io.ReadFull(r, buf[:n]); err != nil {
				readerDone <- err
				return
			}
			if n >= 14 && binary.BigEndian.Uint16(buf[12:14]) == uint16(layers.EthernetTypeIPv4) && bytes.Equal(buf[6:12], hostMAC) {
				k := got.Add(1)
				if k == 1 {
					start = time.Now()
				}
				if paced.Load() {
					if ahead := time.Duration(k)*time.Second/drain - time.Since(start); ahead > 0 {
						time.Sleep(ahead)
					}
				}
			}
		}
	}()

	before := d.iperfUDP(t, "beta", "10.0.0.10", legitRate, 2)
	rss0 := d.rss(t)
	st0 := d.status(t)
	tapRx0 := st0.port(t, "lan0", "tap:"+tapDev).Counters.RxFrames
	qf0 := st0.port(t, "lan0", vmPort).Drops["queue_full"]

	s := openFrameSender(t, d.ns, tapDev)
	frames := make([][]byte, 64)
	for i := range frames {
		frames[i] = udpFrameTo(t, vmMAC, hostMAC, 1000, uint64(i))
	}
	sendDone := make(chan error, 1)
	var sent int
	go func() {
		start := time.Now()
		for sent < rate*secs {
			if err := s.send(frames[sent%len(frames)]); err != nil {
				sendDone <- fmt.Errorf("send frame %d: %w", sent, err)
				return
			}
			sent++
			if ahead := time.Duration(sent)*time.Second/rate - time.Since(start); ahead > time.Millisecond {
				time.Sleep(ahead)
			}
		}
		sendDone <- nil
	}()
	time.Sleep(500 * time.Millisecond) // the VM's port is overloaded by now
	during := d.iperfUDP(t, "beta", "10.0.0.10", legitRate, 2)
	if err := <-sendDone; err != nil {
		t.Fatal(err)
	}
	paced.Store(false) // drain what is still queued
	var st floodStatus
	var delivered, qf uint64
	settled := testwait.Until(15*time.Second, func() bool {
		st = d.status(t)
		delivered, qf = uint64(got.Load()), st.port(t, "lan0", vmPort).Drops["queue_full"]-qf0
		return delivered+qf >= uint64(sent)
	})
	rss1 := d.rss(t)
	tapRx := st.port(t, "lan0", "tap:"+tapDev).Counters.RxFrames - tapRx0
	vp := st.port(t, "lan0", vmPort)
	t.Logf("sent %d into the TAP (vnetd read %d); the VM read %d, queue_full on %s %d, its drops %v; RSS %d -> %d MiB",
		sent, tapRx, delivered, vmPort, qf, vp.Drops, rss0>>20, rss1>>20)
	select {
	case err := <-readerDone:
		t.Fatalf("the VM's reader stopped: %v", err)
	default:
	}
	if tapRx < uint64(sent) {
		t.Errorf("vnetd read %d frames from the TAP, the test sent %d", tapRx, sent)
	}
	if !settled || delivered+qf != uint64(sent) {
		t.Errorf("of %d frames sent the VM read %d and %d were counted queue_full: %d unaccounted", sent, delivered, qf, int64(sent)-int64(delivered+qf))
	}
	if qf < uint64(sent)/4 {
		t.Errorf("queue_full = %d of %d frames sent at twice the VM's drain rate, want >= a quarter", qf, sent)
	}
	for reason, n := range vp.Drops {
		if reason != "queue_full" && n > 0 {
			t.Errorf("the VM's port dropped %d frames as %s, want only queue_full", n, reason)
		}
	}
	if grew := rss1 - rss0; grew > 32<<20 {
		t.Errorf("vnetd's RSS grew %d MiB (%d -> %d) under the overload, want < 32 MiB", grew>>20, rss0>>20, rss1>>20)
	}
	if during < 0.9*before {
		t.Errorf("legit flow during the overload: %.1f Mbit/s, before: %.1f Mbit/s; want >= 90%%", during/1e6, before/1e6)
	}
	m := d.metrics(t, "127.0.0.1:9109")
	if v, _ := metricSum(m, "vnetd_port_drops_total", `reason="queue_full"`, `port="`+vmPort+`"`); v < float64(qf) {
		t.Errorf("/metrics vnetd_port_drops_total{port=%q,reason=\"queue_full\"} = %v, want >= %d", vmPort, v, qf)
	}
}

// discoverFrame is a broadcast DHCPDISCOVER from mac (its Ethernet source and chaddr).
func discoverFrame(t *testing.T, mac net.HardwareAddr) []byte {
	t.Helper()
	m, err := dhcpv4.NewDiscovery(mac)
	if err != nil {
		t.Fatalf("dhcpv4.NewDiscovery(%s): %v", mac, err)
	}
	eth := &layers.Ethernet{SrcMAC: mac, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4zero, DstIP: net.IPv4bcast}
	udp := &layers.UDP{SrcPort: 68, DstPort: 67}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatalf("udp.SetNetworkLayerForChecksum: %v", err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(m.ToBytes())); err != nil {
		t.Fatalf("gopacket.SerializeLayers: %v", err)
	}
	return buf.Bytes()
}

// TestDHCPStormFromTAP sends DHCPDISCOVERs from 2,000 random MACs into a TAP, to a
// dhcp service whose pool has 151 addresses and max_leases = 64: the lease table stops
// at 64 (status, the leases list and /metrics agree) and every other client is counted
// as refused at the cap (not as pool exhausted: the pool is larger than the cap, so
// without the cap the table would have grown to 151).
func TestDHCPStormFromTAP(t *testing.T) {
	needRoot(t)
	d, tapDev := startTAPFloodLab(t, "dhcps", `
[[namespace]]
name = "dhcp"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.3/24"]
  [[namespace.service]]
  kind = "dhcp"
  nic = "eth0"
  range = "10.0.0.100-10.0.0.250"
  max_leases = 64
`)
	const storm, maxLeases, pool = 2000, 64, 151
	s := openFrameSender(t, d.ns, tapDev)
	rng := rand.New(rand.NewPCG(3, 18))
	start := time.Now()
	sent := 0
	for ; sent < storm && time.Since(start) < 20*time.Second; sent++ {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], rng.Uint64())
		mac := net.HardwareAddr(b[:6])
		mac[0] = mac[0]&^1 | 2
		if err := s.send(discoverFrame(t, mac)); err != nil {
			t.Fatalf("send DISCOVER %d: %v", sent, err)
		}
		if sent%100 == 99 {
			time.Sleep(5 * time.Millisecond) // about 20,000 a second at most
		}
	}
	t.Logf("%d DISCOVERs from distinct random MACs in %v", sent, time.Since(start).Round(time.Millisecond))
	var dh struct {
		Leases        int    `json:"leases"`
		MaxLeases     int    `json:"max_leases"`
		RefusedAtCap  uint64 `json:"refused_at_cap"`
		PoolExhausted uint64 `json:"pool_exhausted"`
	}
	dhcpStats := func() bool {
		for _, ns := range d.status(t).Namespaces {
			if ns.Name == "dhcp" && len(ns.DHCP) == 1 {
				s := ns.DHCP[0].Stats
				dh.Leases, dh.MaxLeases, dh.RefusedAtCap, dh.PoolExhausted = s.Leases, s.MaxLeases, s.RefusedAtCap, s.PoolExhausted
			}
		}
		return uint64(dh.Leases)+dh.RefusedAtCap+dh.PoolExhausted >= uint64(sent)
	}
	if !testwait.Until(15*time.Second, dhcpStats) {
		t.Fatalf("the dhcp service accounted for %d of %d DISCOVERs: %+v", uint64(dh.Leases)+dh.RefusedAtCap+dh.PoolExhausted, sent, dh)
	}
	t.Logf("dhcp stats: %+v", dh)
	if sent <= pool || dh.MaxLeases != maxLeases {
		t.Fatalf("%d DISCOVERs against a pool of %d and max_leases %d: this test needs more clients than the pool", sent, pool, dh.MaxLeases)
	}
	if dh.Leases != maxLeases {
		t.Errorf("leases = %d after %d distinct clients, want the cap %d", dh.Leases, sent, maxLeases)
	}
	if want := uint64(sent - maxLeases); dh.RefusedAtCap != want || dh.PoolExhausted != 0 {
		t.Errorf("refused_at_cap = %d, pool_exhausted = %d; want %d refused at the cap and none exhausted (the pool has %d addresses)", dh.RefusedAtCap, dh.PoolExhausted, want, pool)
	}
	var leases []json.RawMessage
	d.getJSON(t, "/v1/ns/dhcp/leases", &leases)
	if len(leases) != maxLeases {
		t.Errorf("/v1/ns/dhcp/leases lists %d bindings, want %d", len(leases), maxLeases)
	}
	m := d.metrics(t, "127.0.0.1:9109")
	if v, ok := metricSum(m, "vnetd_dhcp_leases"); !ok || v != maxLeases {
		t.Errorf("/metrics vnetd_dhcp_leases = %v (found %v), want %d", v, ok, maxLeases)
	}
	if v, _ := metricSum(m, "vnetd_dhcp_refused_total"); v != float64(sent-maxLeases) {
		t.Errorf("/metrics vnetd_dhcp_refused_total = %v, want %d", v, sent-maxLeases)
	}
}

// TestRouterScanFromTAP: a kernel netns behind a TAP routes 10.2.0.0/16 through a vnetd
// router whose other leg has nobody on it, and scans 6,000 addresses of it (one UDP
// datagram each, about 1 ms per 100) after 20 datagrams to one address: the router's
// neighbour table never holds more than its 1,024 entries (evictions counted), and the
// frames waiting on the one incomplete neighbour stop at 8 (the rest counted).
func TestRouterScanFromTAP(t *testing.T) {
	needRoot(t)
	bin := buildVnetd(t)
	ns := newNetns(t, "scan")
	tapDev := tapName(t, "fl")
	d := startFloodLab(t, bin, ns, fmt.Sprintf(`metrics = "127.0.0.1:9109"
[[switch]]
name = "lan0"
[[switch]]
name = "lan1"
[[tap]]
name = %q
switch = "lan0"
[[router]]
name = "r0"
  [[router.interface]]
  switch = "lan0"
  addresses = ["10.1.0.254/24"]
  [[router.interface]]
  switch = "lan1"
  addresses = ["10.2.0.1/16"]
`, tapDev))
	inNetns(t, ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	inNetns(t, ns, "ip", "link", "set", "dev", tapDev, "up", "txqueuelen", "16384")
	inNetns(t, ns, "ip", "addr", "add", "10.1.0.1/24", "dev", tapDev)
	inNetns(t, ns, "ip", "route", "add", "10.2.0.0/16", "via", "10.1.0.254")
	if err := ping(ns, "10.1.0.254"); err != nil {
		t.Fatalf("ping the router from %s: %v", ns, err)
	}

	const scan, maxNeigh, perNeigh, burst = 6000, 1024, 8, 20
	var c *net.UDPConn
	if err := doInNetns(t, ns, func() (err error) {
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 1, 0, 1)})
		return err
	}); err != nil {
		t.Fatalf("UDP socket in %s: %v", ns, err)
	}
	defer c.Close()
	payload := []byte("scan")
	for range burst {
		if _, err := c.WriteToUDP(payload, &net.UDPAddr{IP: net.IPv4(10, 2, 255, 254), Port: 9}); err != nil {
			t.Fatalf("send to 10.2.255.254: %v", err)
		}
	}
	start := time.Now()
	sent := 0
	peak := 0
	for ; sent < scan && time.Since(start) < 20*time.Second; sent++ {
		ip := net.IPv4(10, 2, byte((sent+256)>>8), byte(sent+256))
		if _, err := c.WriteToUDP(payload, &net.UDPAddr{IP: ip, Port: 9}); err != nil {
			t.Fatalf("send to %s: %v", ip, err)
		}
		if sent%100 == 99 {
			time.Sleep(time.Millisecond)
		}
		if sent%1000 == 999 {
			var r struct {
				Neighbors []json.RawMessage `json:"neighbors"`
			}
			d.getJSON(t, "/v1/router/r0", &r)
			peak = max(peak, len(r.Neighbors))
		}
	}
	t.Logf("scanned %d addresses in %v", sent, time.Since(start).Round(time.Millisecond))
	type routerView struct {
		Interfaces []struct {
			Name    string            `json:"name"`
			Dropped map[string]uint64 `json:"dropped"`
		} `json:"interfaces"`
		Neighbors []struct {
			Addr     string `json:"addr"`
			Complete bool   `json:"complete"`
		} `json:"neighbors"`
	}
	var r routerView
	drops := map[string]uint64{}
	testwait.Eventually(t, 10*time.Second, func() bool {
		d.getJSON(t, "/v1/router/r0", &r)
		peak = max(peak, len(r.Neighbors))
		clear(drops)
		for _, i := range r.Interfaces {
			for k, v := range i.Dropped {
				drops[k] += v
			}
		}
		// Every datagram reached the router's lan1 leg: waiting, evicted or timed out.
		return drops["neigh_evicted"] > 0
	}, "neighbour evictions")
	t.Logf("router r0: %d neighbours now, at most %d seen; drops %v", len(r.Neighbors), peak, drops)
	if sent < 4*maxNeigh {
		t.Fatalf("only %d addresses scanned: not enough to show a cap of %d holds", sent, maxNeigh)
	}
	if peak > maxNeigh {
		t.Errorf("the router's neighbour table held %d entries, want at most %d", peak, maxNeigh)
	}
	if drops["neigh_evicted"] < uint64(sent-maxNeigh)/2 {
		t.Errorf("neigh_evicted = %d after %d addresses scanned into a table of %d, want at least %d", drops["neigh_evicted"], sent, maxNeigh, (sent-maxNeigh)/2)
	}
	if want := uint64(burst - perNeigh); drops["neigh_queue_full"] < want {
		t.Errorf("neigh_queue_full = %d after %d datagrams to one unresolved address, want >= %d (%d may wait)", drops["neigh_queue_full"], burst, want, perNeigh)
	}
	m := d.metrics(t, "127.0.0.1:9109")
	if v, _ := metricSum(m, "vnetd_router_drops_total", `reason="neigh_evicted"`); v < float64(drops["neigh_evicted"]) {
		t.Errorf("/metrics vnetd_router_drops_total{reason=\"neigh_evicted\"} = %v, want >= %d", v, drops["neigh_evicted"])
	}
}
