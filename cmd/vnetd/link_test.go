package main

import (
	"context"
	"strings"
	"testing"

	"github.com/vnetd/vnetd/control"
)

// TestLinkCommand: vnetd link sets a namespace NIC down (pings fail, the drops show in
// the listing and status) and a switch port up again; a pair end down shows its
// peer's tx_dropped; DELETE /v1/pair removes both ends; bad requests exit 2.
func TestLinkCommand(t *testing.T) {
	sock := runDaemon(t, impairCLILab)
	ping := func(addr string) int {
		code, _, _ := run(t, "ping", "-s", sock, "a", addr, "-c", "1")
		return code
	}
	if code := ping("10.0.0.2"); code != 0 {
		t.Fatalf("ping b with links up exited %d", code)
	}
	if code, out, errs := run(t, "link", "-s", sock, "b", "eth0", "down"); code != 0 || !strings.Contains(out, "lan0/b.eth0") || !strings.Contains(out, "down") {
		t.Fatalf("vnetd link b eth0 down = %d, %q, %q", code, out, errs)
	}
	if code := ping("10.0.0.2"); code == 0 {
		t.Fatal("ping b through its down link succeeded")
	}
	code, out, errs := run(t, "link", "-s", sock)
	if code != 0 || !strings.Contains(out, "lan0/b.eth0") || !strings.Contains(out, "link_down_out") {
		t.Fatalf("vnetd link = %d, %q, %q; want b.eth0 down with link_down_out drops", code, out, errs)
	}
	if code, out, _ := run(t, "status", "-s", sock); code != 0 || !strings.Contains(out, "link lan0/b.eth0") {
		t.Fatalf("vnetd status = %d, %q; want a link line for the down port", code, out)
	}
	if code, out, errs := run(t, "link", "-s", sock, "lan0", "b.eth0", "up"); code != 0 {
		t.Fatalf("vnetd link lan0 b.eth0 up = %d, %q, %q", code, out, errs)
	}
	if code := ping("10.0.0.2"); code != 0 {
		t.Fatalf("ping b after its link came up exited %d", code)
	}

	// The pair a:p0 <-> b:p0.
	if code, _, errs := run(t, "link", "-s", sock, "b", "p0", "down"); code != 0 {
		t.Fatalf("vnetd link b p0 down = %d, %q", code, errs)
	}
	if code := ping("10.9.0.2"); code == 0 {
		t.Fatal("ping over a pair whose peer end is down succeeded")
	}
	code, out, _ = run(t, "link", "-s", sock)
	var aLine string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "a:p0 ") {
			aLine = l
		}
	}
	if code != 0 || !strings.Contains(aLine, "peer down") || !strings.Contains(aLine, "tx_dropped") || strings.Contains(aLine, "tx_dropped 0") {
		t.Fatalf("vnetd link = %d, %q; want a:p0 with its peer down and tx_dropped counted", code, out)
	}

	for _, bad := range [][]string{{"b", "eth0", "sideways"}, {"b", "eth0"}} {
		if code, _, _ := run(t, append([]string{"link", "-s", sock}, bad...)...); code != 2 {
			t.Errorf("vnetd link %v exited %d, want 2", bad, code)
		}
	}
	if code, _, _ := run(t, "link", "-s", sock, "b", "nope", "down"); code != 1 {
		t.Errorf("vnetd link b nope down exited %d, want 1 (no such port)", code)
	}

	cl := control.NewClient(sock)
	defer cl.Close()
	if err := cl.DeletePair(context.Background(), "b", "p0"); err != nil {
		t.Fatalf("DeletePair(b, p0): %v", err)
	}
	links, err := cl.Links(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if l.Target == "a:p0" || l.Target == "b:p0" {
			t.Errorf("%s still listed after the pair was deleted", l.Target)
		}
	}
	if err := cl.DeletePair(context.Background(), "a", "p0"); err == nil {
		t.Error("deleting the deleted pair from its other end succeeded")
	}
}
