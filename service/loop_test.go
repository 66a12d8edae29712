package service

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vnetd/vnetd/nsstack"
)

// twoNamespaces returns namespaces a (192.168.7.1) and b (192.168.7.2) joined by a
// pass-through pair.
func twoNamespaces(t *testing.T) (a, b *nsstack.Namespace) {
	t.Helper()
	var nics [2]*nsstack.NIC
	for i, name := range []string{"a", "b"} {
		ns, err := nsstack.New(nsstack.Options{Name: name})
		if err != nil {
			t.Fatalf("nsstack.New(%q): %v", name, err)
		}
		t.Cleanup(func() { ns.Close() })
		if nics[i], err = ns.AddNIC(nsstack.NICConfig{Name: "p0"}); err != nil {
			t.Fatalf("AddNIC: %v", err)
		}
		if err := ns.AddAddress("p0", netip.MustParsePrefix("192.168.7."+string(rune('1'+i))+"/24")); err != nil {
			t.Fatalf("AddAddress: %v", err)
		}
		if i == 0 {
			a = ns
		} else {
			b = ns
		}
	}
	stop := nsstack.Connect(nics[0], nics[1])
	t.Cleanup(stop)
	return a, b
}

// TestEchoLoopDies: one spoofed datagram between two namespaces running echo (from
// A's echo socket to B's) no longer bounces forever: soon (milliseconds at full
// speed) neither side answers any more, and the reason is counted. Before the guard the pair echoed
// ~45k datagrams a second until stopped.
func TestEchoLoopDies(t *testing.T) {
	tests := []struct {
		name         string
		portA, portB string
		want         func(Stats) uint64
		wantName     string
	}{
		{"echo port 7 to 7", ":7", ":7", func(s Stats) uint64 { return s.DroppedReflector }, "dropped_reflector"},
		{"same port 9000", ":9000", ":9000", func(s Stats) uint64 { return s.DroppedReflector }, "dropped_reflector"},
		{"echo 9000 to chargen-like 19", ":9000", ":19", func(s Stats) uint64 { return s.DroppedReflector }, "dropped_reflector"},
		{"ports 9000 and 9001", ":9000", ":9001", func(s Stats) uint64 { return s.RateLimited }, "rate_limited"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := twoNamespaces(t)
			sa, err := Start(a, Options{Kind: "echo", Listen: tt.portA, Namespace: "a"})
			if err != nil {
				t.Fatalf("Start(echo %s in a): %v", tt.portA, err)
			}
			defer sa.Close()
			sb, err := Start(b, Options{Kind: "echo", Listen: tt.portB, Namespace: "b"})
			if err != nil {
				t.Fatalf("Start(echo %s in b): %v", tt.portB, err)
			}
			defer sb.Close()
			// A legitimate client in a is answered.
			c, err := a.ListenPacket("udp", ":0")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			dst := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.168.7.2" + tt.portB))
			c.SetDeadline(time.Now().Add(3 * time.Second))
			if _, err := c.WriteTo([]byte("hi"), dst); err != nil {
				t.Fatalf("WriteTo: %v", err)
			}
			buf := make([]byte, 16)
			if n, _, err := c.ReadFrom(buf); err != nil || string(buf[:n]) != "hi" {
				t.Fatalf("client echo = %q, %v; want \"hi\"", buf[:n], err)
			}
			// The spoofed datagram: from A's echo port to B's echo.
			if _, err := sa.pc.WriteTo([]byte("loop"), dst); err != nil {
				t.Fatalf("spoof WriteTo: %v", err)
			}
			// A loop dies in milliseconds at full speed; the rate limit's end needs the
			// loop faster than 500/s per side for its burst of 200, which a loaded
			// host under -race barely is (seen: ~690/s a side, over a second). So up to
			// 5 s for the end to be counted, then 300 ms without an echo.
			start := time.Now()
			for time.Since(start) < 5*time.Second && tt.want(sa.Stats())+tt.want(sb.Stats()) == 0 {
				time.Sleep(time.Millisecond)
			}
			t.Logf("loop ended after %v, %d echoes", time.Since(start).Round(time.Millisecond), sa.Stats().Echoed+sb.Stats().Echoed-1)
			time.Sleep(100 * time.Millisecond) // what was in flight
			e1 := sa.Stats().Echoed + sb.Stats().Echoed
			time.Sleep(300 * time.Millisecond)
			e2 := sa.Stats().Echoed + sb.Stats().Echoed
			if e1 != e2 {
				t.Errorf("echoed %d, then %d 300 ms later: the loop still runs", e1, e2)
			}
			if got := tt.want(sa.Stats()) + tt.want(sb.Stats()); got == 0 {
				t.Errorf("%s = 0 on both sides (a %+v, b %+v), want the loop's end counted", tt.wantName, sa.Stats(), sb.Stats())
			}
		})
	}
}

func TestLimiter(t *testing.T) {
	l := NewLimiter(LimitOptions{Rate: 10, Burst: 5, MaxSources: 2})
	t0 := time.Unix(1000, 0)
	a, b, c := netip.MustParseAddrPort("10.0.0.1:4000"), netip.MustParseAddrPort("10.0.0.1:4001"), netip.MustParseAddrPort("10.0.0.3:4000")
	allowed := func(src netip.AddrPort, now time.Time, n int) int {
		ok := 0
		for range n {
			if l.Allow(src, now) {
				ok++
			}
		}
		return ok
	}
	if got := allowed(a, t0, 20); got != 5 {
		t.Errorf("Allow(a) at once: %d of 20 allowed, want the burst 5", got)
	}
	if got := allowed(a, t0.Add(200*time.Millisecond), 20); got != 2 {
		t.Errorf("Allow(a) 200ms later: %d allowed, want 2 (rate 10/s)", got)
	}
	if got := allowed(b, t0, 3); got != 3 {
		t.Errorf("Allow(b): %d allowed, want 3: sources have their own buckets", got)
	}
	// Table full (a and b both busy): c shares the overflow bucket.
	if got := allowed(c, t0, 20); got != 5 || l.Len() != 2 {
		t.Errorf("Allow(c) with the table full: %d allowed, %d sources; want 5 (overflow bucket), 2", got, l.Len())
	}
	// Two seconds on, a and b are idle (full buckets): c gets a slot of its own.
	if got := allowed(c, t0.Add(2*time.Second), 1); got != 1 || l.Len() != 1 {
		t.Errorf("Allow(c) after the others idled: %d allowed, %d sources; want 1, 1", got, l.Len())
	}
	if l.limited.Load() == 0 {
		t.Errorf("limited = 0, want the refusals counted")
	}
	for _, p := range []uint16{0, 7, 19, 53, 123} {
		if !ReflectorPort(p) {
			t.Errorf("ReflectorPort(%d) = false, want true", p)
		}
	}
	if ReflectorPort(40000) {
		t.Errorf("ReflectorPort(40000) = true, want false")
	}
}
