package nsstack

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	l2switch "github.com/vnetd/vnetd/switch"

	"github.com/vnetd/vnetd/internal/testwait"
)

// idleGroup is how many idle namespaces share one switch: broadcasts (ARP) flood
// to a group, not to all of them.
const idleGroup = 100

// idleSet is a crowd of idle namespaces: each has a NIC on a switch shared with its
// group, an IPv4 and an IPv6 address, a TCP listener, and has pinged its neighbour
// once on each family (so ARP and NDP entries exist, as after real use).
type idleSet struct {
	nss      []*Namespace
	nics     []*NIC
	switches []*l2switch.Switch
}

func newIdleSet(t testing.TB, n int) *idleSet {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	s := &idleSet{}
	for i := range n {
		if i%idleGroup == 0 {
			sw := l2switch.New(l2switch.Config{Name: fmt.Sprint("idle", i/idleGroup), Logger: quiet})
			t.Cleanup(func() { sw.Close() })
			s.switches = append(s.switches, sw)
		}
		ns, err := New(Options{Name: fmt.Sprint("idle", i), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Close() })
		nic, err := ns.AddNIC(NICConfig{Name: "eth0"})
		if err != nil {
			t.Fatal(err)
		}
		host := i%idleGroup + 1
		for _, p := range []netip.Prefix{
			netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 9, 0, byte(host)}), 24),
			netip.MustParsePrefix(fmt.Sprintf("fd09::%x/64", host)),
		} {
			if err := ns.AddAddress("eth0", p); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.switches[len(s.switches)-1].AddPort(nic, l2switch.PortConfig{}); err != nil {
			t.Fatal(err)
		}
		l, err := ns.Listen("tcp", ":80")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		s.nss = append(s.nss, ns)
		s.nics = append(s.nics, nic)
	}
	// Each even namespace pings the next one in its group, on both families.
	for i := 0; i+1 < n; i += 2 {
		host := (i+1)%idleGroup + 1
		for _, dst := range []netip.Addr{netip.AddrFrom4([4]byte{10, 9, 0, byte(host)}), netip.MustParseAddr(fmt.Sprintf("fd09::%x", host))} {
			c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := s.nss[i].Ping(c, dst, 1, nil)
			cancel()
			if err != nil {
				t.Fatalf("idle%d ping %v: %v", i, dst, err)
			}
		}
	}
	return s
}

// txFrames is how many frames all the set's NICs have sent.
func (s *idleSet) txFrames() uint64 {
	var sum uint64
	for _, n := range s.nics {
		sum += n.Counters().TxFrames.Load()
	}
	return sum
}

// settleNeighbors waits until no neighbour entry is being resolved or probed. A ping's
// responder learned the pinger from its ARP request or NS (entry Stale) and answered
// through that entry, which puts it in Delay: 5 s later it probes the pinger once
// (RFC 4861's NUD; ICMP gives no reachability confirmation as TCP would). That is the
// tail of the setup's traffic, not idle cost, so the measurement starts after it.
func (s *idleSet) settleNeighbors(t testing.TB) {
	t.Helper()
	testwait.Value(t, 30*time.Second, func() (int, bool) {
		busy := 0
		for _, ns := range s.nss {
			for _, nb := range ns.Neighbors() {
				switch nb.State {
				case "Incomplete", "Delay", "Probe":
					busy++
				}
			}
		}
		return busy, busy == 0
	}, "no neighbour entry to be resolving (entries resolving)")
}

// settle waits until the NICs' delivery goroutines have exited (deliverLinger after
// their last frame) and the goroutine count is steady.
func settle(t testing.TB) int {
	t.Helper()
	time.Sleep(deliverLinger)
	g := runtime.NumGoroutine()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		now := runtime.NumGoroutine()
		if now >= g {
			return now
		}
		g = now
	}
	return g
}

// cpuTime is the user plus system CPU time the process has used.
func cpuTime(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestIdleNamespacesCostNoCPU: 1,000 idle namespaces (NIC on a switch, IPv4 and IPv6
// addresses, a listener, ARP and NDP entries) must neither send a frame nor use more
// than 2% of one core over 2 s once they settled (neighbour probing after the setup's
// pings done, delivery goroutines gone). What could tick in gVisor is off by
// default in the protocols nsstack builds: DAD (DupAddrDetectTransmits 0), router
// solicitations (MaxRtrSolicitations 0), MLD and IGMP (Enabled false), netfilter
// conntrack reaping (tables never configured); neighbour entries only change state
// when used, TCP listeners keep no timers, and each NIC's delivery goroutine exits
// after deliverLinger. The 2% bound leaves room for the Go runtime's own background
// work (sysmon, scavenger), measured near 0; a single timer per namespace ticking even
// once a second would cost about as much, and would fail the frame count.
func TestIdleNamespacesCostNoCPU(t *testing.T) {
	n := 1000
	if testing.Short() || raceEnabled {
		n = 200
	}
	base := runtime.NumGoroutine()
	s := newIdleSet(t, n)
	s.settleNeighbors(t)
	g := settle(t)
	tx0, cpu0, start := s.txFrames(), cpuTime(t), time.Now()
	time.Sleep(2 * time.Second)
	tx1, cpu1, wall := s.txFrames(), cpuTime(t), time.Since(start)
	used := cpu1 - cpu0
	share := used.Seconds() / wall.Seconds()
	t.Logf("%d idle namespaces: %v CPU in %v (%.2f%% of one core), %d frames sent",
		n, used, wall.Round(time.Millisecond), share*100, tx1-tx0)
	if tx1 != tx0 {
		t.Errorf("idle namespaces sent %d frames in %v, want 0", tx1-tx0, wall)
	}
	if share > 0.02 {
		t.Errorf("idle namespaces used %v CPU in %v (%.2f%% of one core), want < 2%%", used, wall, share*100)
	}
	// Per namespace: its TCP processor, plus the switch port's reader; no delivery
	// goroutine once idle.
	// Per namespace: one goroutine, its TCP processor. No delivery goroutine once
	// idle. (The switch runs goroutines per port; they are the switch's cost.)
	stacks := goroutineStacks()
	delivering := countStacks(stacks, "nsstack.(*NIC).deliver")
	own := g - base - countStacks(stacks, "vnetd/switch.")
	t.Logf("goroutines: %d nsstack (%.2f per namespace), %d delivering", own, float64(own)/float64(n), delivering)
	if delivering != 0 {
		t.Errorf("%d NIC delivery goroutines still run after %v idle, want 0", delivering, deliverLinger)
	}
	if own > n+5 {
		t.Errorf("%d goroutines for %d idle namespaces (switch's excluded), want <= 1 each", own, n)
	}
}

// goroutineStacks returns every goroutine's stack trace.
func goroutineStacks() []string {
	buf := make([]byte, 1<<20)
	for {
		k := runtime.Stack(buf, true)
		if k < len(buf) {
			return strings.Split(string(buf[:k]), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// countStacks counts the stacks that mention substr.
func countStacks(stacks []string, substr string) int {
	k := 0
	for _, s := range stacks {
		if strings.Contains(s, substr) {
			k++
		}
	}
	return k
}
