package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd/nsstack"
)

const pingRange = "/proc/sys/net/ipv4/ping_group_range"

// pingAllowed reports whether the host lets this process open unprivileged ICMP
// sockets (its group is inside net.ipv4.ping_group_range).
func pingAllowed(t *testing.T) bool {
	t.Helper()
	b, err := os.ReadFile(pingRange)
	if err != nil {
		t.Fatal(err)
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil {
		t.Fatalf("parse %s %q: %v", pingRange, b, err)
	}
	gid := os.Getgid()
	return lo <= gid && gid <= hi
}

// ping sends one echo request from the guest and waits up to d for its answer.
func ping(g *nsstack.Namespace, dst string, seq int, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, err := g.Ping(ctx, netip.MustParseAddr(dst), seq, []byte("vnetd-echo-"+dst))
	return err
}

// TestEcho: the guest's pings to the host loopback alias go through ping sockets
// when the host allows them, and are dropped and counted as unsupported, never
// answered, when it does not; denied pings get "administratively prohibited". As
// root the test turns ping sockets off and on (restoring the host's setting).
func TestEcho(t *testing.T) {
	l := newLab(t, Options{Host: netip.MustParseAddr("10.0.2.2"), Host6: netip.MustParseAddr("fd00:2::2"),
		Allow:          []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		UDPIdleTimeout: 300 * time.Millisecond})
	old, err := os.ReadFile(pingRange)
	if err != nil {
		t.Fatal(err)
	}
	root := os.Geteuid() == 0
	set := func(v string) {
		t.Helper()
		if err := os.WriteFile(pingRange, []byte(v), 0o644); err != nil {
			t.Fatalf("write %s: %v", pingRange, err)
		}
	}
	if root {
		t.Cleanup(func() { set(strings.TrimSpace(string(old))) })
		set("1 0") // nobody
	}
	fds := countFDs(t)

	t.Run("own", func(t *testing.T) {
		// The gateway's own addresses answer for themselves, ping sockets or not.
		for _, dst := range []string{"10.0.0.2", "fd00::2"} {
			if err := ping(l.guest, dst, 1, 3*time.Second); err != nil {
				t.Fatalf("ping %s (the gateway itself): %v", dst, err)
			}
		}
		if st := l.gw.Stats(); st.FlowsICMP != 0 || st.ICMPUnsupported != 0 {
			t.Fatalf("after pinging the gateway itself: %+v", st)
		}
	})
	if !pingAllowed(t) {
		t.Run("unsupported", func(t *testing.T) {
			for _, dst := range []string{"10.0.2.2", "fd00:2::2"} {
				if err := ping(l.guest, dst, 1, 300*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("ping %s without ping sockets: %v, want no answer (deadline exceeded)", dst, err)
				}
			}
			if st := l.gw.Stats(); st.ICMPUnsupported != 2 || st.FlowsICMP != 0 || st.FlowsActive != 0 {
				t.Fatalf("after two unsupported pings: %+v", st)
			}
		})
		if !root {
			t.Log("ping sockets are off on this host and changing that needs root: relay not tested")
			return
		}
		set(fmt.Sprintf("%d %d", os.Getgid(), os.Getgid()))
	}

	t.Run("relayed", func(t *testing.T) {
		for _, dst := range []string{"10.0.2.2", "fd00:2::2"} {
			for seq := 1; seq <= 3; seq++ {
				if err := ping(l.guest, dst, seq, 3*time.Second); err != nil {
					t.Fatalf("ping %s seq %d through the gateway: %v", dst, seq, err)
				}
			}
		}
		st := l.gw.Stats()
		if st.FlowsICMP < 2 || st.BytesFromHost == 0 || st.BytesToHost != st.BytesFromHost {
			t.Fatalf("after relayed pings: %+v", st)
		}
	})
	t.Run("denied", func(t *testing.T) {
		before := l.gw.Stats()
		for _, tc := range []struct {
			dst       string
			typ, code uint8
		}{{"10.8.8.8", 3, 13}, {"fd00:9::9", 1, 1}} {
			err := ping(l.guest, tc.dst, 1, 3*time.Second)
			var ie *nsstack.ICMPError
			if !errors.As(err, &ie) || ie.Type != tc.typ || ie.Code != tc.code || ie.From.Is4() != netip.MustParseAddr(tc.dst).Is4() {
				t.Fatalf("ping %s (denied): %v, want destination unreachable, administratively prohibited", tc.dst, err)
			}
		}
		if st := l.gw.Stats(); st.Denied != before.Denied+2 || st.FlowsICMP != before.FlowsICMP {
			t.Fatalf("after two denied pings: %+v (before %+v)", st, before)
		}
	})
	// The ping sockets close after the idle timeout.
	waitIdle(t, l.gw, fds)
}
